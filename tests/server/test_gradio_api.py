"""The Gradio app's public API by name, with `gradio_client`, on the full app (fake engine)."""

from __future__ import annotations

import pytest
from gradio_client import Client

from lora_land.server.app import create_app
from tests.server.conftest import ADAPTER, fake_services


@pytest.fixture
def client(tmp_path, serve_asgi) -> Client:
    services = fake_services(tmp_path)
    return Client(serve_asgi(create_app(services)), verbose=False)


def test_every_public_endpoint_has_a_meaningful_name(client):
    api = client.view_api(return_format="dict", print_info=False)
    names = set(api["named_endpoints"])
    assert {"/run_comparison", "/run_playground", "/leaderboard_filter"} <= names
    generated = [n for n in names if n.startswith(("/partial", "/lambda", "/new_cancel"))]
    assert generated == [] and api["unnamed_endpoints"] == {}


def test_run_comparison_returns_the_finetuned_and_the_base_answer(client):
    out = client.predict(
        task="glue_sst2", fields=["a fine film"], max_new_tokens=8, api_name="/run_comparison"
    )
    assert out["adapter_id"] == ADAPTER
    assert out["finetuned"] == "1" and out["base"] == "It is a good film"
    assert "a fine film" in out["prompt"]


def test_run_comparison_reports_bad_input_clearly(client):
    with pytest.raises(Exception, match="max_new_tokens is 1000"):
        client.predict(
            task="glue_sst2", fields=["x"], max_new_tokens=1000, api_name="/run_comparison"
        )


def test_compare_on_rows_is_one_call_with_scores_intervals_and_rows(client, samples_dir):
    from lora_land.evaluation.metrics import get_metric
    from tests.conftest import read_jsonl

    base = "smollm2-135m-instruct"
    rows = read_jsonl(samples_dir / "glue_sst2.jsonl")[:12]
    out = client.predict(
        task="glue_sst2",
        contestants=[ADAPTER, base],
        n=12,
        max_new_tokens=8,
        api_name="/compare_on_rows",
    )
    metric = get_metric("binary_accuracy_flex")
    adapter_scores = [metric.score("1", r["target"], r) for r in rows]
    base_scores = [metric.score("It is a good film", r["target"], r) for r in rows]
    first, second = out["contestants"]
    assert (first["id"], second["id"]) == (ADAPTER, base)
    assert first["score"]["n"] == 12 and first["vs_first"] is None
    assert first["score"]["mean"] == pytest.approx(sum(adapter_scores) / 12)
    assert second["score"]["mean"] == pytest.approx(sum(base_scores) / 12)
    diff = second["vs_first"]
    assert diff["mean"] == pytest.approx((sum(base_scores) - sum(adapter_scores)) / 12)
    assert diff["low"] <= diff["mean"] <= diff["high"]
    assert second["verdict"] in {"better", "worse", "no clear difference"}
    assert [r["gold"] for r in out["rows"]] == [r["target"] for r in rows]
    assert out["rows"][0]["answers"] == {ADAPTER: "1", base: "It is a good film"}
    assert [r["scores"][ADAPTER] for r in out["rows"]] == adapter_scores
    # the metric named is the one that scored the rows (the cards' name), not the report's
    assert out["metric"] == "binary_accuracy_flex"
    assert (
        "12 rows of glue_sst2, metric `binary_accuracy_flex` (the report's `accuracy`)"
        in out["note"]
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "the number of rows must be between 1 and"),
        ({"n": 2.5}, "n must be a whole number, got '2.5'"),
        ({"max_new_tokens": 1000}, "max_new_tokens is 1000; it must be between 1 and 64"),
        ({"contestants": [ADAPTER]}, "choose 2 to 4 contestants, got 1"),
        ({"contestants": [ADAPTER, "x/evil"]}, "not a contestant for glue_sst2: x/evil"),
        ({"task": "no_such_task"}, "unknown task 'no_such_task'"),
    ],
)
def test_compare_on_rows_names_what_is_wrong_and_the_limit(client, kwargs, message):
    call = {
        "task": "glue_sst2",
        "contestants": [ADAPTER, "smollm2-135m-instruct"],
        "n": 4,
        "max_new_tokens": 8,
    } | kwargs
    with pytest.raises(Exception, match=message):
        client.predict(**call, api_name="/compare_on_rows")


def test_a_refused_call_is_one_log_line_not_a_traceback(client, capfd, caplog):
    caplog.set_level("INFO", logger="lora_land.ui.playground")
    call = {"task": "glue_sst2", "contestants": [ADAPTER, "smollm2-135m-instruct"]}
    with pytest.raises(Exception, match="max_new_tokens is 1000"):
        client.predict(**call, n=4, max_new_tokens=1000, api_name="/compare_on_rows")
    with pytest.raises(Exception, match="unknown task"):
        client.predict(task="nope", fields=["x"], max_new_tokens=8, api_name="/run_comparison")
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused: ")]
    assert len(refused) == 2 and "max_new_tokens is 1000" in refused[0]
    assert "unknown task 'nope'" in refused[1]
    assert "Traceback" not in capfd.readouterr().err  # Gradio printed none for a refusal
    with pytest.raises(Exception, match="not a contestant"):
        client.predict(
            task="glue_sst2",
            contestants=[ADAPTER, "x\nrefused: forged"],
            n=4,
            max_new_tokens=8,
            api_name="/compare_on_rows",
        )
    logged = [r.getMessage() for r in caplog.records if "forged" in r.getMessage()]
    assert len(logged) == 1 and "\n" not in logged[0] and "x\\nrefused: forged" in logged[0]
