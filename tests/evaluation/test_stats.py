"""Bootstrap intervals against hand-worked cases, and paired vs unpaired comparisons."""

from __future__ import annotations

import numpy as np
import pytest

from lora_land.errors import UserError
from lora_land.evaluation.stats import bootstrap_mean, paired_difference


def test_interval_of_one_success_in_four_matches_the_hand_worked_bootstrap():
    # A resample of [0, 0, 0, 1] has mean k/4 with k ~ Binomial(4, 1/4):
    # P(k=0) = .316, P(k<=1) = .738, P(k<=2) = .949, P(k<=3) = .996.
    # The 2.5th percentile is therefore 0 and the 97.5th is 3/4.
    ci = bootstrap_mean([0, 0, 0, 1])
    assert (ci.mean, ci.low, ci.high, ci.n) == (0.25, 0.0, 0.75, 4)
    assert not ci.above_zero


def test_interval_of_two_values_spans_both():
    # Resample means of [0, 1]: 0 (1/4), 0.5 (1/2), 1 (1/4): the 95% interval is [0, 1].
    ci = bootstrap_mean([0.0, 1.0])
    assert (ci.low, ci.high) == (0.0, 1.0)


def test_constant_scores_have_a_zero_width_interval():
    ci = bootstrap_mean([0.7] * 30)
    assert (ci.low, ci.mean, ci.high) == pytest.approx((0.7, 0.7, 0.7))


def test_intervals_are_reproducible_and_narrow_with_n():
    values = [i % 3 / 2 for i in range(60)]
    assert bootstrap_mean(values) == bootstrap_mean(values)
    wide, narrow = bootstrap_mean(values[:15]), bootstrap_mean(values * 8)
    assert narrow.high - narrow.low < (wide.high - wide.low) / 2
    assert narrow.low < narrow.mean < narrow.high


def test_paired_lift_is_the_interval_of_the_per_row_differences():
    treated, control = [1, 1, 0, 1], [1, 1, 0, 0]  # differences [0, 0, 0, 1]
    lift = paired_difference(treated, control)
    assert (lift.mean, lift.low, lift.high) == (0.25, 0.0, 0.75)


def test_pairing_detects_a_small_consistent_gain_that_unpaired_intervals_overlap():
    base = [(i * 37 % 100) / 100 for i in range(50)]
    tuned = [b + 0.05 for b in base]
    b, t = bootstrap_mean(base), bootstrap_mean(tuned)
    assert t.low < b.high  # unpaired, the two intervals overlap
    lift = paired_difference(tuned, base)
    assert lift.above_zero and lift.low == pytest.approx(0.05)
    assert lift.text(signed=True) == "+0.050 [+0.050, +0.050] n=50"


def test_unpaired_inputs_and_empty_lists_are_refused():
    with pytest.raises(UserError, match="same rows on both sides, got 3 and 2"):
        paired_difference([1, 0, 1], [1, 0])
    with pytest.raises(UserError, match="non-empty"):
        bootstrap_mean([])


def test_rows_sharing_an_input_are_resampled_together():
    # 10 inputs with 5 identical rows each (a greedy model answers an input once): the
    # cluster interval is that of the 10 input means, not of 50 independent rows
    from scipy.stats import bootstrap as scipy_bootstrap

    means = [0.1, 0.9, 0.4, 0.3, 0.8, 0.2, 0.7, 0.5, 0.6, 0.05]
    values = [m for m in means for _ in range(5)]
    groups = [i for i in range(10) for _ in range(5)]
    rows, inputs = bootstrap_mean(values), bootstrap_mean(values, groups=groups)
    assert inputs.mean == rows.mean == pytest.approx(sum(means) / 10)
    assert (inputs.n, inputs.inputs, rows.inputs) == (50, 10, None)
    assert inputs.high - inputs.low > 1.8 * (rows.high - rows.low)  # ~sqrt(5) wider
    ref = scipy_bootstrap(
        (means,), np.mean, method="percentile", n_resamples=10_000, rng=np.random.default_rng(1)
    ).confidence_interval
    assert (inputs.low, inputs.high) == pytest.approx((ref.low, ref.high), abs=0.01)
    assert (
        inputs.text() == f"{inputs.mean:.3f} [{inputs.low:.3f}, {inputs.high:.3f}] n=50 (10 inputs)"
    )
    assert inputs.as_dict()["inputs"] == 10 and "inputs" not in rows.as_dict()


def test_a_group_weighs_as_many_rows_as_it_has():
    # one input with 3 rows scoring 1, three inputs of one row scoring 0: the mean is 3/6,
    # a resample drawing the big input k times out of 4 has mean 3k / (3k + 4 - k)
    ci = bootstrap_mean([1, 1, 1, 0, 0, 0], groups=["a", "a", "a", "b", "c", "d"])
    assert ci.mean == 0.5 and ci.inputs == 4
    assert (ci.low, ci.high) == (0.0, pytest.approx(9 / 10))  # k=0 -> 0; k=3 -> 9/10


def test_distinct_groups_change_nothing_and_paired_differences_take_groups():
    values = [i % 4 / 3 for i in range(40)]
    assert bootstrap_mean(values, groups=list(range(40))) == bootstrap_mean(values)
    treated, control = [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]
    diff = paired_difference(treated, control, groups=["a", "a", "a", "b", "c", "d"])
    assert diff == bootstrap_mean([1, 1, 1, 0, 0, 0], groups=["a", "a", "a", "b", "c", "d"])
    with pytest.raises(UserError, match="2 group labels for 3 scores"):
        bootstrap_mean([1, 0, 1], groups=["a", "b"])
