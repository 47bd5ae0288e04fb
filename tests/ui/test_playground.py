"""Playground handlers with a FakeEngine, the real catalog and a real loopback GPT-4 server."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from lora_land.catalog import load_catalog
from lora_land.config import Settings
from lora_land.deployment import AdapterSource, BaseSource, Deployment
from lora_land.errors import AdapterValidationError
from lora_land.examples import ExampleLibrary
from lora_land.reference import ReferenceCache, ReferenceClient
from lora_land.services import Services
from lora_land.ui import playground as pg
from lora_land.ui import playground_view as view
from lora_land.ui.playground_run import PANES, plan_run, run_panes
from tests.fakes import FakeEngine
from tests.openai_server import OpenAIServer

BASE = "smollm2-135m-instruct"
SST2 = f"{BASE}/glue_sst2"
COLA = f"{BASE}/glue_cola"
KEY = "sk-playground-SECRET-42"


@pytest.fixture
def gpt4():
    with OpenAIServer(reply="1") as server:
        yield server


def make_services(tmp_path: Path, server: OpenAIServer | None, **engine_kw) -> Services:
    settings = replace(Settings(), cache_dir=tmp_path, max_new_tokens_limit=64)
    adapters = {
        i: AdapterSource(id=i, task=i.split("/")[1], path=tmp_path / i.split("/")[1])
        for i in (SST2, COLA)
    }
    deployment = Deployment(
        name="test",
        base=BaseSource(BASE, "embedded", "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2"),
        adapters=adapters,
    )
    engine = FakeEngine(base_name=BASE, adapters=list(adapters), **engine_kw)
    reference = ReferenceClient(
        base_url=server.base_url if server else None,
        api_key=KEY if server else None,
        timeout_s=2,
        cache=ReferenceCache(tmp_path / "ref.sqlite"),
    )
    return Services(settings, load_catalog(), deployment, engine, reference)


def library(samples_dir: Path | None = None) -> ExampleLibrary:
    return ExampleLibrary(samples_dir=samples_dir)


def final(generator) -> list[str]:
    *_, last = generator
    return last


def outputs_by_pane(out: list[str]) -> dict[str, tuple[str, str]]:
    return {key: (out[2 * i], out[2 * i + 1]) for i, key in enumerate(PANES)}


def test_served_base_comes_first_and_report_bases_say_not_served(tmp_path):
    services = make_services(tmp_path, None)
    choices = view.base_choices(services)
    assert choices[0].name == BASE and choices[0].served
    assert len(choices) == 11
    assert all("weights not served here" in c.label for c in choices[1:])


def test_tasks_with_a_served_adapter_are_listed_first_and_marked(tmp_path):
    services = make_services(tmp_path, None)
    choices = view.task_choices(services, BASE, view.ALL)
    assert [name for _, name in choices[:2]] == ["glue_cola", "glue_sst2"]
    assert all("adapter served" in label for label, _ in choices[:2])
    assert len(choices) == 31
    reasoning = view.task_choices(services, BASE, "Reasoning")
    assert {services.catalog.tasks[n].category for _, n in reasoning} == {"Reasoning"}


def test_changing_category_picks_a_task_of_that_category(tmp_path):
    services = make_services(tmp_path, None)
    session = {"task": "glue_sst2", "example": None}
    out = pg.on_picker(services, library(), BASE, "Math", session, 16)
    assert out[0]["value"] == "gsm8k"
    assert "GSM8K" in out[1] or "gsm8k" in out[1]
    assert out[2] == services.catalog.tasks["gsm8k"].prompt_template
    assert out[-1] == {"task": "gsm8k", "example": None}


def test_changing_category_keeps_the_session_task_when_it_fits(tmp_path):
    services = make_services(tmp_path, None)
    session = {"task": "glue_cola", "example": None}
    out = pg.on_picker(services, library(), BASE, "Reasoning", session, 16)
    assert out[0]["value"] == "glue_cola"
    assert out[-1]["task"] == "glue_cola"


def test_details_show_report_scores_for_a_report_base(tmp_path):
    services = make_services(tmp_path, None)
    text = view.details_markdown(services, "mistral-7b", "glue_sst2")
    entry = services.catalog.adapters["mistral-7b/glue_sst2"]
    assert f"fine-tuned {entry.finetuned:.3f}" in text
    assert f"lift {entry.lift:+.3f}" in text and f"GPT-4 {entry.gpt4:.3f}" in text
    assert "predibase/glue_sst2" in text
    assert "Not served here" in text and "mistralai" in text.lower()


def test_details_of_the_embedded_base_say_no_report_scores_and_adapter_state(tmp_path):
    services = make_services(tmp_path, None)
    text = view.details_markdown(services, BASE, "glue_sst2")
    assert "no scores for this base" in text
    assert f"`{SST2}`, cold" in text
    stsb = view.details_markdown(services, BASE, "glue_stsb")
    assert "higher-is-better" in stsb  # the report labels it mae
    # the report's label beside what scores the answers here, named where they differ
    assert "**Metric:** `accuracy`" in text
    assert "answers here are scored with `binary_accuracy_flex`" in text
    rouge = view.details_markdown(services, BASE, "reuters")
    assert "**Metric:** `rouge`" in rouge and "scored with" not in rouge


def test_task_shows_one_box_per_field_and_the_exact_template(tmp_path):
    services = make_services(tmp_path, None)
    out = pg.on_task(services, library(), BASE, "winogrande", 16)
    task = services.catalog.tasks["winogrande"]
    assert out[1] == task.prompt_template
    boxes = out[2 : 2 + view.MAX_FIELDS]
    assert [b["visible"] for b in boxes] == [True, True, True, False]
    assert [b.get("label") for b in boxes[:3]] == list(task.fields)


def test_example_chip_fills_fields_and_remembers_gold(tmp_path, samples_dir):
    services = make_services(tmp_path, None)
    lib = library(samples_dir)
    examples = lib.for_task(services.catalog.tasks["glue_sst2"])
    out = pg.on_example(services, lib, "glue_sst2", 0, 16)
    assert out[0]["value"] == examples[0].values["sentence"]
    assert "Gold answer" in out[-2] and examples[0].target in out[-2]
    assert out[-1]["example"]["target"] == examples[0].target
    sample_index = next(i for i, e in enumerate(examples) if e.label.startswith("Eval row"))
    real = pg.on_example(services, lib, "glue_sst2", sample_index, 16)
    assert real[0]["value"] == examples[sample_index].values["sentence"]


def test_token_count_tracks_the_filled_prompt_and_the_context(tmp_path):
    services = make_services(tmp_path, None)
    empty = view.token_count_markdown(services, "glue_sst2", [""], 16)
    filled = view.token_count_markdown(services, "glue_sst2", ["one two three"], 16)
    task = services.catalog.tasks["glue_sst2"]
    n = len(task.render({"sentence": "one two three"}).split())
    assert f"**{n}** tokens + up to 16 new = {n + 16} of 2048" in filled
    assert empty != filled


def run_sst2(services, session=None, values=("a warm , funny and thoroughly charming film .",)):
    return final(pg.run(services, BASE, "glue_sst2", 16, session, threading.Event(), *values))


def test_run_fills_three_panes_with_timings_and_scores(tmp_path, gpt4):
    services = make_services(tmp_path, gpt4, replies={SST2: "1", None: "0 is my guess"})
    session = pg.on_example(services, library(), "glue_sst2", 0, 16)[-1]
    out = run_sst2(services, session)
    panes = outputs_by_pane(out)
    assert panes["finetuned"][0] == "1" and "TTFT 0.01 s" in panes["finetuned"][1]
    assert "Score (binary_accuracy_flex): 1.000" in panes["finetuned"][1]
    assert (
        panes["base"][0] == "0 is my guess"
        and "Score (binary_accuracy_flex): 0.000" in panes["base"][1]
    )
    assert panes["reference"][0] == "1" and "from the endpoint" in panes["reference"][1]
    assert "Score (binary_accuracy_flex): 1.000" in panes["reference"][1]
    assert out[-1] == "**Gold answer:** `1`"
    [ft, base] = sorted(services.engine.requests, key=lambda r: r.adapter_id is None)
    assert ft.adapter_id == SST2 and base.adapter_id is None
    prompt = services.catalog.tasks["glue_sst2"].render(
        {"sentence": session["example"]["values"]["sentence"]}
    )
    assert ft.prompt == base.prompt == prompt  # completion style: the template, no chat wrapper
    assert gpt4.requests[0]["body"]["messages"] == [{"role": "user", "content": prompt}]


def test_second_run_of_the_same_prompt_is_a_reference_cache_hit(tmp_path, gpt4):
    services = make_services(tmp_path, gpt4)
    run_sst2(services)
    out = outputs_by_pane(run_sst2(services))
    assert len(gpt4.requests) == 1
    assert "from the cache" in out["reference"][1]


def test_edited_fields_drop_the_gold_answer(tmp_path, gpt4):
    services = make_services(tmp_path, gpt4)
    session = pg.on_example(services, library(), "glue_sst2", 0, 16)[-1]
    out = run_sst2(services, session, values=("my own sentence",))
    assert out[-1] == "" and "Score" not in out[1]


def test_offline_reference_says_so_and_shows_what_is_known(tmp_path):
    services = make_services(tmp_path, None)
    session = pg.on_example(services, library(), "glue_sst2", 0, 16)[-1]
    panes = outputs_by_pane(run_sst2(services, session))
    note = panes["reference"][1]
    assert "not configured" in note and "OPENAI_API_KEY" in note
    assert f"{services.catalog.tasks['glue_sst2'].gpt4:.3f}" in note and "`1`" in note
    assert panes["finetuned"][0] == "1"  # the engine panes ran anyway


@pytest.mark.parametrize(
    ("mode", "words"), [(401, "OPENAI_API_KEY"), (429, "wait"), (500, "try again")]
)
def test_reference_errors_show_in_the_pane_without_the_key(tmp_path, gpt4, mode, words):
    gpt4.mode = mode
    services = make_services(tmp_path, gpt4)
    out = run_sst2(services)
    panes = outputs_by_pane(out)
    assert words in panes["reference"][1]
    assert all(KEY not in text for text in out)
    assert panes["base"][0]  # the other panes are unaffected


def test_empty_field_is_a_clear_message_in_every_pane(tmp_path):
    services = make_services(tmp_path, None)
    out = run_sst2(services, values=("   ",))
    assert all("must not be empty" in stats for _, stats in outputs_by_pane(out).values())
    assert services.engine.requests == []


def test_prompt_past_the_context_is_refused_with_the_numbers(tmp_path):
    services = make_services(tmp_path, None)
    services.engine.context_length = 40
    out = run_sst2(services, values=("word " * 5,))  # fits alone, not with 16 new tokens
    stats = outputs_by_pane(out)["finetuned"][1]
    assert "past the 40-token context" in stats and "16 new tokens" in stats


def test_adapter_that_fails_to_load_is_shown_and_base_still_runs(tmp_path):
    bad = AdapterValidationError("adapter glue_sst2 has rank 128; the limit is 64")
    services = make_services(tmp_path, None, failures={SST2: bad})
    panes = outputs_by_pane(run_sst2(services))
    assert "rank 128; the limit is 64" in panes["finetuned"][1]
    assert panes["base"][0]
    again = outputs_by_pane(run_sst2(services))  # the session stays usable
    assert again["base"][0]


def test_busy_engine_says_try_again(tmp_path):
    services = make_services(tmp_path, None, busy=True)
    panes = outputs_by_pane(run_sst2(services))
    assert "try again" in panes["finetuned"][1] and "try again" in panes["base"][1]


def test_unserved_base_explains_and_still_asks_gpt4(tmp_path, gpt4):
    services = make_services(tmp_path, gpt4)
    values = ("a fine film",)
    out = final(pg.run(services, "mistral-7b", "glue_sst2", 16, None, None, *values))
    panes = outputs_by_pane(out)
    assert "not served here" in panes["finetuned"][1] and "mistralai" in panes["base"][1]
    assert panes["reference"][0] == "1"
    assert services.engine.requests == []


def test_task_without_served_adapter_runs_base_only(tmp_path):
    services = make_services(tmp_path, None)
    out = final(pg.run(services, BASE, "gsm8k", 16, None, None, "What is 2 + 2?"))
    panes = outputs_by_pane(out)
    assert "No gsm8k adapter is served here" in panes["finetuned"][1]
    assert panes["base"][0]


def test_stop_ends_the_streams(tmp_path):
    hold = threading.Event()
    services = make_services(tmp_path, None, hold=hold, replies={SST2: "a b c d e f"})
    cancel = threading.Event()
    plan = plan_run(services, BASE, "glue_sst2", ["text"], 16)
    stream = run_panes(services, plan, cancel)
    next(stream)
    cancel.set()
    hold.set()
    *_, last = stream
    assert last["finetuned"].note == "Stopped." and last["finetuned"].text == ""


def test_pane_stats_show_a_rate_only_when_there_are_two_tokens_or_more():
    from lora_land.ui.playground_run import Pane

    one = Pane(text="1", ttft_s=0.5, tokens_per_s=0.9, tokens=1).stats_markdown("accuracy")
    assert one == "TTFT 0.50 s · 1 token"
    many = Pane(text="a b", ttft_s=0.5, tokens_per_s=12.34, tokens=5).stats_markdown("rouge")
    assert many == "TTFT 0.50 s · 12.3 tokens/s · 5 tokens"


def test_gpt4_is_never_asked_when_the_input_fails_validation(tmp_path, gpt4):
    services = make_services(tmp_path, gpt4)
    out = final(pg.run(services, BASE, "glue_sst2", 1000, None, None, "a fine film"))
    assert "max_new_tokens is 1000" in outputs_by_pane(out)["reference"][1]
    assert gpt4.requests == [] and services.engine.requests == []


def test_the_ui_rate_limit_counts_runs_per_client():
    from types import SimpleNamespace

    from lora_land.server.guard import RateLimiter

    limiter = RateLimiter(per_minute=1)
    alice = SimpleNamespace(client=SimpleNamespace(host="10.0.0.1"))
    bob = SimpleNamespace(client=SimpleNamespace(host="10.0.0.2"))
    assert pg.rate_limited(limiter, alice) is None
    message = pg.rate_limited(limiter, alice)
    assert message is not None and "1 runs a minute per client" in message
    assert pg.rate_limited(limiter, bob) is None  # another client is not affected


def test_details_list_a_served_dpo_variant_beside_the_adapter(tmp_path):
    services = make_services(tmp_path, None)
    dpo = AdapterSource(id=f"{SST2}@dpo", task="glue_sst2", path=tmp_path / "glue_sst2@dpo")
    services = replace(
        services,
        deployment=replace(
            services.deployment, adapters={**services.deployment.adapters, dpo.id: dpo}
        ),
    )
    text = view.details_markdown(services, BASE, "glue_sst2")
    assert f"`{SST2}`, cold" in text and text.endswith(f" · also served: `{SST2}@dpo`")
    assert "also served" not in view.details_markdown(services, BASE, "glue_cola")
    assert [view._measured_kind(a) for a in ("", SST2, f"{SST2}@dpo")] == [
        "base",
        "adapter",
        "dpo adapter",
    ]
