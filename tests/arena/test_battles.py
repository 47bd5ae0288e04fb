"""Contestant pools, drawing battles and what a vote means (FakeEngine, real catalog)."""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace

import pytest

from lora_land.arena import contestants as cs
from lora_land.arena.battles import (
    RANDOM_TASK,
    TOO_FAST,
    RateLimit,
    battle_tasks,
    judge,
    new_battle,
    outcome_of,
)
from lora_land.errors import PromptError, RateLimitedError, UserError
from tests.arena.conftest import BASE, SST2, SST2_DPO, make_services
from tests.openai_server import OpenAIServer

SENTENCE = {"sentence": "a gorgeous, witty film"}


def test_pool_holds_adapter_variant_and_base_and_gpt4_only_when_configured(tmp_path):
    ids = [c.id for c in cs.pool(make_services(tmp_path), "glue_sst2")]
    assert ids == [SST2, SST2_DPO, BASE]
    dpo = cs.pool(make_services(tmp_path), "glue_sst2")[1]
    assert (dpo.variant, dpo.adapter_id, dpo.kind) == ("dpo", SST2_DPO, "adapter")
    with OpenAIServer(reply="1") as server:
        ids = [c.id for c in cs.pool(make_services(tmp_path, server.base_url), "glue_sst2")]
    assert ids == [SST2, SST2_DPO, BASE, "reference:gpt-4"]


def test_find_refuses_ids_outside_the_pool(services):
    assert [c.id for c in cs.find(services, "glue_sst2", [BASE, SST2])] == [BASE, SST2]
    with pytest.raises(UserError, match=r"not a contestant for glue_sst2: /etc/passwd"):
        cs.find(services, "glue_sst2", [BASE, "/etc/passwd"])


def test_battle_draws_two_different_contestants_and_both_sides_occur(services):
    sides = set()
    for seed in range(40):
        battle = new_battle(
            services, "glue_sst2", SENTENCE, max_new_tokens=8, rng=random.Random(seed)
        )
        assert battle.left.id != battle.right.id
        assert {battle.left.id, battle.right.id} <= {SST2, SST2_DPO, BASE}
        assert "a gorgeous, witty film" in battle.prompt
        sides.add((battle.left.id, battle.right.id))
    assert (SST2, BASE) in sides and (BASE, SST2) in sides


def test_random_task_picks_a_task_with_two_contestants(services):
    assert battle_tasks(services) == ["glue_cola", "glue_sst2"]
    tasks = set()
    for seed in range(20):
        values = {"sentence": "The book was read by me."}
        battle = new_battle(
            services, RANDOM_TASK, values, max_new_tokens=8, rng=random.Random(seed)
        )
        tasks.add(battle.task)
    assert tasks == {"glue_cola", "glue_sst2"}


def test_input_limits_name_the_problem(tmp_path):
    services = make_services(tmp_path, arena_max_prompt_chars=300)
    with pytest.raises(PromptError, match=r"has \d+ characters; the arena's limit is 300"):
        new_battle(services, "glue_sst2", {"sentence": "x" * 400}, max_new_tokens=8)
    with pytest.raises(PromptError, match="sentence"):
        new_battle(services, "glue_sst2", {"sentence": "  "}, max_new_tokens=8)
    with pytest.raises(UserError, match="fewer than two contestants"):
        new_battle(services, "covid", {"sentence": "x"}, max_new_tokens=8)


def test_identical_outputs_and_both_bad_are_not_decisive():
    assert outcome_of("left", "1", "0") == "left"
    assert outcome_of("right", "1", "0") == "right"
    assert outcome_of("left", "same answer", "same answer ") == "tie"
    assert outcome_of("both_bad", "1", "0") == "tie"
    with pytest.raises(UserError, match="unknown vote 'A'"):
        outcome_of("A", "1", "0")


def test_a_vote_faster_than_reading_is_flagged_and_a_slow_one_is_counted(services):
    settings = replace(services.settings, arena_min_vote_s=1.0, arena_read_chars_per_s=10.0)
    battle = new_battle(services, "glue_sst2", SENTENCE, max_new_tokens=8)
    outputs = ["1", "The sentence is positive"]  # 25 characters: 2.5 s to read at 10 chars/s
    done = time.time()
    fast = judge(settings, battle, outputs, "left", "h", outputs_done_at=done, now=done + 2.0)
    slow = judge(settings, battle, outputs, "left", "h", outputs_done_at=done, now=done + 3.0)
    assert fast.flag == TOO_FAST and not fast.counted
    assert slow.flag is None and slow.counted and slow.read_s == pytest.approx(3.0)
    assert slow.left["id"] == battle.left.id and slow.left["params"]["max_new_tokens"] == 8


def test_rate_limit_refuses_the_extra_action_and_says_when_to_retry():
    limit = RateLimit(limit=2, window_s=60)
    limit.check("battles", now=0)
    limit.check("battles", now=10)
    with pytest.raises(RateLimitedError, match=r"limit is 2 per 60 s; try again in 40 s"):
        limit.check("battles", now=20)
    limit.check("battles", now=61)  # the first one has left the window


def test_recorded_gpt4_joins_only_battles_on_prompts_it_has_recorded(tmp_path):
    recordings = tmp_path / "recorded.jsonl"
    services = make_services(tmp_path, reference_recordings=recordings)
    task = services.catalog.tasks["glue_sst2"]
    recorded_prompt = task.render(SENTENCE)
    recordings.write_text(f'{{"prompt": {json.dumps(recorded_prompt)}, "output": "1"}}\n')
    services.reference.cache.import_recordings(recordings, "gpt-4")
    assert "reference:gpt-4" in [c.id for c in cs.pool(services, "glue_sst2")]
    drawn_on_recorded, drawn_elsewhere = set(), set()
    for seed in range(30):
        rng = random.Random(seed)
        battle = new_battle(services, "glue_sst2", SENTENCE, max_new_tokens=8, rng=rng)
        drawn_on_recorded |= {battle.left.id, battle.right.id}
        other = {"sentence": "an unrecorded sentence"}
        battle = new_battle(services, "glue_sst2", other, max_new_tokens=8, rng=rng)
        drawn_elsewhere |= {battle.left.id, battle.right.id}
    assert "reference:gpt-4" in drawn_on_recorded
    assert "reference:gpt-4" not in drawn_elsewhere
