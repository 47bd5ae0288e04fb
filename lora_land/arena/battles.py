"""Battles: two anonymous contestants on one prompt, and what a vote on them means.

`new_battle` checks the input (length limit, the template's fields), picks the task ("random"
picks one of the tasks with at least two contestants) and draws two different contestants
from the task's pool, left and right in random order. `judge` turns a vote into what ratings
count: both-bad counts as a tie (as FastChat does), a battle whose two outputs are identical
is never decisive, and a vote cast faster than the outputs could be read is flagged and left
out of ratings. `RateLimit` caps how often one session may act.

Pure logic on plain values: no Gradio, no engine, no database (the caller stores the vote).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lora_land.arena.contestants import Contestant, pool
from lora_land.arena.store import VOTE_KINDS, Outcome, Vote, VoteKind
from lora_land.errors import PromptError, RateLimitedError, UserError

if TYPE_CHECKING:
    from lora_land.config import Settings
    from lora_land.services import Services

RANDOM_TASK = "random"
NOT_DECISIVE = "identical outputs"  # note on a vote whose outputs are the same text
TOO_FAST = "too_fast"  # flag: cast before the outputs could be read


@dataclass(frozen=True)
class Battle:
    id: str
    task: str
    prompt: str
    left: Contestant
    right: Contestant
    params: Mapping[str, Any]  # decoding parameters both contestants ran with
    gold: str | None = None  # the example's answer, when the prompt is an example
    row: Mapping[str, Any] | None = None
    started: float = field(default_factory=time.time)


def battle_tasks(services: Services) -> list[str]:
    """Tasks with at least two contestants here (an adapter or GPT-4 beside the base)."""
    return [t for t in sorted(services.catalog.tasks) if len(pool(services, t)) >= 2]


def new_battle(
    services: Services,
    task: str,
    values: Mapping[str, str],
    *,
    max_new_tokens: int,
    rng: random.Random | None = None,
    gold: str | None = None,
    row: Mapping[str, Any] | None = None,
) -> Battle:
    """A battle on `task` (or a random task) for the filled template; `UserError` if unusable."""
    rng = rng or random.Random()
    tasks = battle_tasks(services)
    if task == RANDOM_TASK:
        if not tasks:
            raise UserError("no task here has two contestants; serve an adapter first")
        task = rng.choice(tasks)
    elif task not in tasks:
        raise UserError(f"{task!r} has fewer than two contestants here; pick one of {tasks}")
    spec = services.catalog.tasks[task]
    prompt = spec.render(values)  # PromptError names the empty field
    limit = services.settings.arena_max_prompt_chars
    if len(prompt) > limit:
        raise PromptError(
            f"the prompt has {len(prompt)} characters; the arena's limit is {limit}. "
            "Shorten the fields."
        )
    found = [c for c in pool(services, task) if _can_answer(services, c, prompt)]
    if len(found) < 2:
        raise UserError(f"only {len(found)} contestant can answer this prompt here; try another")
    left, right = rng.sample(found, 2)
    params = {"max_new_tokens": int(max_new_tokens), "temperature": 0.0, "seed": None}
    return Battle(uuid.uuid4().hex, task, prompt, left, right, params, gold, row)


def _can_answer(services: Services, contestant: Contestant, prompt: str) -> bool:
    """GPT-4 with recordings but no endpoint can only answer the prompts it has recorded."""
    if contestant.kind != "reference" or getattr(services.reference, "configured", False):
        return True
    return services.reference.lookup(prompt) is not None


def min_read_s(settings: Settings, outputs: Sequence[str]) -> float:
    """The least time a person needs to read both outputs before voting."""
    chars = sum(len(o) for o in outputs)
    return max(settings.arena_min_vote_s, chars / settings.arena_read_chars_per_s)


def outcome_of(vote: VoteKind, left_output: str, right_output: str) -> Outcome:
    """What ratings count: identical outputs and both-bad are ties."""
    if vote not in VOTE_KINDS:
        raise UserError(f"unknown vote {vote!r}; one of {', '.join(VOTE_KINDS)}")
    if vote in ("tie", "both_bad") or left_output.strip() == right_output.strip():
        return "tie"
    return vote  # type: ignore[return-value]


def judge(
    settings: Settings,
    battle: Battle,
    outputs: Sequence[str],
    vote: VoteKind,
    session_hash: str,
    *,
    outputs_done_at: float,
    now: float | None = None,
    scores: Sequence[float | None] = (None, None),
) -> Vote:
    """The vote to store for `battle`: outcome, the too-fast flag, timings and scores."""
    now = time.time() if now is None else now
    left_output, right_output = outputs
    read_s = max(0.0, now - outputs_done_at)
    flag = TOO_FAST if read_s < min_read_s(settings, outputs) else None
    return Vote(
        battle_id=battle.id,
        task=battle.task,
        prompt=battle.prompt,
        left=battle.left.spec(battle.params),
        right=battle.right.spec(battle.params),
        left_output=left_output,
        right_output=right_output,
        vote=vote,
        outcome=outcome_of(vote, left_output, right_output),
        session_hash=session_hash,
        flag=flag,
        read_s=round(read_s, 3),
        left_score=scores[0],
        right_score=scores[1],
        created=now,
    )


@dataclass
class RateLimit:
    """At most `limit` actions per `window_s` seconds (per session: keep one in gr.State)."""

    limit: int
    window_s: float = 60.0
    times: list[float] = field(default_factory=list)

    def check(self, what: str, now: float | None = None) -> None:
        """Record one action, or raise `RateLimitedError` saying when to try again."""
        now = time.time() if now is None else now
        self.times = [t for t in self.times if now - t < self.window_s]
        if len(self.times) >= self.limit:
            wait = self.window_s - (now - self.times[0])
            raise RateLimitedError(
                f"too many {what}: the limit is {self.limit} per {self.window_s:g} s; "
                f"try again in {wait:.0f} s"
            )
        self.times.append(now)
