"""`lora-land` (or `python -m lora_land.cli`): offline tools for people at a terminal.

Subcommands: `prepare` (the embedded model), `train` (a LoRA adapter on a task's template),
`evaluate` (a base or adapter on a task's rows, recorded in leaderboards/measured_here.csv),
`zoo` (train and evaluate the mini zoo in assets/adapters/), `export-preferences` (arena votes
as DPO/reward-model pairs or CSV).
The web app is started by `app.py`, not here. Errors meant for users print without a traceback.
"""

from __future__ import annotations

import argparse
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
    from lora_land.deployment import AdapterSource

    path = Path(adapter).expanduser()
    if path.is_dir() and (path / "adapter_config.json").is_file():
        return AdapterSource(id=f"{base_name}/{task}", task=task, path=path.resolve())
    adapter_id = adapter if "/" in adapter else f"{base_name}/{adapter}"
    if adapter_id.startswith(f"{base_name}/"):
        local = ZOO_DIR / adapter_id.split("/", 1)[1]
        if base_name == EMBEDDED_BASE and (local / "adapter_config.json").is_file():
            return AdapterSource(id=adapter_id, task=adapter_id.split("/", 1)[1], path=local)
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
    from lora_land.deployment import BaseSource, Deployment
    from lora_land.engine.engine import Engine
    from lora_land.evaluation.bases import resolve_base
    from lora_land.evaluation.measured import MEASURED_PATH
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
    engine = Engine.from_settings(settings, deployment)
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
    """Train the mini zoo (skipping adapters already trained) and evaluate base + adapters."""
    import time

    from lora_land.training.zoo import ZOO_TASKS, is_trained, train_zoo, zoo_config

    tasks = args.tasks or list(ZOO_TASKS)
    if not args.skip_train:
        train_zoo(tasks)
    if args.skip_eval:
        return 0
    samples = TRAIN_SAMPLES.parent
    for task in tasks:
        while args.wait and not is_trained(zoo_config(task)):
            time.sleep(20)
        data = samples / f"{task}.jsonl"
        for adapter in (None, f"{EMBEDDED_BASE}/{task}"):
            report, row = evaluate_task(settings, task, EMBEDDED_BASE, data, adapter)
            print(
                f"{task} {row.adapter or 'base'}: {report.metric} = {report.score:.4f}", flush=True
            )
    return 0


def _row_dict(row) -> dict:
    from dataclasses import asdict

    return asdict(row)


def _base_score(path: Path, row) -> float | None:
    from lora_land.evaluation.measured import read_measured

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

    z = sub.add_parser("zoo", help="train and evaluate the mini zoo on the embedded model")
    z.add_argument("tasks", nargs="*", help="zoo tasks (default: all)")
    z.add_argument("--skip-train", action="store_true")
    z.add_argument("--skip-eval", action="store_true")
    z.add_argument("--wait", action="store_true", help="wait for adapters trained elsewhere")
    z.set_defaults(func=cmd_zoo)
    _add_export_preferences(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return args.func(args, Settings.from_env())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
