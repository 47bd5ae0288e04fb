"""Training recipes of the mini zoo v2 and the order in which tasks are attempted.

The report's recipe is rank 8 on q_proj and v_proj. On this 135M base, v1 of the zoo found
that single-token classifiers only learn the task after several epochs at a lower peak rate
(glue_sst2: 0.56 at 100 steps x 1.5e-3 -> 0.90 at 400 steps x 1e-3), so both v2 recipes run
300 steps at 1e-3 with a cosine schedule. They differ in where the capacity goes:
- `qv8`: the report's modules and rank (r=8, alpha 16, q_proj + v_proj; 0.9 MB in fp16).
- `all4`: r=4, alpha 8 on every linear layer of the blocks (q, k, v, o, gate, up, down;
  2.4 MB in fp16): QLoRA (Dettmers et al. 2023) found adapting all linear layers matters
  more than rank, and the MLP is where a small model keeps its knowledge of formats.
Which recipe wins is measured on the dev split of `COMPARISON_TASK` (both are trained there);
the other tasks use the winner. Both train with a bf16-autocast forward (fp32 LoRA weights and
optimizer state): on this machine's AVX512-BF16 cores a step costs ~1.8 s of one core instead
of ~3.3 s. This module holds data; it trains nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Recipe:
    name: str
    rank: int
    alpha: int
    target_modules: tuple[str, ...]
    steps: int = 300
    lr: float = 1e-3
    batch_size: int = 8
    max_seq_len: int = 256
    warmup_frac: float = 0.03
    bf16: bool = True  # bf16 autocast forward, fp32 LoRA weights and optimizer state

    def describe(self) -> str:
        return (
            f"r={self.rank}, alpha={self.alpha} on {', '.join(self.target_modules)}; "
            f"{self.steps} steps x batch {self.batch_size}, peak lr {self.lr} cosine"
        )


RECIPES: dict[str, Recipe] = {
    "qv8": Recipe("qv8", 8, 16, ("q_proj", "v_proj")),
    "all4": Recipe("all4", 4, 8, ALL_LINEAR),
}
DEFAULT_RECIPE = "all4"  # used until the comparison task has chosen one on its dev split
COMPARISON_TASK = "glue_sst2"

# The 20 tasks with training rows, most promising first (judged from v1's measurements and
# the report's lifts): short, learnable output formats before long or reasoning-heavy ones.
QUEUE_ORDER: tuple[str, ...] = (
    "glue_sst2",
    "glue_qnli",
    "e2e_nlg",
    "conllpp",
    "webnlg",
    "viggo",
    "covid",
    "boolq",
    "winogrande",
    "bc5cdr",
    "arc_combined",
    "glue_cola",
    "glue_mrpc",
    "reuters",
    "hellaswag_processed",
    "glue_stsb",
    "hellaswag",
    "mmlu",
    "glue_wnli",
    "gsm8k",
)
