"""Preference data from arena votes: DPO / reward-model pairs, ties, and raw votes as CSV.

`preference_rows` gives one `{prompt, chosen, rejected}` row per decisive counted vote, the
standard (non-conversational) preference format TRL 1.x's `DPOTrainer` and `RewardTrainer`
read, plus metadata columns (task, chosen_model, rejected_model, vote_id). Ties, both-bad
votes, identical outputs and votes flagged as too fast are not preferences and are left out;
`tie_rows` gives the ties and both-bad votes for a separate file. `write_csv` writes every
stored vote, flags included.

This module turns stored votes into files; it does not train anything.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from lora_land.arena.store import Vote

CSV_COLUMNS = (
    "vote_id",
    "created",
    "task",
    "prompt",
    "left_model",
    "right_model",
    "left_output",
    "right_output",
    "vote",
    "outcome",
    "flag",
    "read_s",
    "left_score",
    "right_score",
    "session_hash",
    "left_spec",
    "right_spec",
)


def preference_rows(votes: Iterable[Vote]) -> list[dict[str, Any]]:
    """`{prompt, chosen, rejected}` + metadata for each decisive, counted vote."""
    rows = []
    for v in votes:
        if not v.counted or v.outcome == "tie":
            continue
        won_left = v.outcome == "left"
        rows.append(
            {
                "prompt": v.prompt,
                "chosen": v.left_output if won_left else v.right_output,
                "rejected": v.right_output if won_left else v.left_output,
                "task": v.task,
                "chosen_model": (v.left if won_left else v.right)["id"],
                "rejected_model": (v.right if won_left else v.left)["id"],
                "vote_id": v.id,
            }
        )
    return rows


def tie_rows(votes: Iterable[Vote]) -> list[dict[str, Any]]:
    """The counted ties (tie, both bad, identical outputs): two answers, no preference."""
    return [
        {
            "prompt": v.prompt,
            "response_a": v.left_output,
            "response_b": v.right_output,
            "vote": v.vote,
            "task": v.task,
            "model_a": v.left["id"],
            "model_b": v.right["id"],
            "vote_id": v.id,
        }
        for v in votes
        if v.counted and v.outcome == "tie"
    ]


def write_jsonl(rows: Sequence[dict[str, Any]], out: IO[str]) -> int:
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)


def write_csv(votes: Iterable[Vote], out: IO[str]) -> int:
    """Every vote as one CSV row (specs as JSON text)."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    n = 0
    for v in votes:
        writer.writerow(
            [
                v.id,
                v.created,
                v.task,
                v.prompt,
                v.left["id"],
                v.right["id"],
                v.left_output,
                v.right_output,
                v.vote,
                v.outcome,
                v.flag or "",
                "" if v.read_s is None else v.read_s,
                "" if v.left_score is None else v.left_score,
                "" if v.right_score is None else v.right_score,
                v.session_hash,
                json.dumps(v.left, sort_keys=True),
                json.dumps(v.right, sort_keys=True),
            ]
        )
        n += 1
    return n


def ties_path(out: Path) -> Path:
    """Where `--include-ties` writes the ties next to the preference file."""
    return out.with_name(f"{out.stem}.ties{out.suffix or '.jsonl'}")
