"""The leaderboard in a real browser: open the page, filter to one task, read the rows."""

from __future__ import annotations

import csv
import json
import types

import gradio as gr
import pytest

from lora_land.catalog import load_catalog
from lora_land.config import PROJECT_ROOT
from lora_land.ui.leaderboard import build_leaderboard_tab

DATA = PROJECT_ROOT / "leaderboards"
TASK = "glue_sst2"
ROWS_JS = """() => Array.from(
    document.querySelectorAll('#ll-lb-table [role=grid] div[role=row]'),
    row => Array.from(row.querySelectorAll('td, [role=gridcell]'), c => c.innerText.trim()),
)"""


def _expected_rows() -> dict[str, tuple[str, str]]:
    """Base display name -> (fine-tuned, base score) for TASK, straight from the data files."""
    names = {
        b["name"]: b["display_name"] for b in json.loads((DATA / "base_models.json").read_text())
    }
    with (DATA / "scores_table12.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["task"] == TASK]
    return {names[r["base_model"]]: (r["finetuned"], r["base"]) for r in rows}


@pytest.fixture
def leaderboard_url(serve_blocks) -> str:
    with gr.Blocks() as demo:
        build_leaderboard_tab(types.SimpleNamespace(catalog=load_catalog()))
    return serve_blocks(demo)


@pytest.mark.browser
def test_filtering_to_one_task_shows_its_10_fine_tunes_with_their_scores(page, leaderboard_url):
    page.goto(leaderboard_url)
    grid = page.locator("#ll-lb-table [role=grid]")
    grid.wait_for()
    assert grid.get_attribute("aria-rowcount") == "311"  # header + 310

    page.locator("#ll-lb-task input").click()
    page.get_by_role("option", name=f"{TASK} — ").click()
    page.wait_for_function(
        "document.querySelector('#ll-lb-table [role=grid]').getAttribute('aria-rowcount') === '11'"
    )

    header = [h.strip() for h in grid.locator("thead th").all_inner_texts()]
    rows = page.evaluate(ROWS_JS)
    assert len(rows) == 10
    task_col, base_col = header.index("Task"), header.index("Base model")
    ft_col, base_score_col = header.index("Fine-tuned"), header.index("Base")
    assert {r[task_col] for r in rows} == {TASK}
    seen = {r[base_col]: (r[ft_col], r[base_score_col]) for r in rows}
    assert seen == _expected_rows()
    lifts = [float(r[header.index("Lift")]) for r in rows]
    assert lifts == sorted(lifts, reverse=True)  # default order: lift, descending
    assert "10 of 310" in page.locator("#ll-lb-summary").inner_text()
