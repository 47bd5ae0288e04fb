"""The vote store on real SQLite files: round trip, one vote per battle, threads, SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid

import pytest

from lora_land import migrations
from lora_land.arena.store import MIGRATIONS, AlreadyVotedError, Vote, VoteStore
from lora_land.config import PROJECT_ROOT

SPEC_A = {"id": "smollm2-135m-instruct/glue_sst2", "kind": "adapter", "seed": None}
SPEC_B = {"id": "smollm2-135m-instruct", "kind": "base", "seed": None}


def make_vote(battle_id: str | None = None, **changes) -> Vote:
    fields = {
        "battle_id": battle_id or uuid.uuid4().hex,
        "task": "glue_sst2",
        "prompt": "Is this positive? great film",
        "left": SPEC_A,
        "right": SPEC_B,
        "left_output": "1",
        "right_output": "The sentence is positive",
        "vote": "left",
        "outcome": "left",
        "session_hash": "s1",
    }
    return Vote(**(fields | changes))


def test_a_vote_round_trips_with_specs_outputs_and_flags(tmp_path):
    store = VoteStore(tmp_path / "arena.sqlite")
    first = store.record(make_vote("b1", left_score=1.0, right_score=0.0, read_s=3.5))
    store.record(make_vote("b2", task="covid", vote="both_bad", outcome="tie", flag="too_fast"))
    [got] = store.votes(task="glue_sst2")
    assert got.id == first and got.left == SPEC_A and got.right == SPEC_B
    assert (got.left_output, got.vote, got.left_score, got.read_s) == ("1", "left", 1.0, 3.5)
    assert store.count() == 2 and store.count("covid") == 1
    assert store.battles() == [(SPEC_A["id"], SPEC_B["id"], "left")]  # the flagged one is out
    assert len(store.votes(counted_only=True)) == 1
    assert migrations.applied(store.path) == [name for name, _ in MIGRATIONS]


def test_one_vote_per_battle(tmp_path):
    store = VoteStore(tmp_path / "arena.sqlite")
    store.record(make_vote("same"))
    with pytest.raises(AlreadyVotedError, match="already has a vote"):
        store.record(make_vote("same", vote="right", outcome="right"))
    assert store.count() == 1


def test_session_hash_is_salted_per_database(tmp_path):
    one, two = VoteStore(tmp_path / "a.sqlite"), VoteStore(tmp_path / "b.sqlite")
    assert one.session_hash("token") == one.session_hash("token")
    assert one.session_hash("token") != two.session_hash("token")
    assert "token" not in one.session_hash("token")


def test_sixteen_threads_voting_at_once_lose_nothing(tmp_path):
    store = VoteStore(tmp_path / "arena.sqlite")
    start = threading.Barrier(16)
    errors: list[Exception] = []

    def voter(n: int) -> None:
        start.wait()
        try:
            for i in range(25):
                store.record(make_vote(f"t{n}-{i}", session_hash=f"s{n}"))
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=voter, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = {v.battle_id for v in VoteStore(store.path).votes()}
    assert ids == {f"t{n}-{i}" for n in range(16) for i in range(25)}


WRITER = """
import sys, uuid
from lora_land.arena.store import Vote, VoteStore
store = VoteStore(sys.argv[1])
spec = {"id": "a", "kind": "adapter"}
for i in range(100000):
    battle = f"k{i}"
    store.record(Vote(battle, "glue_sst2", "p" * 200, spec, {"id": "b"}, "x" * 500, "y" * 500,
                      "left", "left", "s"))
    print(battle, flush=True)  # printed only after the commit returned
"""


def test_a_writer_killed_with_sigkill_loses_no_committed_vote(tmp_path):
    path = tmp_path / "arena.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
        env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT)},
    )
    committed = []
    for line in proc.stdout:
        committed.append(line.strip())
        if len(committed) >= 200:
            break
    proc.send_signal(signal.SIGKILL)  # mid-stream: it is writing the next votes
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {v.battle_id for v in VoteStore(path).votes()}
    assert set(committed) <= stored
