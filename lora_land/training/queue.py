"""The zoo v2 training queue: one background process that trains, chooses on dev, measures once.

`python -m lora_land.cli zoo --resume` (or `make zoo`) runs `run_queue`: tasks in
`recipes.QUEUE_ORDER`, one stage at a time, each stage in a fresh subprocess (so a crash costs
one stage, and code fixed meanwhile is used by the next stage). Per task, in `runs/zoo-v2/<task>/`:

1. `train:<recipe>`: an adapter trained on the TRAIN part of the seeded split
   (`<recipe>/adapter/`, resumable from its checkpoint);
2. `dev-base.json`, `dev-<recipe>.json`: per-row scores of base and adapter on the DEV part;
3. `choice.json`: the best recipe on dev and whether it is a candidate (the shipping rule
   applied to its paired dev lift);
4. candidates only: `eval-base.json`, `eval-<recipe>.json` on the evaluation rows, measured
   once; then `result.json` (the verdict). A task is done when `result.json` exists.

Every file is written atomically and skipped when present, so killing the queue and running it
again resumes where it stopped. A stage that fails twice marks its task failed and the queue
moves on. Shipping into `assets/adapters/` is a separate step (`lora-land zoo --ship`).
This module runs training and evaluation; it is an offline tool, not part of the app.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from lora_land.config import PROJECT_ROOT
from lora_land.training.recipes import COMPARISON_TASK, DEFAULT_RECIPE, QUEUE_ORDER, RECIPES

RUNS_DIR = PROJECT_ROOT / "runs" / "zoo-v2"
# `runs/` is scratch (adapters under training, per-row scores) and does not outlive a machine;
# each finished task's verdict (result.json + CPU time, numbers only) is also kept in git here,
# so a later session's queue neither retrains a finished task nor forgets why one did not ship.
RECORDS_DIR = PROJECT_ROOT / "leaderboards" / "zoo-v2"
MAX_FAILURES = 2
ALL_DONE = 3  # exit code of a step when no task has work left

log = logging.getLogger("lora_land.zoo")


def task_dir(task: str, runs: Path = RUNS_DIR) -> Path:
    return Path(runs) / task


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def records_dir(runs: Path = RUNS_DIR) -> Path:
    """Where finished tasks' verdicts are kept: in git for the default queue, else beside it."""
    runs = Path(runs)
    return RECORDS_DIR if runs.resolve() == RUNS_DIR.resolve() else runs / "_records"


def task_result(task: str, runs: Path = RUNS_DIR) -> dict | None:
    """A finished task's verdict: this machine's `result.json`, else the one kept in git."""
    result = read_json(task_dir(task, runs) / "result.json")
    return result if result is not None else read_json(records_dir(runs) / f"{task}.json")


def keep_record(task: str, runs: Path = RUNS_DIR) -> Path | None:
    """Copy a finished task's verdict and CPU time into the kept records (numbers, no rows)."""
    result = read_json(task_dir(task, runs) / "result.json")
    if result is None:
        return None
    record = dict(result)
    choice = read_json(task_dir(task, runs) / "choice.json")
    if choice and len(choice.get("dev", {})) > 1:
        record["recipes_dev"] = choice["dev"]  # every recipe compared on dev (comparison task)
    cpu = read_json(task_dir(task, runs) / "cpu.json")
    if cpu:
        record["cpu"] = cpu
    path = records_dir(runs) / f"{task}.json"
    write_json(path, record)
    return path


def recipes_for(task: str, runs: Path = RUNS_DIR) -> list[str]:
    """The comparison task trains every recipe; the others use the winner chosen there."""
    if task == COMPARISON_TASK:
        return list(RECIPES)
    choice = read_json(task_dir(COMPARISON_TASK, runs) / "choice.json") or task_result(
        COMPARISON_TASK, runs
    )
    return [choice["recipe"]] if choice else [DEFAULT_RECIPE]


def next_stage(task: str, runs: Path = RUNS_DIR) -> str | None:
    """The first stage of `task` not yet done, or None when the task is finished."""
    d = task_dir(task, runs)
    if task_result(task, runs) is not None:
        return None
    recipes = recipes_for(task, runs)
    for r in recipes:
        if not (d / r / "adapter" / "adapter_model.safetensors").is_file():
            return f"train:{r}"
    for who in ["base", *recipes]:
        if not (d / f"dev-{who}.json").is_file():
            return f"dev:{who}"
    choice = read_json(d / "choice.json")
    if choice is None:
        return "choose"
    if choice["candidate"]:
        for who in ("base", choice["recipe"]):
            if not (d / f"eval-{who}.json").is_file():
                return f"eval:{who}"
    return "result"


def failures(task: str, runs: Path = RUNS_DIR) -> int:
    return (read_json(task_dir(task, runs) / "failures.json") or {}).get("count", 0)


def pending_tasks(runs: Path = RUNS_DIR, order: tuple[str, ...] = QUEUE_ORDER) -> list[str]:
    return [t for t in order if next_stage(t, runs) and failures(t, runs) < MAX_FAILURES]


def run_stage(task: str, stage: str, runs: Path = RUNS_DIR) -> None:
    """Do one stage of one task in this process (see the module docstring)."""
    from lora_land.training import zoo_stages

    kind, _, who = stage.partition(":")
    if kind == "train":
        zoo_stages.train_stage(task, RECIPES[who], task_dir(task, runs))
    elif kind in ("dev", "eval"):
        zoo_stages.score_stage(task, kind, who, task_dir(task, runs))
    elif kind == "choose":
        zoo_stages.choose_stage(task, recipes_for(task, runs), task_dir(task, runs))
    elif kind == "result":
        zoo_stages.result_stage(task, task_dir(task, runs))
    else:
        raise ValueError(f"unknown stage {stage!r}")


def step(runs: Path = RUNS_DIR) -> int:
    """Run the next stage of the first pending task; `ALL_DONE` when none is left."""
    pending = pending_tasks(runs)
    if not pending:
        return ALL_DONE
    task = pending[0]
    stage = next_stage(task, runs)
    assert stage is not None
    log.info("== %s: %s", task, stage)
    t0 = time.process_time()
    wall = time.monotonic()
    try:
        run_stage(task, stage, runs)
    except Exception:
        count = failures(task, runs) + 1
        write_json(task_dir(task, runs) / "failures.json", {"count": count, "stage": stage})
        log.exception("%s: stage %s failed (%d of %d)", task, stage, count, MAX_FAILURES)
        return 1
    cpu = time.process_time() - t0
    _add_cpu(task, stage, cpu, time.monotonic() - wall, runs)
    if stage == "result":
        keep_record(task, runs)
    log.info("== %s: %s done (%.0f s CPU)", task, stage, cpu)
    return 0


def _add_cpu(task: str, stage: str, cpu: float, wall: float, runs: Path) -> None:
    path = task_dir(task, runs) / "cpu.json"
    data = read_json(path) or {}
    data[stage] = {
        "cpu_s": round(data.get(stage, {}).get("cpu_s", 0) + cpu, 1),
        "wall_s": round(data.get(stage, {}).get("wall_s", 0) + wall, 1),
    }
    write_json(path, data)


def run_queue(runs: Path = RUNS_DIR) -> int:
    """Stage after stage, each in a fresh subprocess, until every task is done or failed."""
    env = {**os.environ, "TQDM_MININTERVAL": "30"}
    while True:
        rc = subprocess.call(
            [sys.executable, "-m", "lora_land.training.queue", "step", "--runs", str(runs)],
            cwd=PROJECT_ROOT,
            env=env,
        )
        if rc == ALL_DONE:
            log.info("queue finished: nothing left to do")
            return 0
        if rc != 0:
            time.sleep(30)  # a failed stage is recorded; give a fix (or the machine) a moment


def stage_threads() -> int:
    """Threads for one stage: `LORA_LAND_THREADS` if set; else every core when the machine is
    otherwise idle (1-minute load below cores - 0.4, this queue's own last stage included),
    else one, because oversubscribed OpenMP threads spin and waste the CPU others need."""
    if os.environ.get("LORA_LAND_THREADS"):
        return max(1, int(os.environ["LORA_LAND_THREADS"]))
    cores = os.cpu_count() or 1
    return cores if os.getloadavg()[0] < cores - 0.4 else 1


def status(runs: Path = RUNS_DIR) -> list[tuple[str, str]]:
    """(task, what is next or the verdict) for every task in queue order."""
    rows = []
    for t in QUEUE_ORDER:
        result = task_result(t, runs)
        if result is not None:
            rows.append((t, ("ships: " if result["ships"] else "not shipped: ") + result["reason"]))
        elif failures(t, runs) >= MAX_FAILURES:
            rows.append((t, "failed (see queue.log)"))
        else:
            rows.append((t, f"next: {next_stage(t, runs)}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    import torch

    parser = argparse.ArgumentParser(prog="python -m lora_land.training.queue")
    parser.add_argument("command", choices=["run", "step", "status"])
    parser.add_argument("--runs", default=str(RUNS_DIR))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    if args.command == "step":
        # The zoo's figures are measured in float32 whatever `LORA_LAND_DTYPE=auto` would pick on
        # this machine (a bf16 record from `bench.dtype`), so the records do not depend on it.
        os.environ.setdefault("LORA_LAND_DTYPE", "float32")
        threads = stage_threads()
        torch.set_num_threads(threads)
        log.info("(%d thread%s, 1-min load %.1f)", threads, "s"[: threads - 1], os.getloadavg()[0])
    runs = Path(args.runs)
    if args.command == "run":
        return run_queue(runs)
    if args.command == "step":
        return step(runs)
    for task, what in status(runs):
        print(f"{task:22s} {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
