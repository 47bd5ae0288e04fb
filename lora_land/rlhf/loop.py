"""The loop: online iterative DPO on a LoRA adapter, faithful to the RLHF Workflow recipe.

pi_0 is a supervised adapter. Each iteration t = 1..T takes a fresh slice of the task's
training prompts, samples K answers per prompt from pi_{t-1} through our engine, scores them
with the proxy reward (the task's metric against the gold target, or a reward model), pairs
best with worst (`max_min`), trains DPO from pi_{t-1} against the fixed reference pi_0, and
evaluates pi_t greedily on the evaluation rows with the report's metric. pi_0 is evaluated
first, so the curve starts at the supervised score.

Everything an iteration makes lives in `run_dir/iter<t>/` (samples.jsonl, pairs.jsonl,
adapter/, record.json): a killed run resumes at the first phase whose file is missing, and a
time budget stops the run between phases. The last pi_T is installed in `out` with a model
card (see `card.py`). This module orchestrates; the pieces are in sampling, rewards, pairing,
dpo and stats.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from lora_land.catalog import Task
from lora_land.config import PROJECT_ROOT, Settings
from lora_land.errors import UserError
from lora_land.evaluation.runner import MAX_NEW_TOKENS
from lora_land.evaluation.scored import prompt_groups
from lora_land.evaluation.stats import bootstrap_mean, paired_difference
from lora_land.evaluation.tasks import load_task, read_rows
from lora_land.rlhf.dpo import DpoSettings
from lora_land.rlhf.pairing import balance_chosen, max_min_pairs, read_samples, write_jsonl
from lora_land.rlhf.rewards import Reward

log = logging.getLogger(__name__)
SAMPLES_DIR = PROJECT_ROOT.parent / "shared" / "data" / "samples"
RECORD = "record.json"
SUMMARY_FILE = "rlhf_summary.json"
# Prompts per iteration when not given: sized for about 15 minutes per iteration on 2 CPU
# cores with K=8 (short answers: a few hundred prompts; long answers: far fewer).
SHORT_ANSWER_PROMPTS = 160
LONG_ANSWER_PROMPTS = 32
LONG_ANSWER_METRICS = frozenset({"rouge", "dbpedia"})


@dataclass(frozen=True)
class LoopConfig:
    task: str
    adapter: Path  # pi_0's directory (a supervised adapter)
    adapter_id: str  # its public id, recorded in the card (e.g. smollm2-135m-instruct/glue_sst2)
    run_dir: Path  # where iterations keep their files (resumable)
    out: Path | None = None  # where pi_T is installed (e.g. assets/adapters/<task>@dpo)
    base: str = "smollm2-135m-instruct"
    iterations: int = 3
    prompts: int = 0  # per iteration; 0 picks by the task's answer length
    k: int = 8
    reward: str = "metric"  # "metric" or a reward-model directory
    length_penalty: float = 0.0
    balance_pairs: bool = False  # as many pairs per chosen answer (label tasks), see pairing
    max_length_ratio: float = 0.0  # rejected within this length factor of chosen (0: off)
    max_new_tokens: int = 128  # when sampling
    eval_max_new_tokens: int = MAX_NEW_TOKENS  # the report's decoding
    eval_limit: int = 0  # first N evaluation rows only (0: all)
    train_data: Path | None = None  # default: shared/data/samples/train/<task>.jsonl
    eval_data: Path | None = None  # default: shared/data/samples/<task>.jsonl
    eval_split: str = "eval"  # "dev": measure on the zoo's dev split (to choose options)
    seed: int = 0
    time_budget_s: float = 0.0  # 0: no budget
    dpo: DpoSettings = field(default_factory=DpoSettings)

    def fingerprint(self) -> dict:
        """What must match for a run directory to be resumed."""
        d = asdict(self)
        for key in ("run_dir", "out", "time_budget_s", "iterations"):
            d.pop(key)
        d["dpo"].pop("measure_before")
        d["dpo"].pop("bf16")  # a compute choice (recorded per iteration in dpo.json)
        d["dpo"].pop("micro_batch")  # how a step's batch is split: the same optimizer steps
        if not d["balance_pairs"]:
            d.pop("balance_pairs")  # runs made before the option still resume
        if not d["max_length_ratio"]:
            d.pop("max_length_ratio")  # runs made before the option still resume
        if d["eval_split"] == "eval":
            d.pop("eval_split")  # runs made before the option still resume
        if not d["dpo"]["sft_weight"]:
            d["dpo"].pop("sft_weight")  # plain DPO: runs made before the option still resume
        return json.loads(json.dumps(d, default=str))


@dataclass
class LoopResult:
    curve: list[dict] = field(default_factory=list)  # one record per evaluated policy
    stopped: str | None = None  # why the run stopped early ("time budget")
    installed: Path | None = None


def prompts_per_iteration(config: LoopConfig, task: Task) -> int:
    if config.prompts:
        return config.prompts
    return LONG_ANSWER_PROMPTS if task.metric_fn in LONG_ANSWER_METRICS else SHORT_ANSWER_PROMPTS


def training_rows(task: str, train_data: Path | None = None) -> tuple[list[dict], str]:
    """(rows the loop takes prompts from, where they come from): `train_data` if given, else
    the TRAIN part of the zoo's seeded train/dev split (never dev, never the evaluation rows)."""
    from lora_land.training.split import load_split

    if train_data is not None:
        return read_rows(train_data), str(train_data)
    return load_split(task).train, "train part of the train/dev split"


def evaluation_rows(config: LoopConfig, task: str) -> list[dict]:
    """The rows each policy is measured on: the task's evaluation rows (`eval_data`), or with
    `eval_split="dev"` the DEV part of the zoo's split, disjoint from the prompts the loop
    trains on: options are chosen there, then measured once on the evaluation rows."""
    from lora_land.training.split import load_split

    if config.eval_split == "dev":
        rows = load_split(task).dev
    elif config.eval_split == "eval":
        rows = read_rows(config.eval_data or SAMPLES_DIR / f"{task}.jsonl")
    else:
        raise UserError(f"eval_split must be 'eval' or 'dev', not {config.eval_split!r}")
    return rows[: config.eval_limit or None]


def prompt_slices(rows: list[dict], per_iteration: int, iterations: int, seed: int) -> list:
    """Disjoint slices of the training rows, one per iteration (seeded shuffle)."""
    need = per_iteration * iterations
    if need > len(rows):
        raise UserError(
            f"{iterations} iterations x {per_iteration} prompts need {need} training rows; "
            f"the task has {len(rows)} (lower --prompts or --iterations)"
        )
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    return [
        [rows[i] for i in order[t * per_iteration : (t + 1) * per_iteration]]
        for t in range(iterations)
    ]


class _Clock:
    def __init__(self, budget_s: float) -> None:
        self.start, self.budget_s = time.monotonic(), budget_s

    def out_of_time(self, need_s: float = 0.0) -> bool:
        return bool(self.budget_s) and time.monotonic() - self.start + need_s > self.budget_s


def _evaluate(settings, base, task, rows, variant: str, adapter_dir: Path, config, groups) -> dict:
    from lora_land.evaluation.runner import evaluate_rows
    from lora_land.rlhf.sampling import open_engine, policy_deployment

    deployment = policy_deployment(base, task.name, {variant: adapter_dir})
    engine = open_engine(settings, deployment)
    try:
        report = evaluate_rows(
            engine,
            task,
            rows,
            next(iter(deployment.adapters)),
            max_new_tokens=config.eval_max_new_tokens,
        )
    finally:
        engine.close()
        release_memory()
    scores = [r["score"] for r in report.records]
    lengths = [len(r["prediction"]) for r in report.records]
    return {
        "metric": report.metric,
        "precision": settings.dtype,
        "score": bootstrap_mean(scores, groups=groups, seed=config.seed).as_dict(),
        "row_scores": scores,
        "mean_chars": round(sum(lengths) / len(lengths), 1),
    }


def with_intervals(record: dict, pi0_scores: list[float], groups: list[int], seed: int) -> dict:
    """The record with its score's interval and its paired difference to pi_0 computed from
    its row scores, rows that share an input resampled together (`groups`). Done whenever a
    record is used, so a run measured before inputs were grouped reports grouped intervals
    when resumed (the intervals are derived numbers; the row scores are the measurement)."""
    ev = record["eval"]
    scores = ev.get("row_scores")
    if not scores or len(scores) != len(groups):
        return record
    ev = dict(ev, score=bootstrap_mean(scores, groups=groups, seed=seed).as_dict())
    if record["iteration"]:
        diff = paired_difference(scores, pi0_scores, groups=groups, seed=seed)
        ev["vs_pi0"] = diff.as_dict()
    return dict(record, eval=ev)


def _sample_and_score(settings, base, task, rows, t, policy_dir, reward, config):
    from lora_land.rlhf.sampling import (
        open_engine,
        policy_deployment,
        sample_answers,
        score_samples,
    )

    deployment = policy_deployment(base, task.name, {f"pi{t - 1}": policy_dir})
    engine = open_engine(settings, deployment)
    try:
        samples = sample_answers(
            engine,
            task,
            rows,
            next(iter(deployment.adapters)),
            k=config.k,
            iteration=t,
            seed=config.seed,
            max_new_tokens=config.max_new_tokens,
        )
    finally:
        engine.close()
        release_memory()
    return score_samples(samples, rows, reward)


def _load_or_start(run_dir: Path, config: LoopConfig, prompts: dict) -> None:
    meta = run_dir / "config.json"
    weights = Path(config.adapter) / "adapter_model.safetensors"
    # pi_0's weights and the prompt rows too: a retrained adapter or a new split starts afresh
    fingerprint = config.fingerprint() | prompts | {"pi0_sha256": _sha256(weights)}
    if meta.is_file():
        if json.loads(meta.read_text()) != fingerprint:
            raise UserError(
                f"run directory {run_dir} was made with other settings; pass another --run-dir "
                "or delete it to start over"
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps(fingerprint, indent=2) + "\n")


def run_loop(
    config: LoopConfig,
    settings: Settings | None = None,
    on_record: Callable[[dict], None] | None = None,
    reward: Reward | None = None,
) -> LoopResult:
    """Run (or resume) the loop; returns the curve. Phases per iteration: sample+score, pair,
    DPO, evaluate; each phase's file makes a resumed run skip it. `reward` replaces the one
    `config.reward` names (for code that scores answers its own way)."""
    from lora_land.evaluation.bases import resolve_base
    from lora_land.rlhf.rewards import load_reward

    settings = settings or Settings.from_env()
    task = load_task(config.task)
    base = resolve_base(config.base, settings)
    train_rows, prompt_source = training_rows(task.name, config.train_data)
    eval_rows = evaluation_rows(config, task.name)
    per_iteration = prompts_per_iteration(config, task)
    slices = prompt_slices(train_rows, per_iteration, config.iterations, config.seed)
    run_dir = Path(config.run_dir)
    prompts = {"prompt_rows": prompt_source, "n_prompt_rows": len(train_rows)}
    _load_or_start(run_dir, config, prompts)
    pi0 = Path(config.adapter)
    clock, result = _Clock(config.time_budget_s), LoopResult()

    groups = prompt_groups(task, eval_rows)

    def emit(record: dict) -> None:
        pi0_scores = (result.curve[0] if result.curve else record)["eval"].get("row_scores")
        record = with_intervals(record, pi0_scores, groups, config.seed)
        result.curve.append(record)
        if on_record:
            on_record(record)

    first = run_dir / "iter0" / RECORD
    settings = _fixed_precision(settings, base, read_json(first) if first.is_file() else None)
    if not first.is_file():
        log.info("evaluating pi_0 (%s) on %d rows", config.adapter_id, len(eval_rows))
        ev = _evaluate(settings, base, task, eval_rows, "pi0", pi0, config, groups)
        write_json(first, {"iteration": 0, "eval": ev})
    baseline = read_json(first)
    emit(baseline)
    policy = pi0
    last_duration = 0.0
    for t in range(1, config.iterations + 1):
        it_dir = run_dir / f"iter{t}"
        record_path = it_dir / RECORD
        if record_path.is_file():
            emit(read_json(record_path))
            policy = it_dir / "adapter"
            continue
        if clock.out_of_time(last_duration):
            result.stopped = f"time budget ({config.time_budget_s:.0f} s) before iteration {t}"
            break
        started = time.monotonic()
        rows = slices[t - 1]
        samples_path = it_dir / "samples.jsonl"
        if samples_path.is_file():
            samples = read_samples(samples_path)
        else:
            reward = reward or load_reward(config.reward, task, base.source, train_rows)
            samples = _sample_and_score(settings, base, task, rows, t, policy, reward, config)
            write_jsonl(samples_path, samples)
        pairing = max_min_pairs(samples, config.length_penalty, config.max_length_ratio)
        if config.balance_pairs:
            pairing = balance_chosen(pairing, seed=config.seed + t)
        write_jsonl(it_dir / "pairs.jsonl", pairing.pairs)
        log.info(
            "iteration %d: %d prompts, %d pairs, %d skipped (all answers tied)%s",
            t,
            pairing.prompts,
            len(pairing.pairs),
            pairing.skipped_ties,
            f", {pairing.dropped_to_balance} left out to balance the chosen answers"
            if config.balance_pairs
            else "",
        )
        if config.max_length_ratio:
            log.info(
                "iteration %d: %d prompts had no worse answer within %.2fx the best one's length",
                t,
                pairing.skipped_length,
                config.max_length_ratio,
            )
        if clock.out_of_time():
            result.stopped = f"time budget ({config.time_budget_s:.0f} s) in iteration {t}"
            break
        adapter_dir = it_dir / "adapter"
        dpo_path = it_dir / "dpo.json"
        if not dpo_path.is_file():
            dpo = _train(config, base, policy, pi0, pairing.pairs, adapter_dir, t)
            write_json(dpo_path, dpo)
        dpo = read_json(dpo_path)
        if clock.out_of_time():
            result.stopped = f"time budget ({config.time_budget_s:.0f} s) in iteration {t}"
            break
        ev = _evaluate(settings, base, task, eval_rows, f"pi{t}", adapter_dir, config, groups)
        ev["vs_pi0"] = paired_difference(
            ev["row_scores"], baseline["eval"]["row_scores"], groups=groups, seed=config.seed
        ).as_dict()
        record = {
            "iteration": t,
            "prompts": pairing.prompts,
            "samples": len(samples),
            "pairs": len(pairing.pairs),
            "skipped_ties": pairing.skipped_ties,
            "dropped_to_balance": pairing.dropped_to_balance,
            "skipped_length": pairing.skipped_length,
            "reward_mean": _mean([s.reward for s in samples]),
            "reward_chosen": _mean([p.reward_chosen for p in pairing.pairs]),
            "reward_rejected": _mean([p.reward_rejected for p in pairing.pairs]),
            "chosen_chars": _mean([len(p.chosen) for p in pairing.pairs]),
            "rejected_chars": _mean([len(p.rejected) for p in pairing.pairs]),
            "dpo": dpo,
            "eval": ev,
            "seconds": round(time.monotonic() - started, 1),
        }
        write_json(record_path, record)
        emit(record)
        policy = adapter_dir
        last_duration = time.monotonic() - started
    if config.out is not None and result.stopped is None and len(result.curve) > 1:
        result.installed = install(config, base, result.curve, policy)
    return result


def best_on_dev(curve: list[dict]) -> int:
    """The iteration whose policy scored highest on the dev split (the earliest of equal
    scores, so more DPO must earn its place); 0 when none beat pi_0."""
    best_t, best = 0, curve[0]["eval"]["score"]["mean"]
    for record in curve[1:]:
        if record["eval"]["score"]["mean"] > best:
            best_t, best = record["iteration"], record["eval"]["score"]["mean"]
    return best_t


TRAINING_FILES = ("samples.jsonl", "pairs.jsonl", "dpo.json", "adapter")
CHOSEN_FILE = "chosen_on_dev.json"  # in a run that measures a dev-chosen policy once


def dev_choice(curve: list[dict], chosen: int) -> dict:
    """What the model card says of a choice made on the dev split: each policy's dev score
    and paired difference to pi_0, and which one was chosen."""
    return {
        "chosen": chosen,
        "n": curve[0]["eval"]["score"]["n"],
        "inputs": curve[0]["eval"]["score"].get("inputs"),
        "curve": [
            {
                "iteration": r["iteration"],
                "score": r["eval"]["score"]["mean"],
                "vs_pi0": r["eval"].get("vs_pi0"),
            }
            for r in curve
        ],
    }


def against_served(served: dict | None, choice: dict) -> tuple[bool, str]:
    """Whether a run's dev-chosen policy (`choice`, from `dev_choice`) replaces the variant
    served now (`served`: its rlhf_summary.json, or None), and why, in words. The rule between
    two runs of a task is the rule within one: the higher dev score wins, the served variant
    keeping ties. The two are only compared on the same footing: both chosen on dev, with the
    same dev rows and the same pi_0 (pi_0's dev score the same to 1e-9); otherwise the new run
    replaces it and the reason says why no comparison was made."""
    ours = choice["curve"][choice["chosen"]]["score"]
    if served is None:
        return True, "no variant is served yet"
    theirs = served.get("chosen_on_dev")
    if not theirs:
        return True, "the served variant was not chosen on the dev split (no dev score to compare)"
    same_rows = theirs.get("n") == choice.get("n") and (
        abs(theirs["curve"][0]["score"] - choice["curve"][0]["score"]) < 1e-9
    )
    if not same_rows:
        return True, "the served variant's dev figures come from other dev rows or another pi_0"
    best = theirs["curve"][theirs["chosen"]]["score"]
    words = (
        f"the served variant (pi_{theirs['chosen']} of its run) scored {best:.4f} on the same "
        f"{choice['n']} dev rows, this run's pi_{choice['chosen']} {ours:.4f}"
    )
    return ours > best, words


def reuse_training(source: Path, target: Path, iterations: int) -> None:
    """Copy iterations 1..`iterations`' training files (samples, pairs, DPO record and
    adapter; not their measurements) from a run that measured on the dev split into
    `target`: the run there then measures the same policies on the evaluation rows. What an
    iteration trains does not depend on where it is measured (its prompts are the train
    part's slices, its reward compares against their gold targets)."""
    for t in range(1, iterations + 1):
        src, dst = Path(source) / f"iter{t}", Path(target) / f"iter{t}"
        missing = [name for name in TRAINING_FILES if not (src / name).exists()]
        if missing:
            raise UserError(f"{src} lacks {', '.join(missing)}: the dev run did not finish")
        dst.mkdir(parents=True, exist_ok=True)
        for name in TRAINING_FILES:
            if (dst / name).exists():
                continue
            if (src / name).is_dir():
                shutil.copytree(src / name, dst / name)
            else:
                shutil.copy(src / name, dst / name)


def _fixed_precision(settings: Settings, base, pi0_record: dict | None) -> Settings:
    """One serving precision for the whole run, so every policy is measured alike: the one
    pi_0 was evaluated in when resuming, else what `auto` resolves to now (a dtype check run
    meanwhile must not change it between iterations)."""
    from lora_land.engine.loading import pick_device, pick_precision

    recorded = (pi0_record or {}).get("eval", {}).get("precision")
    if recorded:
        return replace(settings, dtype=recorded)
    device = pick_device(settings.device)
    precision = pick_precision(settings.dtype, device, settings.cache_dir, base.source)
    return replace(settings, dtype=precision)


def _train(config, base, policy: Path, pi0: Path, pairs, adapter_dir: Path, t: int) -> dict:
    from lora_land.rlhf.dpo import train_dpo

    if not pairs:  # nothing to learn from: pi_t = pi_{t-1}
        log.warning("iteration %d: no pairs (all answers tied); pi_%d = pi_%d", t, t, t - 1)
        adapter_dir.mkdir(parents=True, exist_ok=True)
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copy(policy / name, adapter_dir / name)
        return {
            "steps": 0,
            "loss_before": None,
            "loss_after": None,
            "kl_chosen": None,
            "margin_after": None,
            "train_losses": [],
        }
    from lora_land.engine.engine import in_passing_thread

    dpo_settings = replace(config.dpo, seed=config.seed + t)
    # in a thread that ends, like the engines that sample and evaluate: a process that keeps
    # one OpenMP pool per long-lived thread slows every parallel region (see in_passing_thread)
    outcome = in_passing_thread(
        lambda: train_dpo(base.source, policy, pi0, pairs, adapter_dir, base.hub_id, dpo_settings)
    )
    release_memory()
    return outcome.as_dict()


def release_memory() -> None:
    """Hand the models, optimizer state and activations a phase freed back to the system: a
    run keeps sampling, training and evaluating in one process, and glibc keeps freed heap
    (one arena per thread) unless asked, so resident memory grew by iteration until the OOM
    killer stopped a run (16.6 GB in glue_qnli's second DPO phase beside the zoo queue)."""
    import ctypes
    import gc
    from contextlib import suppress

    gc.collect()
    with suppress(OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def install(config: LoopConfig, base, curve: list[dict], policy: Path) -> Path:
    """Copy pi_T's adapter to `config.out` with the summary and model card."""
    from lora_land.rlhf.card import write_card

    out = Path(config.out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(policy / name, tmp / name)
    summary = {
        "task": config.task,
        "base_name": base.name,
        "base_hub_id": base.hub_id,
        "pi0": config.adapter_id,
        "config": _portable(config.fingerprint()),
        "iterations": config.iterations,
        "prompt_rows": read_json(Path(config.run_dir) / "config.json").get("prompt_rows"),
        "curve": [{k: v for k, v in r.items() if k != "eval"} | _short_eval(r) for r in curve],
    }
    chosen = Path(config.run_dir) / CHOSEN_FILE  # `--eval-on choose`: how pi_T was chosen
    if chosen.is_file():
        summary["chosen_on_dev"] = read_json(chosen)
    write_json(tmp / SUMMARY_FILE, summary)
    write_card(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _portable(fingerprint: dict) -> dict:
    """The run's settings with paths relative to the project (no machine's directories)."""
    from lora_land.training.model_card import display_path

    paths = ("adapter", "train_data", "eval_data")
    return {k: display_path(v) if k in paths and v else v for k, v in fingerprint.items()}


def _short_eval(record: dict) -> dict:
    ev = dict(record["eval"])
    ev.pop("row_scores", None)
    return {"eval": ev}


def _sha256(path: Path) -> str:
    if not path.is_file():
        raise UserError(f"pi_0 adapter has no weights file: {path}")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def write_json(path: Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
