"""Bootstrap intervals against hand-worked cases, and paired vs unpaired comparisons."""

from __future__ import annotations

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
