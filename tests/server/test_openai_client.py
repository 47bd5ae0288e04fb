"""The official `openai` client, unchanged, against our `/v1` on a live loopback server.

A FakeEngine stands behind the server so the replies are known; the protocol is the point.
"""

from __future__ import annotations

import openai
import pytest

from tests.server.conftest import ADAPTER

BASE = "smollm2-135m-instruct"


@pytest.fixture
def client(api) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api.url}/v1", api_key="unused", max_retries=0, timeout=10)


def test_models_list_has_the_base_and_every_adapter_with_its_task(client):
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {BASE, ADAPTER}
    assert models[ADAPTER].model_extra["task"] == "glue_sst2"
    assert client.models.retrieve(ADAPTER).id == ADAPTER


def test_completion_with_an_adapter_as_model(client, api):
    out = client.completions.create(model=ADAPTER, prompt="x y", max_tokens=4, temperature=0)
    assert out.choices[0].text == "1" and out.choices[0].finish_reason == "stop"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (2, 1)
    assert api.engine.requests[-1].adapter_id == ADAPTER


def test_streamed_completion_adds_up_and_reports_usage(client):
    stream = client.completions.create(
        model=BASE, prompt="x", max_tokens=16, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "It is a good film"
    assert chunks[-1].usage.completion_tokens == 5 and chunks[-1].choices == []


def test_chat_completion_goes_through_a_chat_prompt(client, api):
    out = client.chat.completions.create(
        model=ADAPTER,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=8,
        temperature=0,
    )
    assert out.choices[0].message.role == "assistant"
    assert out.choices[0].message.content == "1"
    prompt = api.engine.requests[-1].prompt
    assert "Be brief." in prompt and "Hi" in prompt


def test_streamed_chat_completion(client):
    stream = client.chat.completions.create(
        model=BASE, messages=[{"role": "user", "content": "Hi"}], max_tokens=16, stream=True
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "It is a good film"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_n_runs_that_many_rows_in_one_call(client, api):
    out = client.completions.create(model=ADAPTER, prompt="x", n=3, max_tokens=4, seed=11)
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert [r.seed for r in api.engine.requests[-3:]] == [11, 12, 13]
    chat = client.chat.completions.create(
        model=BASE, messages=[{"role": "user", "content": "Hi"}], n=2, max_tokens=4
    )
    assert len(chat.choices) == 2


def test_logprobs_are_refused_by_name(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=BASE, prompt="x", logprobs=2)
    assert caught.value.body["param"] == "logprobs"
    assert "logprobs is not supported" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError, match="logprobs is not supported"):
        client.chat.completions.create(
            model=BASE, messages=[{"role": "user", "content": "Hi"}], logprobs=True, top_logprobs=2
        )


def test_errors_come_in_openai_shape_with_the_right_status(client, api):
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="nope/none", prompt="x")
    assert "'nope/none' is not served" in caught.value.body["message"]
    with pytest.raises(openai.BadRequestError, match="max_tokens is 100"):
        client.completions.create(model=BASE, prompt="x", max_tokens=100)
    api.engine.busy = True
    with pytest.raises(openai.RateLimitError, match="try again"):
        client.completions.create(model=BASE, prompt="x")
