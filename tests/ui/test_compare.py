"""Compare handlers: FakeEngine, the real catalog, a real loopback GPT-4 server, real rows."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

from lora_land.arena.rows import RowsCache
from lora_land.examples import ExampleLibrary
from lora_land.ui import compare as cmp
from tests.arena.conftest import BASE, SST2, SST2_DPO, make_services
from tests.openai_server import OpenAIServer


def final(generator):
    *_, last = generator
    return last


def panes(out):
    """(visible, title, text, stats) per pane."""
    return [out[4 * i : 4 * i + 4] for i in range(cmp.MAX_PANES)]


def test_three_contestants_stream_and_are_scored_with_the_best_marked(tmp_path, samples_dir):
    library = ExampleLibrary(samples_dir=samples_dir)
    with OpenAIServer(reply="0") as server:
        services = make_services(tmp_path, server.base_url)
        ids = cmp.default_contestants(services, "glue_sst2")
        assert ids == [SST2, BASE, "reference:gpt-4"]
        *fields, _gold, session = cmp.on_example(services, library, "glue_sst2", 0)
        target = session["example"]["target"]
        values = [f["value"] for f in fields]
        out = final(cmp.run_compare(services, "glue_sst2", ids, 8, session, *values))
    shown = panes(out)
    assert [p[0]["visible"] for p in shown] == [True, True, True, False]
    assert "SmolLM2-135M-Instruct + glue_sst2 adapter" in shown[0][1]
    assert [p[2] for p in shown[:3]] == ["1", "The sentence is positive", "0"]
    for p in shown[:3]:
        assert "Score (binary_accuracy_flex):" in p[3]
    best = [i for i, p in enumerate(shown[:3]) if "★ best" in p[3]]
    # "1" and "positive" are right when the gold is 1, the reference's "0" when it is 0
    assert best == ([0, 1] if target == "1" else [2])
    assert "TTFT" in shown[0][3] and target in out[-1]


def test_contestant_count_and_ids_are_checked(tmp_path):
    services = make_services(tmp_path)
    out = final(cmp.run_compare(services, "glue_sst2", [SST2], 8, None, "x", "", "", ""))
    assert out[-1] == "⚠ choose 2 to 4 contestants, got 1"
    out = final(cmp.run_compare(services, "glue_sst2", [SST2, "evil/x"], 8, None, "x", "", "", ""))
    assert "not a contestant for glue_sst2: evil/x" in out[-1]


def test_share_url_restores_task_contestants_and_fields(tmp_path, samples_dir):
    services = make_services(tmp_path)
    request = SimpleNamespace(headers={"referer": "http://127.0.0.1:7860/?old=1"})
    url = cmp.share_url("glue_sst2", [SST2_DPO, BASE], "so good", "", "", "", request)
    parts = urlsplit(url)
    assert (parts.netloc, parts.path) == ("127.0.0.1:7860", "/")
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "tab": "compare",
        "task": "glue_sst2",
        "c": f"{SST2_DPO},{BASE}",
        "f0": "so good",
    }
    opened = SimpleNamespace(query_params=query | {"c": query["c"] + ",/etc/passwd"})
    library = ExampleLibrary(samples_dir=samples_dir)
    task, picked, *fields, _chips, session = cmp.restore(services, library, opened)
    assert task == "glue_sst2" and picked["value"] == [SST2_DPO, BASE]  # unknown id dropped
    assert fields[0]["value"] == "so good" and session["task"] == "glue_sst2"


def test_compare_on_rows_shows_intervals_differences_and_filters(tmp_path):
    services = make_services(tmp_path)
    services.engine.replies[None] = "Hmm, hard to say."
    upload = tmp_path / "rows.jsonl"
    upload.write_text("".join(f'{{"sentence": "s{i}", "target": "1"}}\n' for i in range(12)))
    summary, rows, note, report = cmp.run_on_rows(
        services, RowsCache(), "glue_sst2", [BASE, SST2], 8, 12, "upload", str(upload)
    )
    assert "12 rows of glue_sst2" in note and "at most 8 new tokens" in note
    assert "measured-here figures allow 256" in note
    records = summary.to_dict("records")
    assert records[0]["Score [95% CI]"] == "0.000 [0.000, 0.000] n=12"
    assert records[1]["Score [95% CI]"] == "1.000 [1.000, 1.000] n=12"
    assert records[1]["Verdict"] == "better"
    column = "This − SmolLM2-135M-Instruct (base, no adapter) [95% CI]"
    assert (records[0][column], records[1][column]) == ("—", "+1.000 [+1.000, +1.000] n=12")
    assert len(rows) == 12 and len(cmp.rows_frame(report, "split")) == 12
    few = tmp_path / "few.jsonl"  # 12 rows but 3 distinct sentences: 3 inputs, no verdict
    few.write_text("".join(f'{{"sentence": "s{i % 3}", "target": "1"}}\n' for i in range(12)))
    summary, *_ = cmp.run_on_rows(
        services, RowsCache(), "glue_sst2", [BASE, SST2], 8, 12, "upload", str(few)
    )
    records = summary.to_dict("records")
    assert records[1]["Score [95% CI]"] == "1.000 [1.000, 1.000] n=12 (3 inputs)"
    assert records[1]["Verdict"] == "too few inputs (3) to tell: run 10 or more"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sentence": "s"}\n')
    *_, note, report = cmp.run_on_rows(
        services, RowsCache(), "glue_sst2", [BASE, SST2], 8, 5, "upload", str(bad)
    )
    assert note.startswith("⚠ 1 bad row(s)") and "line 1: missing target" in note
    assert report is None


def test_a_shared_url_opens_the_tab_it_names_and_ignores_others():
    from lora_land.ui.app import _tab_from_url

    opened = _tab_from_url(SimpleNamespace(query_params={"tab": "compare"}))
    assert opened.selected == "compare"
    assert not hasattr(_tab_from_url(SimpleNamespace(query_params={"tab": "x"})), "selected")
