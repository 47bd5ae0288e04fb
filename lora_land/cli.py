"""`lora-land` (or `python -m lora_land.cli`): offline tools for people at a terminal.

Subcommands: `prepare` (the embedded model), `train` (a LoRA adapter on a task's template),
`evaluate` (a base or adapter on a task's rows, recorded in leaderboards/measured_here.csv),
`zoo` (the mini zoo v2 queue: train on the train split, choose on dev, measure once, ship
into assets/adapters/), `export-preferences` (arena votes as DPO/reward-model pairs or CSV),
`rlhf` (online iterative DPO from a zoo adapter, installed as `<task>@dpo`), `reward-model`
(a reward model on pairs).
The web app is started by `app.py`, not here. Errors meant for users print without a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from lora_land.config import EMBEDDED_BASE, PROJECT_ROOT, Settings
from lora_land.errors import UserError

TRAIN_SAMPLES = PROJECT_ROOT.parent / "shared" / "data" / "samples" / "train"
ZOO_DIR = PROJECT_ROOT / "assets" / "adapters"


def _default_train_data(task: str) -> Path:
    path = TRAIN_SAMPLES / f"{task}.jsonl"
    if not path.is_file():
        raise UserError(f"no --data given and no local train rows for {task!r} at {path}")
    return path


def cmd_prepare(args: argparse.Namespace, settings: Settings) -> int:
    from lora_land.engine.prepare import prepare_embedded_model

    print(prepare_embedded_model(Path(args.models_dir) if args.models_dir else settings.models_dir))
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from lora_land.training.trainer import TrainConfig, train

    out = Path(args.out) if args.out else PROJECT_ROOT / "runs" / "adapters" / args.task
    config = TrainConfig(
        task=args.task,
        base=args.base,
        data=Path(args.data or _default_train_data(args.task)),
        out=out,
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        max_seq_len=args.max_seq_len,
        rank=args.rank,
        alpha=args.alpha or 2 * args.rank,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        split=args.split or ("all" if args.data else "train"),
    )
    result = train(config)
    resumed = f" (resumed at step {result.resumed_from})" if result.resumed_from else ""
    print(
        f"adapter written to {result.out}: {result.steps} steps{resumed}, "
        f"final loss {result.final_loss:.4f}"
    )
    return 0


def _adapter_source(adapter: str, base_name: str, task: str):
    """`--adapter`: a deployment id `<base>/<task>`, a zoo task name, or a local directory."""
    from lora_land.deployment import AdapterSource, split_variant

    path = Path(adapter).expanduser()
    if path.is_dir() and (path / "adapter_config.json").is_file():
        return AdapterSource(id=f"{base_name}/{task}", task=task, path=path.resolve())
    adapter_id = adapter if "/" in adapter else f"{base_name}/{adapter}"
    if adapter_id.startswith(f"{base_name}/"):
        local = ZOO_DIR / adapter_id.split("/", 1)[1]  # "<task>" or a variant "<task>@dpo"
        if base_name == EMBEDDED_BASE and (local / "adapter_config.json").is_file():
            return AdapterSource(id=adapter_id, task=split_variant(local.name)[0], path=local)
    raise UserError(
        f"--adapter {adapter!r} is neither a local adapter directory nor a zoo adapter of "
        f"{base_name!r} (zoo: {', '.join(sorted(p.name for p in ZOO_DIR.glob('*'))) or 'empty'})"
    )


def evaluate_task(
    settings: Settings,
    task_name: str,
    base_arg: str,
    data: Path,
    adapter: str | None = None,
    *,
    limit: int = 0,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    measured: Path | None = None,
    predictions: Path | None = None,
):
    """Evaluate a base (and optionally one adapter) on a task's rows and record the result.

    Steps: 1. task, rows, base; 2. a one-adapter deployment; 3. the real engine; 4. run and
    score; 5. the "measured here" row, the adapter's model card, predictions if asked.
    """
    from lora_land.catalog.measured import MEASURED_PATH
    from lora_land.deployment import BaseSource, Deployment
    from lora_land.engine.engine import Engine
    from lora_land.evaluation.bases import resolve_base
    from lora_land.evaluation.runner import evaluate_rows, measured_row, record
    from lora_land.evaluation.tasks import load_task, read_rows
    from lora_land.training.model_card import display_path, record_eval

    task = load_task(task_name)
    rows = read_rows(Path(data))[: limit or None]
    base = resolve_base(base_arg, settings)
    source = "embedded" if base.name == EMBEDDED_BASE else base.source
    adapters = {}
    if adapter:
        found = _adapter_source(adapter, base.name, task.name)
        adapters[found.id] = found
    deployment = Deployment(
        name="evaluate",
        base=BaseSource(base.name, source, base.name, base.hub_id),
        adapters=adapters,
    )
    # batches of rows: the compiled decode step serves one or two (engine/compiled.py)
    engine = Engine.from_settings(dataclasses.replace(settings, compile="off"), deployment)
    adapter_id = next(iter(adapters), None)
    try:
        report = evaluate_rows(
            engine, task, rows, adapter_id, batch_size=batch_size, max_new_tokens=max_new_tokens
        )
    finally:
        close = getattr(engine, "close", None)
        if close:
            close()
    measured = measured or MEASURED_PATH
    row = measured_row(report, base.name, base.hub_id, display_path(data), adapter_id or "")
    if limit == 0:  # partial runs never replace a full measurement
        record(report, row, measured)
    if adapter_id:
        base_score = _base_score(measured, row)
        record_eval(adapters[adapter_id].path, {**_row_dict(row), "base_score": base_score})
    if predictions:
        with open(predictions, "w") as f:
            for rec in report.records:
                f.write(json.dumps(rec) + "\n")
    return report, row


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    report, row = evaluate_task(
        settings,
        args.task,
        args.base,
        Path(args.data),
        args.adapter,
        limit=args.limit,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        measured=Path(args.measured) if args.measured else None,
        predictions=Path(args.predictions) if args.predictions else None,
    )
    who = row.adapter or f"{row.base_model} (base)"
    partial = " (partial: --limit, not recorded)" if args.limit else ""
    print(
        f"{row.task} {who}: {report.metric} = {report.score:.4f} on {report.n} rows "
        f"of {row.data}{partial}"
    )
    return 0


def cmd_zoo(args: argparse.Namespace, settings: Settings) -> int:
    """Zoo v2: run the resumable queue (train -> choose on dev -> measure once), then ship."""
    from lora_land.training import queue
    from lora_land.training.ship import ship_all
    from lora_land.training.zoo import write_zoo_readme

    runs = Path(args.runs) if args.runs else queue.RUNS_DIR
    if args.status:
        for task, what in queue.status(runs):
            print(f"{task:22s} {what}")
        return 0
    if not args.ship:  # --resume, or no flag: the whole thing
        queue.run_queue(runs)
    for task, what in ship_all(runs).items():
        print(f"{task:22s} {what}")
    print(f"zoo README: {write_zoo_readme(runs=runs)}")
    return 0


def _row_dict(row) -> dict:
    from dataclasses import asdict

    return asdict(row)


def _base_score(path: Path, row) -> float | None:
    from lora_land.catalog.measured import read_measured

    for r in read_measured(path):
        if (r.task, r.base_model, r.adapter, r.data) == (row.task, row.base_model, "", row.data):
            return r.score
    return None


# --- export-preferences (arena votes -> preference data) -------------------------------------


def cmd_export_preferences(args: argparse.Namespace, settings: Settings) -> int:
    """Arena votes as DPO/reward pairs (JSONL) or raw votes (CSV), to --out or stdout."""
    from lora_land.arena import export
    from lora_land.arena.store import VoteStore

    path = Path(args.db) if args.db else settings.arena_db
    if not path.is_file():
        raise UserError(
            f"no arena votes yet: {path} does not exist (set --db or LORA_LAND_DATA_DIR)"
        )
    votes = VoteStore(path).votes(task=args.task)
    if args.include_ties and not args.out:
        raise UserError("--include-ties writes a second file next to --out; give --out")
    out = open(args.out, "w", encoding="utf-8", newline="") if args.out else sys.stdout  # noqa: SIM115
    try:
        if args.format == "csv":
            n = export.write_csv(votes, out)
            what = "votes"
        else:
            n = export.write_jsonl(export.preference_rows(votes), out)
            what = "preference pairs"
    finally:
        if out is not sys.stdout:
            out.close()
    print(
        f"wrote {n} {what} from {path}" + (f" to {args.out}" if args.out else ""), file=sys.stderr
    )
    if args.include_ties:
        ties = export.ties_path(Path(args.out))
        with ties.open("w", encoding="utf-8") as f:
            count = export.write_jsonl(export.tie_rows(votes), f)
        print(f"wrote {count} ties to {ties}", file=sys.stderr)
    return 0


def _add_export_preferences(sub) -> None:
    x = sub.add_parser("export-preferences", help="arena votes as DPO pairs (JSONL) or CSV")
    x.add_argument("--format", choices=["dpo", "csv"], default="dpo")
    x.add_argument("--task", help="one task only (default: all)")
    x.add_argument("--out", help="output file (default: stdout)")
    x.add_argument("--include-ties", action="store_true", help="ties to OUT.ties.jsonl")
    x.add_argument("--db", help="vote database (default: the settings' arena database)")
    x.set_defaults(func=cmd_export_preferences)


# -- rlhf and reward-model (issue 11: the RLHF Workflow loop) ---------------------------------
def cmd_rlhf(args: argparse.Namespace, settings: Settings) -> int:
    """Online iterative DPO from a supervised adapter, installed as `<task>@dpo`."""
    from lora_land.evaluation.bases import resolve_base
    from lora_land.evaluation.tasks import load_task
    from lora_land.rlhf.dpo import DpoSettings
    from lora_land.rlhf.loop import LoopConfig, run_loop

    run_dir = Path(args.run_dir) if args.run_dir else PROJECT_ROOT / "runs" / "rlhf" / args.task
    if args.background:
        return _in_background(args.argv, run_dir / "rlhf.log")
    task = load_task(args.task)  # an unknown task is named before anything loads
    if not Path(args.reward).expanduser().is_dir():
        from lora_land.rlhf.rewards import load_reward

        load_reward(args.reward, task)  # a bad --reward too (a reward model loads later)
    base = resolve_base(args.base, settings)
    source = _adapter_source(args.adapter or args.task, base.name, args.task)
    if source.task != args.task:
        raise UserError(
            f"--adapter {args.adapter!r} is for task {source.task!r}, not {args.task!r}"
        )
    if args.out:
        out = Path(args.out)
    elif base.name == EMBEDDED_BASE:
        out = ZOO_DIR / f"{args.task}@dpo"
    else:
        out = run_dir / "dpo"
    if args.eval_on == "choose":
        return _rlhf_chosen_on_dev(args, run_dir, out)
    if args.eval_on == "dev":
        out = None  # a run that chooses options is not installed, nor recorded
    config = LoopConfig(
        task=args.task,
        adapter=source.path,
        adapter_id=source.id,
        run_dir=run_dir,
        out=out,
        base=args.base,
        iterations=args.iterations,
        prompts=args.prompts,
        k=args.k,
        reward=args.reward,
        length_penalty=args.length_penalty,
        balance_pairs=args.balance_pairs,
        max_length_ratio=args.max_length_ratio,
        max_new_tokens=args.max_new_tokens,
        eval_limit=args.eval_limit,
        eval_split=args.eval_on,
        eval_max_new_tokens=args.eval_max_new_tokens,
        seed=args.seed,
        time_budget_s=args.time_budget * 60,
        dpo=DpoSettings(
            beta=args.beta,
            lr=args.lr,
            epochs=args.epochs,
            batch_size=args.batch_size,
            max_steps=args.max_steps,
            sft_weight=args.sft_weight,
        ),
    )

    def show(record: dict) -> None:
        ev = record["eval"]
        diff = ev.get("vs_pi0")
        vs = (
            f", vs pi_0 {diff['mean']:+.3f} [{diff['low']:+.3f}, {diff['high']:+.3f}]"
            if diff
            else ""
        )
        pairs = f", {record['pairs']} pairs" if record["iteration"] else ""
        sc = ev["score"]
        inputs = f", {sc['inputs']} distinct inputs" if sc.get("inputs") else ""
        print(
            f"pi_{record['iteration']}: {ev['metric']} {sc['mean']:.3f} "
            f"[{sc['low']:.3f}, {sc['high']:.3f}] (n={sc['n']}{inputs}){pairs}{vs}",
            flush=True,
        )

    result = run_loop(config, settings, on_record=show)
    if result.stopped:
        print(f"stopped: {result.stopped}; run again with the same options to resume")
        return 0
    if result.installed is None:
        print(
            "measured on the dev split: a dev run installs nothing"
            " (--eval-on choose installs the iteration best there)"
        )
        return 0
    print(f"installed {result.installed}")
    if result.installed and not args.eval_limit and not args.no_record:
        _record_dpo(config, base, result, out)
    return 0


def _rlhf_chosen_on_dev(args: argparse.Namespace, run_dir: Path, out: Path) -> int:
    """`--eval-on choose`: the loop measured on the dev split (RUN_DIR/dev), the iteration
    best there chosen, and, unless the variant served at `out` scored higher on the same dev
    rows (`--replace` installs regardless), pi_0 up to that policy measured on the
    evaluation rows (RUN_DIR/eval, reusing the dev run's training files) and installed."""
    from lora_land.rlhf.loop import (
        CHOSEN_FILE,
        SUMMARY_FILE,
        against_served,
        best_on_dev,
        dev_choice,
        read_json,
        reuse_training,
        with_intervals,
        write_json,
    )

    dev_dir, eval_dir = run_dir / "dev", run_dir / "eval"
    argv = _without_options(args.argv, ("--eval-on", "--run-dir"))
    code = main([*argv, "--eval-on", "dev", "--run-dir", str(dev_dir)])
    records = sorted(dev_dir.glob("iter*/record.json"), key=lambda p: int(p.parent.name[4:]))
    if code or len(records) < args.iterations + 1:
        return code or 1  # stopped early (time budget): run again to resume
    from lora_land.evaluation.scored import prompt_groups
    from lora_land.evaluation.tasks import load_task
    from lora_land.training.split import load_split

    dev_rows = load_split(args.task).dev[: args.eval_limit or None]  # the dev run's rows
    groups = prompt_groups(load_task(args.task), dev_rows)
    curve = [read_json(p) for p in records]
    curve = [with_intervals(r, curve[0]["eval"]["row_scores"], groups, args.seed) for r in curve]
    chosen = best_on_dev(curve)
    if chosen == 0:
        print(f"no iteration beat pi_0 on the dev split: nothing installed (see {dev_dir})")
        return 0
    choice = dev_choice(curve, chosen)
    summary = out / SUMMARY_FILE
    replaces, why = against_served(read_json(summary) if summary.is_file() else None, choice)
    if not replaces and not args.replace:
        print(
            f"chosen on the dev split: pi_{chosen}, but {why}: the served {out.name} stays, "
            "nothing measured on the evaluation rows nor installed (--replace to install anyway)"
        )
        return 0
    print(
        f"chosen on the dev split: pi_{chosen} ({why}); measuring pi_0..pi_{chosen} once on "
        "the evaluation rows (the choice stays dev's)"
    )
    reuse_training(dev_dir, eval_dir, chosen)
    write_json(eval_dir / CHOSEN_FILE, choice)  # for the model card
    argv = _without_options(argv, ("--iterations",))
    return main([*argv, "--iterations", str(chosen), "--run-dir", str(eval_dir)])


def _without_options(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """`argv` without the named options and their values (`--x v` and `--x=v`)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not any(arg.startswith(f"{n}=") for n in names):
            out.append(arg)
    return out


def _record_dpo(config, base, result, out: Path, measured: Path | None = None) -> None:
    """The "measured here" row of the installed variant (`<base>/<task>@<variant>`), written
    through the evaluation runner's own functions (so the row has the same columns)."""
    from lora_land.evaluation.runner import EvalReport, measured_row, record
    from lora_land.evaluation.scored import prompt_groups
    from lora_land.evaluation.tasks import load_task, read_rows
    from lora_land.rlhf.loop import SAMPLES_DIR
    from lora_land.training.model_card import display_path

    last = result.curve[-1]["eval"]
    adapter_id = f"{base.name}/{out.name}"
    scores = last["row_scores"]
    path = config.eval_data or SAMPLES_DIR / f"{config.task}.jsonl"
    rows = read_rows(path)[: len(scores)]  # the rows measured (the first N with --eval-limit)
    groups = prompt_groups(load_task(config.task), rows)  # rows sharing an input: one group
    report = EvalReport(
        config.task, adapter_id, last["metric"], sum(scores) / len(scores), len(scores),
        [{"score": s, "input": g} for s, g in zip(scores, groups, strict=True)],
    )  # fmt: skip
    data = display_path(path)
    record(report, measured_row(report, base.name, base.hub_id, data, adapter_id), measured)


def cmd_reward_model(args: argparse.Namespace, settings: Settings) -> int:
    """A Bradley-Terry reward model (TRL RewardTrainer, LoRA + scalar head) on a pairs file."""
    from lora_land.rlhf.reward_model import RewardModelSettings, train_reward_model

    pairs = Path(args.pairs)
    out = Path(args.out) if args.out else PROJECT_ROOT / "runs" / "reward_models" / pairs.stem
    summary = train_reward_model(
        pairs,
        out,
        base=args.base,
        settings=RewardModelSettings(
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            held_out=args.held_out,
            seed=args.seed,
            max_steps=args.max_steps,
        ),
    )
    acc = summary["held_out_accuracy"]
    print(
        f"reward model written to {out}: pairwise accuracy on {acc['n']} held-out pairs "
        f"{acc['mean']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}] "
        f"(trained on {summary['train_pairs']} pairs); use it with `rlhf --reward {out}`"
    )
    return 0


def _in_background(argv: list[str], log_path: Path) -> int:
    import subprocess

    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "lora_land.cli", *(a for a in argv if a != "--background")]
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
    print(f"running in the background as pid {proc.pid}; follow it with: tail -f {log_path}")
    return 0


def _add_rlhf_parsers(sub) -> None:
    r = sub.add_parser("rlhf", help="online iterative DPO from a supervised adapter")
    r.add_argument("--task", required=True)
    r.add_argument("--adapter", help="pi_0: adapter id, zoo task name or dir (default: the zoo's)")
    r.add_argument("--base", default=EMBEDDED_BASE)
    r.add_argument(
        "--reward",
        default="metric",
        help="'metric', 'metric+coverage' (data-to-text tasks: the metric's mean with the share "
        "of the input's values mentioned), 'metric-all-refs' (the metric's mean over every "
        "reference the training rows give the input), 'metric+entity-f1' (NER tasks: the "
        "metric's mean with the answer's entity F1) or a reward-model directory",
    )
    r.add_argument("--iterations", type=int, default=3)
    r.add_argument("--prompts", type=int, default=0, help="per iteration (0: by answer length)")
    r.add_argument("--k", type=int, default=8, help="answers sampled per prompt")
    r.add_argument("--length-penalty", type=float, default=0.0, help="reward per character")
    r.add_argument("--beta", type=float, default=0.1)
    r.add_argument("--lr", type=float, default=5e-5)
    r.add_argument(
        "--balance-pairs",
        action="store_true",
        help="as many pairs for each chosen answer (label tasks: no drift of the label prior)",
    )
    r.add_argument(
        "--max-length-ratio",
        type=float,
        default=0.0,
        help="pair the best answer with the worst one within this factor of its length, e.g. "
        "1.2 (no length drift; 0: the worst of all)",
    )
    r.add_argument(
        "--sft-weight",
        type=float,
        default=0.0,
        help="weight of an SFT term on the chosen answer beside the DPO loss (RPO; 0: plain DPO)",
    )
    r.add_argument("--epochs", type=float, default=2.0)
    r.add_argument("--batch-size", type=int, default=8, help="pairs per DPO step")
    r.add_argument("--max-steps", type=int, default=-1, help="cap DPO steps per iteration")
    r.add_argument("--max-new-tokens", type=int, default=128, help="when sampling")
    r.add_argument("--eval-limit", type=int, default=0, help="first N evaluation rows only")
    r.add_argument(
        "--eval-on",
        choices=("eval", "dev", "choose"),
        default="eval",
        help="measure each policy on the evaluation rows; or on the zoo's dev split to choose "
        "options (dev runs are not installed); or 'choose': measure on dev, pick the best "
        "iteration there, measure only it (and pi_0) on the evaluation rows and install it",
    )
    r.add_argument("--eval-max-new-tokens", type=int, default=256)
    r.add_argument("--time-budget", type=float, default=0, help="minutes (0: none)")
    r.add_argument("--run-dir", help="iteration files (default runs/rlhf/TASK); resumable")
    r.add_argument("--out", help="pi_T (default assets/adapters/TASK@dpo on the embedded base)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-record", action="store_true", help="no measured_here.csv row")
    r.add_argument(
        "--replace",
        action="store_true",
        help="--eval-on choose: install even when the served variant scored higher on dev",
    )
    r.add_argument("--background", action="store_true", help="detach; log in RUN_DIR/rlhf.log")
    r.set_defaults(func=cmd_rlhf)

    m = sub.add_parser("reward-model", help="train a Bradley-Terry reward model on pairs")
    m.add_argument("--pairs", required=True, help="JSONL {prompt, chosen, rejected}")
    m.add_argument("--out", help="directory (default runs/reward_models/<pairs file stem>)")
    m.add_argument("--base", default=EMBEDDED_BASE)
    m.add_argument("--epochs", type=float, default=2.0)
    m.add_argument("--lr", type=float, default=2e-4)
    m.add_argument("--batch-size", type=int, default=8)
    m.add_argument("--held-out", type=float, default=0.2, help="fraction kept for accuracy")
    m.add_argument("--max-steps", type=int, default=-1)
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=cmd_reward_model)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lora-land", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="prepare the embedded SmolLM2-135M-Instruct")
    p.add_argument("--models-dir", help="where to put it (default: the settings' models dir)")
    p.set_defaults(func=cmd_prepare)

    t = sub.add_parser("train", help="train a LoRA adapter on a task")
    t.add_argument("--task", required=True)
    t.add_argument("--base", default=EMBEDDED_BASE, help="embedded name, local dir or Hub id")
    t.add_argument("--data", help="JSONL with the template's fields and 'target'")
    t.add_argument("--out", help="adapter directory (default runs/adapters/TASK)")
    t.add_argument("--steps", type=int, default=100)
    t.add_argument("--lr", type=float, default=1.5e-3)
    t.add_argument("--batch-size", type=int, default=8)
    t.add_argument("--max-seq-len", type=int, default=256)
    t.add_argument("--rank", type=int, default=8)
    t.add_argument("--alpha", type=int, default=None, help="default 2 x rank")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=20)
    t.add_argument(
        "--split",
        choices=["train", "all"],
        help="rows of the data to train on: the train part of the seeded train/dev split "
        "(default without --data) or all of them (default with --data)",
    )
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a base or an adapter on a task's rows")
    e.add_argument("--task", required=True)
    e.add_argument("--base", default=EMBEDDED_BASE)
    e.add_argument("--adapter", help="adapter id <base>/<task>, zoo task name or local dir")
    e.add_argument("--data", required=True, help="JSONL rows with 'target'")
    e.add_argument("--limit", type=int, default=0, help="first N rows only")
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--max-new-tokens", type=int, default=256)
    e.add_argument("--measured", help="CSV to record in (default leaderboards/measured_here.csv)")
    e.add_argument("--predictions", help="write predictions as JSONL here")
    e.set_defaults(func=cmd_evaluate)

    z = sub.add_parser("zoo", help="mini zoo v2: train, choose on dev, measure once, ship")
    z.add_argument("--resume", action="store_true", help="run or resume the queue, then ship")
    z.add_argument("--ship", action="store_true", help="only ship finished tasks into the zoo")
    z.add_argument("--status", action="store_true", help="print each task's state and exit")
    z.add_argument("--runs", help="queue directory (default runs/zoo-v2)")
    z.set_defaults(func=cmd_zoo)
    _add_export_preferences(sub)
    _add_rlhf_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # `rlhf --background` re-runs it
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return args.func(args, Settings.from_env())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
