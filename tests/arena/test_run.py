"""Streaming several contestants at once (FakeEngine) and a real loopback GPT-4 server."""

from __future__ import annotations

from lora_land.arena import contestants as cs
from lora_land.arena.run import generate_rows, stream_outputs
from lora_land.errors import QueueFullError
from tests.arena.conftest import BASE, SST2, SST2_DPO, make_services
from tests.openai_server import OpenAIServer


def test_three_contestants_stream_together_and_end_with_stats(services):
    contestants = cs.find(services, "glue_sst2", [SST2, BASE, SST2_DPO])
    states = list(stream_outputs(services, contestants, "Is it positive? great", 16))
    last = states[-1]
    assert [o.text for o in last] == ["1", "The sentence is positive", "1 (positive)"]
    assert all(o.done and o.error is None for o in last)
    assert "TTFT" in last[1].stats() and "4 tokens" in last[1].stats()
    # partial text was shown before the end
    assert any(s[1].text == "The" and not s[1].done for s in states)


def test_one_failing_contestant_does_not_harm_the_others(services):
    services.engine.failures[SST2] = QueueFullError("the engine has 32 requests waiting")
    contestants = cs.find(services, "glue_sst2", [SST2, BASE])
    *_, last = stream_outputs(services, contestants, "p", 16)
    assert last[0].error == "the engine has 32 requests waiting" and last[0].done
    assert last[1].text == "The sentence is positive" and last[1].error is None


def test_the_reference_answers_beside_the_engine(tmp_path):
    with OpenAIServer(reply="1") as server:
        services = make_services(tmp_path, server.base_url)
        contestants = cs.find(services, "glue_sst2", ["reference:gpt-4", BASE])
        *_, last = stream_outputs(services, contestants, "Is it positive?", 16)
    assert last[0].text == "1" and "gpt-4" in last[0].source
    assert server.requests[0]["body"]["messages"][0]["content"] == "Is it positive?"
    assert last[1].text == "The sentence is positive"


def test_generate_rows_answers_every_row_per_contestant_and_reports_progress(services):
    contestants = cs.find(services, "glue_sst2", [SST2, BASE])
    seen = []
    table = generate_rows(
        services,
        contestants,
        [f"p{i}" for i in range(5)],
        8,
        lambda d, t: seen.append((d, t)),
        chunk=2,
    )
    assert [[o.text for o in row] for row in table] == [["1"] * 5, ["The sentence is positive"] * 5]
    assert seen == [(i, 10) for i in range(1, 11)]  # one tick per finished answer
    assert len(services.engine.requests) == 10
