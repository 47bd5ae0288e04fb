"""Arena handlers with a FakeEngine, the real catalog and a real SQLite vote store."""

from __future__ import annotations

import pytest

from lora_land.arena.store import VoteStore
from lora_land.examples import ExampleLibrary
from lora_land.ui import arena as ar
from tests.arena.conftest import BASE, SST2, SST2_DPO, make_services

N_OUT = 5  # start_battle yields: A, B, A status, B status, note, 4 buttons, session


def final(generator):
    *_, last = generator
    return last


def play(services, session, sentence="a gorgeous, witty film"):
    session = dict(session, task="glue_sst2")
    return final(ar.start_battle(services, 8, session, sentence, "", "", ""))


def test_a_battle_streams_two_anonymous_panes_then_opens_the_votes(tmp_path):
    services = make_services(tmp_path)
    out = play(services, ar.new_session(services))
    session = out[-1]
    battle = session["battle"]
    replies = {SST2: "1", SST2_DPO: "1 (positive)", BASE: "The sentence is positive"}
    assert out[:2] == [replies[battle.left.id], replies[battle.right.id]]
    assert "Names are revealed after your vote" in out[4]
    assert all(b["interactive"] for b in out[N_OUT : N_OUT + 4])
    assert battle.left.label not in "".join(str(x) for x in out[:5])  # still anonymous


def test_voting_stores_the_vote_reveals_the_names_and_moves_the_rating(tmp_path):
    services = make_services(tmp_path, arena_min_vote_s=0.0, arena_read_chars_per_s=1e9)
    store = VoteStore(tmp_path / "votes.sqlite")
    session = play(services, ar.new_session(services))[-1]
    battle = session["battle"]
    out = ar.cast_vote(services, store, "left", session)
    assert f"A was **{battle.left.label}**" in out[0] and "B was" in out[0]
    [vote] = store.votes()
    assert (vote.vote, vote.left["id"], vote.flag) == ("left", battle.left.id, None)
    table = out[-2]
    row = {r["Contestant"]: r for r in table.to_dict("records")}
    assert row[battle.left.id]["Rating"] > row[battle.right.id]["Rating"]
    assert row[battle.left.id]["Votes"] == 1
    again = ar.cast_vote(services, store, "right", out[-1])
    assert "already has your vote" in again[0] and store.count() == 1


def test_a_quick_vote_is_flagged_and_left_out_of_ratings(tmp_path):
    services = make_services(tmp_path, arena_min_vote_s=60.0)
    store = VoteStore(tmp_path / "votes.sqlite")
    session = play(services, ar.new_session(services))[-1]
    out = ar.cast_vote(services, store, "right", session)
    assert "Flagged" in out[0] and store.votes()[0].flag == "too_fast"
    assert store.battles() == [] and out[-2].empty


def test_an_example_brings_its_gold_answer_and_scores_are_revealed(tmp_path, samples_dir):
    services = make_services(tmp_path, arena_min_vote_s=0.0)
    library = ExampleLibrary(samples_dir=samples_dir)
    *_, session = ar.on_task(services, library, "glue_sst2", ar.new_session(services))
    *fields, session = ar.on_example(services, library, 0, session)
    values = [f["value"] for f in fields]
    out = final(ar.start_battle(services, 8, session, *values))
    assert out[-1]["battle"].gold is not None
    voted = ar.cast_vote(services, VoteStore(tmp_path / "v.sqlite"), "tie", out[-1])
    assert "Score (binary_accuracy_flex) against the gold answer" in voted[1]
    assert out[-1]["battle"].left.label in voted[1] and "TTFT" in voted[1]  # timings revealed


def test_bad_input_and_the_rate_limit_are_explained(tmp_path):
    services = make_services(tmp_path, arena_battles_per_minute=1)
    session = ar.new_session(services, "glue_sst2")
    empty = final(ar.start_battle(services, 8, session, " ", "", "", ""))
    assert "sentence" in empty[4] and "⚠" in empty[4]
    first = play(services, empty[-1])
    limited = final(ar.start_battle(services, 8, first[-1], "fine", "", "", ""))
    assert "too many battles: the limit is 1 per 60 s" in limited[4]


def test_random_task_draws_a_task_with_its_fields(tmp_path, samples_dir):
    services = make_services(tmp_path)
    library = ExampleLibrary(samples_dir=samples_dir)
    *fields, _chips, note, session = ar.on_task(services, library, "random", {})
    assert session["task"] in ("glue_sst2", "glue_cola") and session["task"] in note
    assert fields[0]["visible"] and fields[0]["value"]


def test_ratings_sit_beside_the_metric_ranking_and_the_chart_shows_intervals(tmp_path):
    from lora_land.ui import arena_view as av
    from tests.arena.test_store import make_vote

    services = make_services(tmp_path)
    store = VoteStore(tmp_path / "v.sqlite")
    base = {"id": BASE, "kind": "base"}
    adapter = {"id": SST2, "kind": "adapter"}
    for i in range(6):  # people prefer the base 4 to 2, the metric says the adapter
        won = "left" if i < 4 else "right"
        store.record(make_vote(f"b{i}", left=base, right=adapter, vote=won, outcome=won))
    frame = av.ratings_frame(services, store, "glue_sst2")
    rows = {r["Contestant"]: r for r in frame.to_dict("records")}
    assert rows[BASE]["Rank"] == 1 and rows[BASE]["Rating"] > 1000 > rows[SST2]["Rating"]
    assert rows[BASE]["W / L / T"] == "4 / 2 / 0" and rows[BASE]["Votes"] == 6
    measured = {(m.adapter or BASE): m for m in services.catalog.measured if m.task == "glue_sst2"}
    assert rows[SST2]["Metric score"] == f"{measured[SST2].score:.3f} (n={measured[SST2].n})"
    assert rows[SST2]["Metric rank"] == 1 and rows[BASE]["Metric rank"] == 2  # they disagree
    assert av.contest_metric(services, "glue_sst2", "reference:gpt-4")[0] == pytest.approx(
        services.catalog.tasks["glue_sst2"].gpt4
    )
    figure = av.ratings_figure(frame)
    [trace] = figure.data
    assert list(trace.y) == [BASE, SST2]
    low, high = (float(x) for x in rows[BASE]["95% CI"].split(" – "))
    assert trace.error_x.arrayminus[0] == pytest.approx(rows[BASE]["Rating"] - low)
    assert trace.error_x.array[0] == pytest.approx(high - rows[BASE]["Rating"])
    assert av.ratings_figure(av.ratings_frame(services, store, "glue_cola")).data == ()
