"""The Leaderboard tab: handlers called directly, and the wired Blocks served on loopback.

The endpoint tests launch the tab's Blocks with Gradio's own server on 127.0.0.1 and call
its named endpoints with `gradio_client`, as a remote user would.
"""

from __future__ import annotations

import re
import socket
import types

import gradio as gr
import pytest
from gradio_client import Client

from lora_land.catalog import build_catalog, load_catalog
from lora_land.config import PROJECT_ROOT
from lora_land.ui import leaderboard as lb
from lora_land.ui.charts import heatmap_figure, task_figure


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_default_view_shows_all_310_sorted_by_lift(catalog):
    styler, summary = lb.leaderboard_view(catalog)
    table = styler.data
    assert len(table) == 310
    assert list(table.columns) == list(lb.TABLE_COLUMNS.values())
    assert table["Lift"].is_monotonic_decreasing
    assert summary.startswith("**310** of 310")


def test_trophy_marks_exactly_the_fine_tunes_beating_gpt4(catalog):
    table = lb.leaderboard_view(catalog)[0].data
    marked = table[table[lb.TROPHY] == lb.TROPHY]
    assert len(marked) == sum(a.finetuned > a.gpt4 for a in catalog.adapters.values())
    assert (marked["Fine-tuned"] > marked["GPT-4"]).all()
    unmarked = table[table[lb.TROPHY] == ""]
    assert (unmarked["Fine-tuned"] <= unmarked["GPT-4"]).all()


def test_fine_tuned_cell_is_highlighted_when_it_beats_gpt4(catalog):
    green = "#d1fae5"
    assert green not in lb.leaderboard_view(catalog, task="glue_wnli")[0].to_html()  # GPT-4 leads
    html = lb.leaderboard_view(catalog, task="glue_sst2")[0].to_html()
    selectors = re.search(r"([^}]*)\{\s*background-color: #d1fae5", html).group(1)
    ft_col = list(lb.TABLE_COLUMNS.values()).index("Fine-tuned")
    beating = [a for a in catalog.adapters.values() if a.task == "glue_sst2" and a.beats_gpt4]
    assert selectors.count(f"_col{ft_col}") == len(beating) == 8


def test_filters_and_all_choice_map_to_catalog_queries(catalog):
    styler, summary = lb.leaderboard_view(
        catalog, "", "Reasoning", lb.ALL, "zephyr-7b-beta", True, "finetuned", False
    )
    table = styler.data
    expected = catalog.leaderboard(category="Reasoning", base="zephyr-7b-beta", beats_gpt4=True)
    assert sorted(table["Task"]) == sorted(expected["task"])
    assert table["Fine-tuned"].is_monotonic_increasing
    assert f"**{len(expected)}** of 310" in summary


def test_no_match_says_so(catalog):
    styler, summary = lb.leaderboard_view(catalog, search="zzz-nothing")
    assert styler.data.empty
    assert summary == "No fine-tune matches these filters."


def test_headline_cards_show_the_computed_numbers(catalog):
    stats = catalog.headline_stats()
    cards = lb.stats_html(stats, catalog)
    assert f"{stats.mean_lift:+.3f}" in cards and "+0.384" in cards
    assert "+0.095" in cards and "The abstract says 34 points" in cards
    assert str(stats.n_beat_gpt4) in cards
    assert catalog.bases[stats.best_base].display_name in cards
    for task in stats.gpt4_ahead_tasks:
        assert task in cards


def test_stsb_note_is_shown_with_its_chart(catalog):
    assert "higher-is-better" in lb.task_note(catalog, "glue_stsb")
    assert "⚠️" not in lb.task_note(catalog, "glue_sst2")


def test_heatmap_is_tasks_by_bases_for_each_value(catalog):
    for value in ("finetuned", "lift", "vs_gpt4"):
        heat = heatmap_figure(catalog, value).data[0]
        assert len(heat.y) == 31 and len(heat.x) == 10
        assert (
            heat.z[list(catalog.tasks).index("gsm8k")][0]
            == catalog.pivot(value).loc["gsm8k", "phi-2"]
        )


def test_task_chart_has_each_base_and_gpt_lines(catalog):
    fig = task_figure(catalog, "gsm8k")
    ft, base = fig.data
    assert list(ft.y) == [catalog.adapters[f"{b}/gsm8k"].finetuned for b in catalog.bases]
    assert list(base.y) == [catalog.adapters[f"{b}/gsm8k"].base_score for b in catalog.bases]
    lines = sorted(shape.y0 for shape in fig.layout.shapes)
    assert lines == sorted([catalog.tasks["gsm8k"].gpt4, catalog.tasks["gsm8k"].gpt35])


def test_measured_rows_sit_beside_the_report_figures(tmp_path):
    for f in (PROJECT_ROOT / "leaderboards").glob("*.*"):
        if f.suffix in (".json", ".csv") and f.name != "measured_here.csv":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    catalog = build_catalog(tmp_path)
    frame, note = lb.measured_view(catalog)
    assert frame.empty and list(frame.columns) == lb.MEASURED_HEADERS
    assert "No measurements yet" in note
    (tmp_path / "measured_here.csv").write_text(
        "date,task,base_model,adapter,metric,score,n,data,model\n"
        "2025-01-02,glue_sst2,smollm2-135m-instruct,,accuracy,0.5,32,"
        "shared/data/samples/glue_sst2.jsonl,HuggingFaceTB/SmolLM2-135M-Instruct\n"
    )
    frame, note = lb.measured_view(catalog)  # re-read on demand, no restart
    row = frame.iloc[0]
    assert (row["Task"], row["Base [95% CI]"], row["n"]) == (
        "glue_sst2",
        "0.500 (no interval: v1)",
        32,
    )
    assert row["Adapter"] == "(base model, no adapter)"
    assert row["Report: GPT-4"] == catalog.tasks["glue_sst2"].gpt4
    assert row["Report: best fine-tune"] == max(
        a.finetuned for a in catalog.adapters.values() if a.task == "glue_sst2"
    )
    (tmp_path / "measured_here.csv").write_text("date,task\n")
    frame, note = lb.measured_view(catalog)
    assert frame.empty and "missing column" in note


def test_measured_adapter_shows_base_adapter_and_paired_lift_with_intervals(tmp_path):
    from lora_land.catalog.measured import MeasuredRow, write_measured

    for f in (PROJECT_ROOT / "leaderboards").glob("*.*"):
        if f.suffix in (".json", ".csv") and f.name != "measured_here.csv":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    common = dict(base_model="b", data="shared/data/samples/conllpp.jsonl", model="m", n=50)
    write_measured(
        [
            MeasuredRow(
                "d",
                "conllpp",
                adapter="",
                metric="rouge",
                score=0.13,
                low=0.1,
                high=0.16,
                second_metric="entity_f1",
                second_score=0.05,
                **common,
            ),
            MeasuredRow(
                "d",
                "conllpp",
                adapter="b/conllpp",
                metric="rouge",
                score=0.80,
                low=0.75,
                high=0.85,
                lift=0.67,
                lift_low=0.6,
                lift_high=0.73,
                second_metric="entity_f1",
                second_score=0.14,
                second_lift=0.09,
                second_lift_low=-0.01,
                second_lift_high=0.2,
                **common,
            ),
            MeasuredRow(
                "d",
                "covid",
                adapter="b/covid",
                metric="covid_accuracy",
                score=0.26,
                **{**common, "data": "c.jsonl"},
            ),
            MeasuredRow(
                "d",
                "covid",
                adapter="",
                metric="covid_accuracy",
                score=0.18,
                **{**common, "data": "c.jsonl"},
            ),
        ],
        tmp_path / "measured_here.csv",
    )
    catalog = build_catalog(tmp_path)
    frame, note = lb.measured_view(catalog)
    assert len(frame) == 2  # each base row sits on its adapter's line
    ner = frame[frame["Task"] == "conllpp"].iloc[0]
    assert ner["Base [95% CI]"] == "0.130 [0.100, 0.160]"
    assert ner["Adapter [95% CI]"] == "0.800 [0.750, 0.850]"
    assert ner["Paired lift [95% CI]"] == "+0.670 [+0.600, +0.730]"
    assert ner["Second measure: base → adapter, lift [95% CI]"] == (
        "entity_f1: 0.050 → 0.140, +0.090 [-0.010, +0.200]"
    )
    v1 = frame[frame["Task"] == "covid"].iloc[0]
    assert v1["Paired lift [95% CI]"] == "+0.080 (not paired: other runs, no interval)"
    assert "1 adapter(s) carry a paired lift" in note and "1 of them with an interval" in note
    _, _, figure = lb.measured_outputs(catalog)
    (points,) = figure.data
    assert list(points.x) == [0.67] and list(points.error_x.arrayminus) == [pytest.approx(0.07)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def client(catalog):
    with gr.Blocks() as demo:
        lb.build_leaderboard_tab(types.SimpleNamespace(catalog=catalog))
    demo.launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(), quiet=True
    )
    yield Client(demo.local_url, verbose=False, download_files=False, analytics_enabled=False)
    demo.close()


def test_tab_exposes_its_endpoints(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {
        "/leaderboard_filter",
        "/leaderboard_heatmap",
        "/leaderboard_task_chart",
        "/leaderboard_measured",
    } <= names


def test_filter_endpoint_returns_the_10_rows_of_a_task(client, catalog):
    table, summary = client.predict(
        "", lb.ALL, "hellaswag", lb.ALL, False, "finetuned", True, api_name="/leaderboard_filter"
    )
    headers, rows = table["headers"], table["data"]
    assert len(rows) == 10
    ft = headers.index("Fine-tuned")
    expected = sorted(a.finetuned for a in catalog.adapters.values() if a.task == "hellaswag")
    assert [row[ft] for row in rows] == expected[::-1]
    assert "**10** of 310" in summary


def test_task_chart_endpoint_returns_a_plot_and_note(client):
    plot, note = client.predict("glue_stsb", api_name="/leaderboard_task_chart")
    assert plot["type"] == "plotly"
    assert "higher-is-better" in note


def test_playground_details_show_measured_intervals_and_paired_lift(tmp_path):
    from lora_land.catalog.measured import MeasuredRow, write_measured
    from lora_land.ui.playground_view import _measured_lines

    for f in (PROJECT_ROOT / "leaderboards").glob("*.*"):
        if f.suffix in (".json", ".csv") and f.name != "measured_here.csv":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    row = MeasuredRow(
        "2026-12-01",
        "glue_sst2",
        "smollm2-135m-instruct",
        "s/glue_sst2",
        "binary_accuracy_flex",
        0.9,
        50,
        "d",
        "m",
        low=0.8,
        high=0.98,
        lift=0.9,
        lift_low=0.8,
        lift_high=0.98,
        second_metric="label_validity",
        second_score=1.0,
    )
    write_measured([row], tmp_path / "measured_here.csv")
    catalog = build_catalog(tmp_path)
    text = _measured_lines(
        types.SimpleNamespace(catalog=catalog), "smollm2-135m-instruct", catalog.tasks["glue_sst2"]
    )
    assert "adapter 0.900 [0.800, 0.980] (n=50, 2026-12-01)" in text
    assert "paired lift +0.900 [+0.800, +0.980], label_validity 1.000" in text
