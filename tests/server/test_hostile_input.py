"""Hostile and broken input over raw HTTP: every one a 4xx with a clear JSON message.

Each case names the route, the body (a JSON value, or raw bytes), the status and words the
message must contain (the field, the value or the limit). Nothing reaches the engine.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.server.conftest import ADAPTER

BASE = "smollm2-135m-instruct"
C, CHAT, GEN = "/v1/completions", "/v1/chat/completions", "/generate"


def comp(**fields) -> dict:
    return {"model": BASE, "prompt": "Review: fine", **fields}


def chat(**fields) -> dict:
    return {"model": BASE, "messages": [{"role": "user", "content": "Hi"}], **fields}


def gen(**params) -> dict:
    return {"inputs": "Review: fine", "parameters": params}


CASES = [
    # prompts: empty, blank, undecodable, too long, wrong type, missing
    ("empty-prompt", C, comp(prompt=""), 400, "the prompt is empty"),
    ("blank-prompt", C, comp(prompt="  \n "), 400, "the prompt is empty"),
    ("lone-surrogate", C, comp(prompt="a\ud800b"), 400, "surrogate"),
    ("lone-low-surrogate", GEN, {"inputs": "x\udfffy"}, 400, "position 1"),
    ("prompt-too-long", C, comp(prompt="x" * 16_001), 400, "16001 characters; the limit is 16000"),
    ("token-id-prompt", C, comp(prompt=[1, 2, 3]), 400, "token ids are not supported"),
    ("missing-prompt", C, {"model": BASE}, 400, "prompt must be a string"),
    ("inputs-not-text", GEN, {"inputs": 42}, 400, "inputs must be a string"),
    ("missing-inputs", GEN, {"parameters": {}}, 400, "inputs must be a string"),
    # models and adapters
    ("missing-model", C, {"prompt": "x"}, 400, "model must be a non-empty string"),
    ("unknown-model", C, comp(model="acme/secret"), 404, "'acme/secret' is not served"),
    ("path-as-adapter", GEN, gen(adapter_id="../../etc/passwd"), 404, "is not served"),
    ("huge-model-id", C, comp(model="m" * 5000), 404, "(5002 characters)"),
    # new tokens
    ("zero-tokens", C, comp(max_tokens=0), 400, "max_tokens is 0; it must be between 1 and 64"),
    ("huge-tokens", C, comp(max_tokens=10**9), 400, "max_tokens is 1000000000"),
    ("text-tokens", C, comp(max_tokens="ten"), 400, "max_tokens must be an integer"),
    ("float-tokens", GEN, gen(max_new_tokens=1.5), 400, "max_new_tokens has the wrong type"),
    # temperatures
    ("nan-temperature", C, comp(temperature=float("nan")), 400, "finite number, got nan"),
    ("inf-temperature", C, comp(temperature=float("inf")), 400, "finite number, got inf"),
    ("negative-temperature", C, comp(temperature=-1), 400, "temperature is -1"),
    ("denormal-temperature", C, comp(temperature=1e-300), 400, "temperature is 1e-300"),
    ("hot-temperature", C, comp(temperature=6), 400, "between 0.001 and 5"),
    ("text-temperature", C, comp(temperature="hot"), 400, "temperature must be a number"),
    ("denormal-lorax-temp", GEN, gen(temperature=5e-324), 400, "temperature is 4.94066e-324"),
    # top-p, top-k, penalties
    ("zero-top-p", C, comp(top_p=0), 400, "top_p is 0; it must be in (0, 1]"),
    ("big-top-p", GEN, gen(top_p=1.5), 400, "top_p is 1.5"),
    ("negative-top-k", GEN, gen(top_k=-1), 400, "top_k is -1"),
    ("zero-penalty", GEN, gen(repetition_penalty=0), 400, "repetition_penalty is 0"),
    # seeds
    ("seed-2-64", C, comp(seed=2**64), 400, "seed is 18446744073709551616; it must be between"),
    ("negative-seed", C, comp(seed=-1), 400, "seed is -1"),
    ("float-seed", C, comp(seed=1.5), 400, "seed must be an integer"),
    ("lorax-seed-2-64", GEN, gen(seed=2**64), 400, "2**63-1"),
    # stop strings
    ("empty-stop", C, comp(stop=[""]), 400, "stop[0] is empty"),
    ("lorax-empty-stop", GEN, gen(stop=["a", ""]), 400, "stop[1] is empty"),
    ("too-many-stops", C, comp(stop=[str(i) for i in range(9)]), 400, "9 stop strings"),
    ("long-stop", C, comp(stop=["s" * 300]), 400, "stop[0] has 300 characters; the limit is 256"),
    ("number-stop", C, comp(stop=[1, 2]), 400, "stop must be a string or a list of strings"),
    ("surrogate-stop", C, comp(stop=["\ud83d"]), 400, "stop[0] holds a character"),
    # n
    ("zero-n", C, comp(n=0), 400, "n is 0; it must be between 1 and 8"),
    ("huge-n", CHAT, chat(n=100), 400, "n is 100"),
    # fields the OpenAI API defines that we do not implement, by name
    ("logprobs", C, comp(logprobs=5), 400, "logprobs is not supported"),
    ("echo", C, comp(echo=True), 400, "echo is not supported"),
    ("frequency-penalty", C, comp(frequency_penalty=1.0), 400, "frequency_penalty is not supp"),
    ("tools", CHAT, chat(tools=[{"type": "function"}]), 400, "tools is not supported"),
    ("top-logprobs", CHAT, chat(top_logprobs=3), 400, "top_logprobs is not supported"),
    ("json-mode", CHAT, chat(response_format={"type": "json_object"}), 400, "response_format"),
    # LoRAX parameters we do not implement, by name
    ("adapter-source", GEN, gen(adapter_source="s3"), 400, "parameters.adapter_source"),
    ("merged-adapters", GEN, gen(merged_adapters={"ids": ["a"]}), 400, "merged_adapters"),
    ("best-of", GEN, gen(best_of=2), 400, "parameters.best_of is not supported"),
    ("api-token", GEN, gen(api_token="hf_SECRET"), 400, "parameters.api_token"),
    # unknown fields, named (and where they belong)
    ("unknown-openai-field", C, comp(temprature=0.5), 400, "unknown field 'temprature'"),
    (
        "unknown-lorax-param",
        GEN,
        gen(max_tokens=5),
        400,
        "'parameters.max_tokens'; LoRAX calls it max_new",
    ),
    (
        "unknown-top-level",
        GEN,
        {"inputs": "x", "adapter_id": ADAPTER},
        400,
        "belongs in parameters",
    ),
    ("lorax-name-on-v1", C, comp(max_new_tokens=5), 400, "OpenAI calls it max_tokens"),
    ("bad-stream-options", C, comp(stream_options={"x": 1}), 400, "stream_options takes only"),
    # chat messages
    ("no-messages", CHAT, chat(messages=[]), 400, "messages must be a non-empty list"),
    ("bad-role", CHAT, chat(messages=[{"role": "robot", "content": "x"}]), 400, "messages[0]"),
    (
        "image-part",
        CHAT,
        chat(messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
        400,
        "only text parts",
    ),
    ("content-number", CHAT, chat(messages=[{"role": "user", "content": 5}]), 400, "content"),
    # bodies
    ("not-json", C, b"{model: nope", 400, "not valid JSON"),
    ("json-list", C, [1, 2], 400, "must be a JSON object"),
    ("bad-utf8", GEN, b'{"inputs": "\xff\xfe"}', 400, "not valid JSON"),
    ("huge-body", GEN, {"inputs": "x" * (2 * 1024 * 1024)}, 413, "the limit is 1048576"),
    # tokenize is capped like prompts
    ("huge-tokenize", "/tokenize", {"inputs": "word " * 4000}, 400, "20000 characters"),
    ("tokenize-no-text", "/tokenize", {"text": "x"}, 400, "inputs"),
]


@pytest.fixture
def client(api):
    with httpx.Client(base_url=api.url, timeout=10) as c:
        yield c


@pytest.mark.parametrize(
    ("route", "body", "status", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_a_4xx_with_a_clear_json_message(client, api, route, body, status, words):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = client.post(route, content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text[:300]
    error = r.json()["error"]
    message = error["message"] if isinstance(error, dict) else error
    assert words in message
    assert len(message) < 700  # whatever was sent, the echo is short
    assert "hf_SECRET" not in r.text
    assert api.engine.requests == []  # refused at the edge: the engine never saw it


def test_there_are_at_least_forty_distinct_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 40
