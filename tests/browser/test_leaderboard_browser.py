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


@pytest.mark.browser
def test_measured_here_shows_intervals_and_the_lift_chart(page, serve_blocks, tmp_path):
    from lora_land.catalog import build_catalog
    from lora_land.catalog.measured import MeasuredRow, write_measured

    for f in DATA.glob("*.*"):
        if f.suffix in (".json", ".csv") and f.name != "measured_here.csv":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    common = dict(base_model="b", metric="binary_accuracy_flex", n=50, data="d", model="m")
    write_measured(
        [
            MeasuredRow("2026-12-01", TASK, adapter="", score=0.0, low=0.0, high=0.0, **common),
            MeasuredRow(
                "2026-12-01",
                TASK,
                adapter=f"b/{TASK}",
                score=0.88,
                low=0.78,
                high=0.96,
                lift=0.88,
                lift_low=0.78,
                lift_high=0.96,
                **common,
            ),
        ],
        tmp_path / "measured_here.csv",
    )
    with gr.Blocks() as demo:
        build_leaderboard_tab(types.SimpleNamespace(catalog=build_catalog(tmp_path)))
    page.goto(serve_blocks(demo))
    table = page.locator("#ll-measured")
    table.wait_for()
    table.scroll_into_view_if_needed()
    page.wait_for_function(
        "document.querySelector('#ll-measured').textContent.includes('+0.880 [+0.780, +0.960]')"
    )  # the paired lift
    cells = table.locator("td").all_text_contents()
    assert "0.880 [0.780, 0.960]" in [c.strip() for c in cells]  # the adapter
    assert "0.000 [0.000, 0.000]" in [c.strip() for c in cells]  # the base
    assert "1 of them with an interval above zero" in page.locator("#ll-measured-note").inner_text()
    page.locator("#ll-measured-lifts .js-plotly-plot").wait_for()
