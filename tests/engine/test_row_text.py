"""A row's text is built incrementally: the same text as decoding every id at once, stops found
across token boundaries, and a constant amount of decoding per token (never the whole text)."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from lora_land.engine.batch import Row

TEXT = (
    "Café déjà vu: 東京タワー is 333 m tall 🗼🎉 — naïve façades, "
    "emoji 👩‍💻 and accents àéîõü repeat. " * 6
)


@pytest.fixture(scope="module")
def tokenizer(embedded_model_dir):
    return AutoTokenizer.from_pretrained(embedded_model_dir)


def _row(tokenizer, stop=(), max_new=10_000):
    decoded: list[int] = []  # how many ids each decode call saw
    deltas: list[str] = []

    def decode(ids):
        decoded.append(len(ids))
        return tokenizer.decode(ids, skip_special_tokens=False)

    row = Row(
        prompt_ids=[1],
        adapter=None,
        max_new_tokens=max_new,
        temperature=0.0,
        top_p=1.0,
        stop=stop,
        eos_ids=frozenset({0}),
        decode=decode,
        on_delta=lambda _row, delta: deltas.append(delta),
    )
    return row, decoded, deltas


def test_incremental_text_equals_decoding_every_id_at_once(tokenizer):
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    row, _, deltas = _row(tokenizer, max_new=len(ids))
    for token in ids:
        row.push(token)
    assert row.finish_reason == "length"
    assert row.text == tokenizer.decode(ids) == TEXT
    assert "".join(deltas) == TEXT
    assert "\ufffd" not in "".join(deltas)


def test_decoding_work_per_token_does_not_grow_with_the_text(tokenizer):
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    row, decoded, _ = _row(tokenizer, max_new=len(ids))
    for token in ids:
        row.push(token)
    assert len(ids) > 200
    assert max(decoded) <= 8  # a short window, not the whole text
    assert sum(decoded) <= 8 * len(ids)


def test_a_stop_spanning_several_tokens_is_found_and_cut(tokenizer):
    ids = tokenizer(TEXT, add_special_tokens=False)["input_ids"]
    stop = "façades, emoji"
    row, _, deltas = _row(tokenizer, stop=(stop,))
    for token in ids:
        row.push(token)
        if row.finished:
            break
    assert row.finish_reason == "stop"
    assert row.text == TEXT[: TEXT.index(stop)]
    assert "".join(deltas) == row.text


def test_an_unfinished_character_at_the_length_limit_is_kept_as_the_full_decode_has_it(
    tokenizer,
):
    ids = tokenizer("ok 🗼", add_special_tokens=False)["input_ids"]
    row, _, _ = _row(tokenizer, max_new=len(ids) - 1)  # stop inside the emoji's bytes
    for token in ids[:-1]:
        row.push(token)
    assert row.finish_reason == "length"
    assert row.text == tokenizer.decode(ids[:-1])
