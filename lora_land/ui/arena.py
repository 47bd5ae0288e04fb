"""The Arena tab: blind battles between two contestants, votes, the reveal, and ratings.

Layout and wiring at the bottom (`build_arena_tab`); the handlers above it are plain
functions of their inputs, tested without a browser. Per-user data (the session token, the
current battle, its outputs, the rate limit) lives in `gr.State`; votes go to the SQLite
`VoteStore`. Battles, judging and ratings come from `lora_land.arena`.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from lora_land.arena import battles as bt
from lora_land.arena.run import stream_outputs
from lora_land.arena.store import VoteStore
from lora_land.errors import UserError
from lora_land.examples import ExampleLibrary
from lora_land.ui.arena_view import OVERALL, ratings_figure, ratings_frame, ratings_note
from lora_land.ui.contest import (
    field_updates,
    gold_for,
    max_new_slider,
    metric_line,
    score_outputs,
)
from lora_land.ui.playground import rate_limited

if TYPE_CHECKING:
    from lora_land.services import Services

VOTES = (
    ("left", "👈 A is better"),
    ("right", "👉 B is better"),
    ("tie", "🤝 Tie"),
    ("both_bad", "👎 Both are bad"),
)
VOTE_WORDS = {"left": "A is better", "right": "B is better", "tie": "a tie", "both_bad": "both bad"}
DEFAULT_NEW_TOKENS = 64


def task_choices(services: Services) -> list[tuple[str, str]]:
    tasks = services.catalog.tasks
    named = [(f"{tasks[t].ui_name} ({t})", t) for t in bt.battle_tasks(services)]
    return [("🎲 Random task", bt.RANDOM_TASK), *named]


def new_session(services: Services, task: str | None = None) -> dict[str, Any]:
    return {"token": None, "task": task, "example": None, "battle": None, "outputs": None}


def _token(session: dict) -> str:
    if not session.get("token"):  # per browser session, made on first use (never shared)
        session["token"] = uuid.uuid4().hex
    return session["token"]


def on_task(services: Services, library: ExampleLibrary, choice: str, session: dict):
    """Task chosen ("random" draws one now, with one of its examples): fields and chips."""
    session = dict(session or {})
    task_name, values = choice, None
    if choice == bt.RANDOM_TASK:
        task_name = random.choice(bt.battle_tasks(services))
        found = library.for_task(services.catalog.tasks[task_name])
        if found:
            example = random.choice(found)
            values = example.values
            session["example"] = {"values": example.values, "target": example.target}
    else:
        session["example"] = None
    task = services.catalog.tasks[task_name]
    session.update(task=task_name, battle=None, outputs=None)
    found = library.for_task(task)
    note = f"Task: **{task.ui_name}** (`{task_name}`) · scored with `{task.metric_fn}`"
    shown = [values.get(f, "") for f in task.fields] if values else None
    chips = gr.Dataset(samples=[[e.label] for e in found])
    return (*field_updates(task, shown), chips, note, session)


def on_example(services: Services, library: ExampleLibrary, index: int, session: dict):
    session = dict(session or {})
    task = services.catalog.tasks[session["task"]]
    example = library.for_task(task)[int(index)]
    session["example"] = {"values": example.values, "target": example.target, "row": example.row}
    return (*field_updates(task, [example.values[f] for f in task.fields]), session)


def _buttons(enabled: bool) -> list[Any]:
    return [gr.update(interactive=enabled) for _ in VOTES]


def start_battle(services: Services, new: int, session: dict, *values: str) -> Iterator[list[Any]]:
    """The Battle button: two anonymous panes stream; votes open when both are done."""
    session = dict(session or {})
    if not session.get("task"):
        session["task"] = bt.battle_tasks(services)[0]
    task = services.catalog.tasks[session["task"]]
    given = dict(zip(task.fields, values, strict=False))
    limit = session.get("limit") or bt.RateLimit(services.settings.arena_battles_per_minute)
    session["limit"] = limit
    try:
        limit.check("battles")
        gold, row = gold_for(task, given, session.get("example"))
        battle = bt.new_battle(
            services, task.name, given, max_new_tokens=int(new), gold=gold, row=row
        )
    except UserError as e:
        yield ["", "", "", "", f"⚠ {e}", *_buttons(False), session]
        return
    session.update(battle=battle, outputs=None, done_at=None, voted=False)
    cancel = threading.Event()
    try:
        for outputs in stream_outputs(
            services, [battle.left, battle.right], battle.prompt, int(new), cancel
        ):
            texts = [o.text if o.error is None else f"⚠ {o.error}" for o in outputs]
            status = ["✓ done" if o.done else "generating…" for o in outputs]
            yield [*texts, *status, "", *_buttons(False), session]
    finally:
        cancel.set()
    timings = [o.stats() for o in outputs]  # shown with the names: latency can give them away
    session.update(outputs=[o.text for o in outputs], timings=timings, done_at=time.time())
    errors = [o.error for o in outputs if o.error]
    if errors:
        note = f"⚠ This battle cannot be judged: {errors[0]}. Start a new battle."
        yield [*texts, *status, note, *_buttons(False), session]
        return
    note = "Both answers are in. Which is better? Names are revealed after your vote."
    yield [*texts, *status, note, *_buttons(True), session]


def cast_vote(services: Services, store: VoteStore, kind: str, session: dict) -> list[Any]:
    """A vote button: store the vote, reveal names and scores, update the ratings."""
    session = dict(session or {})
    battle: bt.Battle | None = session.get("battle")
    if battle is None or session.get("outputs") is None or session.get("voted"):
        why = "this battle already has your vote" if session.get("voted") else "no battle yet"
        skip = [gr.skip(), gr.skip()]
        return [f"⚠ {why}; start a new battle.", "", "", *_buttons(False), *skip, session]
    outputs = session["outputs"]
    scores = score_outputs(battle.task, battle.gold, battle.row, outputs, services)
    try:
        vote = bt.judge(
            services.settings,
            battle,
            outputs,
            kind,  # type: ignore[arg-type]
            store.session_hash(_token(session)),
            outputs_done_at=session["done_at"],
            scores=scores,
        )
        store.record(vote)
    except UserError as e:
        return [f"⚠ {e}", "", "", *_buttons(False), gr.skip(), gr.skip(), session]
    session["voted"] = True
    timings = session.get("timings") or ["", ""]
    stats = [
        f"**{c.label}**" + (f"\n\n{t}" if t else "") + metric_line(services, battle, s)
        for c, s, t in zip((battle.left, battle.right), scores, timings, strict=True)
    ]
    return [
        reveal_markdown(battle, vote),
        *stats,
        *_buttons(False),
        gr.update(value=battle.task),
        ratings_frame(services, store, battle.task),
        session,
    ]


def reveal_markdown(battle: bt.Battle, vote) -> str:
    lines = [
        f"### Revealed: A was **{battle.left.label}**, B was **{battle.right.label}**",
        f"Your vote: **{VOTE_WORDS[vote.vote]}** (task `{battle.task}`).",
    ]
    if vote.vote in ("left", "right") and vote.outcome == "tie":
        lines.append(f"The two answers are identical ({bt.NOT_DECISIVE}): counted as a tie.")
    if vote.flag == bt.TOO_FAST:
        lines.append(
            f"Flagged: voted {vote.read_s:.1f} s after the answers finished, faster than they "
            "can be read; kept, but left out of the ratings."
        )
    return "\n\n".join(lines)


def new_battle_reset(session: dict) -> list[Any]:
    """ "New battle": clear the panes, keep the task and the fields."""
    session = dict(session or {})
    session.update(battle=None, outputs=None, voted=False)
    return ["", "", "", "", "", *_buttons(False), session]


def build_arena_tab(
    services: Services,
    examples: ExampleLibrary | None = None,
    store: VoteStore | None = None,
    limiter: Any = None,
) -> None:
    """Build the tab inside the caller's Blocks/Tab context (`store`: the vote store, by
    default at `settings.arena_db`; `limiter`: the per-client `RateLimiter`, or None)."""
    library = examples or ExampleLibrary.from_settings(services.settings)
    store = store or VoteStore(services.settings.arena_db)
    tasks = bt.battle_tasks(services)
    if not tasks:
        gr.Markdown("No task has two contestants here: serve an adapter to open the Arena.")
        return
    task0 = services.catalog.tasks[tasks[0]]
    session = gr.State(new_session(services, task0.name))
    gr.Markdown(
        "Two anonymous contestants answer the same prompt. Vote for the better answer; the "
        "names are revealed after your vote."
    )
    with gr.Row():
        task_dd = gr.Dropdown(
            task_choices(services), value=task0.name, label="Task", elem_id="arena-task"
        )
        new = max_new_slider(services, DEFAULT_NEW_TOKENS, "arena-max-new")
    task_note = gr.Markdown(f"Task: **{task0.ui_name}** (`{task0.name}`)", elem_id="arena-note")
    chips = gr.Dataset(
        components=["textbox"],
        samples=[[e.label] for e in library.for_task(task0)],
        type="index",
        label="Example prompts",
        elem_id="arena-examples",
    )
    fields = [
        gr.Textbox(lines=2, elem_id=f"arena-field-{i}", **update)
        for i, update in enumerate(field_updates(task0, None, as_kwargs=True))
    ]
    with gr.Row():
        battle_btn = gr.Button("⚔️ Battle", variant="primary", elem_id="arena-battle")
        reset_btn = gr.Button("New battle", elem_id="arena-new")
    panes, status = [], []
    with gr.Row(equal_height=True):
        for side in ("A", "B"):
            with gr.Column():
                gr.Markdown(f"#### Model {side}")
                panes.append(
                    gr.Textbox(
                        lines=6,
                        interactive=False,
                        show_label=False,
                        elem_id=f"arena-{side.lower()}-text",
                    )
                )
                status.append(gr.Markdown(elem_id=f"arena-{side.lower()}-stats"))
    with gr.Row():
        buttons = [
            gr.Button(label, interactive=False, elem_id=f"arena-vote-{kind}")
            for kind, label in VOTES
        ]
    reveal = gr.Markdown(elem_id="arena-reveal")
    gr.Markdown("### Ratings")
    scope = gr.Dropdown(
        [("Overall", OVERALL), *task_choices(services)[1:]],
        value=task0.name,
        label="Ratings for",
        elem_id="arena-scope",
    )
    frame0 = ratings_frame(services, store, task0.name)
    with gr.Row():
        table = gr.Dataframe(frame0, interactive=False, elem_id="arena-ratings", scale=3)
        chart = gr.Plot(ratings_figure(frame0), elem_id="arena-chart", scale=2)
    note = gr.Markdown(ratings_note(store))

    task_dd.input(
        partial(on_task, services, library),
        [task_dd, session],
        [*fields, chips, task_note, session],
        api_name="arena_task",
    )
    chips.click(
        partial(on_example, services, library),
        [chips, session],
        [*fields, session],
        api_visibility="private",
    )

    def battle(new_tokens, state, f0, f1, f2, f3, request: gr.Request):
        message = rate_limited(limiter, request)
        if message:
            yield ["", "", "", "", f"⚠ {message}", *_buttons(False), state]
            return
        yield from start_battle(services, new_tokens, state, f0, f1, f2, f3)

    started = battle_btn.click(
        battle,
        [new, session, *fields],
        [*panes, *status, reveal, *buttons, session],
        api_name="arena_battle",
    )
    for (kind, _), button in zip(VOTES, buttons, strict=True):
        button.click(
            partial(cast_vote, services, store, kind),
            [session],
            [reveal, *status, *buttons, scope, table, session],
            api_name=f"arena_vote_{kind}",
        ).then(lambda: ratings_note(store), None, note, api_visibility="private")
    reset_btn.click(
        new_battle_reset,
        [session],
        [*panes, *status, reveal, *buttons, session],
        cancels=[started],
        api_visibility="private",
    )
    table.change(ratings_figure, [table], chart, api_visibility="private")

    def arena_ratings(scope_name: str):  # on load and when the scope changes: current ratings
        return ratings_frame(services, store, scope_name), ratings_note(store)

    gr.on(None, arena_ratings, [scope], [table, note], api_name="arena_ratings")
