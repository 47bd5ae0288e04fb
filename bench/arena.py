"""Arena benchmark: p95 time to record a vote, and to recompute ratings with 10,000 votes.

A real SQLite vote store in a temporary directory is filled with `--votes` battles between six
contestants of known strengths (outcomes drawn from the Bradley-Terry model, 10% ties). Then:
- recording a vote (`VoteStore.record`: one committed WAL transaction), `--repeat` times,
  against a baseline measured in the same run: a bare INSERT of the same row into a plain
  SQLite table (same file settings) on the same machine; and again with 16 threads voting
  at once;
- recomputing all ratings (`store.battles()` read + `rate()` with 100 bootstrap resamples),
  against a baseline: one maximum-likelihood fit with no bootstrap.
Targets (from issue 9): vote p95 < 20 ms, ratings p95 < 2 s. The fitted ratings are also
checked against the true strengths (rank order). Prints a table, writes bench/results/arena.json.

Run: `python -m bench.arena [--votes 10000] [--repeat 200] [--rating-repeat 5]`.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from bench.common import machine, percentile, print_table, summary_ms, time_ms, write_results
from lora_land import migrations
from lora_land.arena.ratings import bradley_terry, pair_counts, players_of, rate
from lora_land.arena.store import Vote, VoteStore

TARGET_VOTE_MS = 20.0
TARGET_RATINGS_MS = 2000.0
STRENGTHS = {  # natural-log strengths of six contestants: the truth the fit should recover
    "smollm2-135m-instruct/glue_sst2": 1.0,
    "smollm2-135m-instruct/glue_sst2@dpo": 1.3,
    "smollm2-135m-instruct": -0.8,
    "reference:gpt-4": 1.8,
    "smollm2-135m-instruct/glue_cola": 0.2,
    "mistral-7b/glue_sst2": 0.6,
}


def _vote(battle_id: str, left: str, right: str, outcome: str) -> Vote:
    return Vote(
        battle_id=battle_id,
        task="glue_sst2",
        prompt="Given the following sentence: a warm, funny film. Respond with 0 or 1.",
        left={"id": left, "kind": "adapter", "params": {"max_new_tokens": 64}},
        right={"id": right, "kind": "base", "params": {"max_new_tokens": 64}},
        left_output="1",
        right_output="The sentence is positive.",
        vote=outcome,  # type: ignore[arg-type]
        outcome=outcome,  # type: ignore[arg-type]
        session_hash="bench",
        read_s=4.2,
    )


def simulated_battles(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    rng = np.random.default_rng(seed)
    names = list(STRENGTHS)
    out = []
    for _ in range(n):
        i, j = rng.choice(len(names), 2, replace=False)
        p_left = 1 / (1 + math.exp(STRENGTHS[names[j]] - STRENGTHS[names[i]]))
        u = rng.random()
        outcome = "tie" if u < 0.1 else ("left" if u < 0.1 + 0.9 * p_left else "right")
        out.append((names[i], names[j], outcome))
    return out


def fill(store: VoteStore, battles: list[tuple[str, str, str]]) -> None:
    """Insert the battles as stored votes in one transaction (fast set-up, same rows)."""
    db = migrations.connect(store.path)
    rows = []
    for k, (left, right, outcome) in enumerate(battles):
        v = _vote(f"fill-{k}", left, right, outcome)
        rows.append(
            (
                v.battle_id,
                time.time(),
                v.task,
                v.prompt,
                left,
                right,
                "{}",
                "{}",
                v.left_output,
                v.right_output,
                outcome,
                outcome,
                None,
                4.2,
                None,
                None,
                "b",
            )
        )
    with migrations.transaction(db):
        db.executemany(
            "INSERT INTO votes (battle_id, created, task, prompt, left_id, right_id, left_spec, "
            "right_spec, left_output, right_output, vote, outcome, flag, read_s, left_score, "
            "right_score, session_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    db.close()


def bench_votes(store: VoteStore, directory: Path, repeat: int) -> tuple[list[float], list[float]]:
    votes = iter(
        [
            _vote(uuid.uuid4().hex, "reference:gpt-4", "smollm2-135m-instruct", "left")
            for _ in range(repeat)
        ]
    )
    recorded = time_ms(lambda: store.record(next(votes)), repeat)
    plain = migrations.connect(directory / "plain.sqlite")
    plain.execute("CREATE TABLE t (a TEXT, b TEXT, c TEXT, d TEXT)")
    row = ("x" * 64, "1", "The sentence is positive.", "{}")
    baseline = time_ms(lambda: plain.execute("INSERT INTO t VALUES (?, ?, ?, ?)", row), repeat)
    plain.close()
    return recorded, baseline


def bench_concurrent_votes(store: VoteStore, threads: int = 16, each: int = 20) -> list[float]:
    """Milliseconds per `record` while `threads` threads vote at once (lock contention)."""
    samples: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def voter() -> None:
        start.wait()
        mine = []
        for _ in range(each):
            vote = _vote(uuid.uuid4().hex, "reference:gpt-4", "smollm2-135m-instruct", "right")
            t0 = time.perf_counter()
            store.record(vote)
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            samples.extend(mine)

    workers = [threading.Thread(target=voter) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return samples


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--votes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--rating-repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store = VoteStore(Path(tmp) / "arena.sqlite")
        battles = simulated_battles(args.votes)
        fill(store, battles)
        recorded, baseline = bench_votes(store, Path(tmp), args.repeat)
        counted = store.battles()
        ratings_ms = time_ms(lambda: rate(store.battles(), resamples=100), args.rating_repeat)
        fit_ms = time_ms(lambda: bradley_terry(counted), args.rating_repeat)
        fitted = bradley_terry(counted)
        n_votes = store.count()
        contended = bench_concurrent_votes(store)  # after the ratings: they skew the truth
        lost = n_votes + len(contended) - store.count()
    truth = sorted(STRENGTHS, key=lambda p: -STRENGTHS[p])
    found = sorted(fitted, key=lambda p: -fitted[p])
    vote_p95, ratings_p95 = percentile(recorded, 95), percentile(ratings_ms, 95)
    results = {
        "votes_in_db": n_votes,
        "contestants": len(players_of(counted)),
        "vote_p95_ms": vote_p95,
        "vote_baseline_p95_ms": percentile(baseline, 95),
        "vote_vs_bare_insert": vote_p95 / max(percentile(baseline, 95), 1e-9),
        "vote_p95_ms_16_threads": percentile(contended, 95),
        "votes_lost_16_threads": lost,
        "ratings_p95_ms": ratings_p95,
        "fit_only_p95_ms": percentile(fit_ms, 95),
        "ratings_vs_one_fit": ratings_p95 / max(percentile(fit_ms, 95), 1e-9),
        "vote_target_met": vote_p95 < TARGET_VOTE_MS,
        "ratings_target_met": ratings_p95 < TARGET_RATINGS_MS,
        "rank_order_recovered": found == truth,
        "vote_ms": summary_ms(recorded),
        "ratings_ms": summary_ms(ratings_ms),
        "pair_counts_total": float(pair_counts(counted, players_of(counted)).sum()),
        "machine": machine(),
    }
    print_table(
        "Arena",
        [
            (
                "record a vote, p95",
                f"{vote_p95:.2f} ms",
                f"target < {TARGET_VOTE_MS:g} ms; "
                f"{results['vote_vs_bare_insert']:.1f}x a bare INSERT (same run)",
            ),
            (
                "record a vote, 16 threads at once, p95",
                f"{percentile(contended, 95):.2f} ms",
                f"{len(contended)} votes from 16 threads; {lost} lost",
            ),
            (
                "recompute ratings, p95",
                f"{ratings_p95:.0f} ms",
                f"{n_votes} votes, 100 bootstrap resamples; target < {TARGET_RATINGS_MS:g} ms; "
                f"{results['ratings_vs_one_fit']:.0f}x one fit",
            ),
            ("true rank order recovered", str(found == truth), " > ".join(found)),
        ],
    )
    write_results("arena", results)
    return results


if __name__ == "__main__":
    main()
