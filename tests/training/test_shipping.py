"""The shipping rule: a paired lift whose interval lies above zero (and the second measure's)."""

from __future__ import annotations

from lora_land.evaluation.stats import Interval, paired_difference
from lora_land.training.shipping import shipping_verdict

CLEAR = Interval(0.30, 0.18, 0.42, 50)
STRADDLES = Interval(0.10, -0.02, 0.22, 50)


def test_a_lift_whose_interval_lies_above_zero_ships():
    verdict = shipping_verdict("glue_sst2", CLEAR)
    assert verdict.ships and "+0.300 [+0.180, +0.420] n=50" in verdict.reason


def test_a_lift_whose_interval_touches_or_crosses_zero_does_not_ship():
    assert not shipping_verdict("glue_sst2", STRADDLES).ships
    assert not shipping_verdict("glue_sst2", Interval(0.1, 0.0, 0.2, 50)).ships
    assert "does not lie above zero" in shipping_verdict("covid", STRADDLES).reason


def test_a_structured_adapter_also_needs_its_second_measure_to_improve():
    assert not shipping_verdict("conllpp", CLEAR).ships  # second measure missing
    verdict = shipping_verdict("conllpp", CLEAR, STRADDLES)
    assert not verdict.ships and "format alone" in verdict.reason
    assert shipping_verdict("conllpp", CLEAR, CLEAR).ships
    assert shipping_verdict("glue_sst2", CLEAR, STRADDLES).ships  # not structured


def test_the_rule_applied_to_real_per_row_scores():
    base = [0, 1, 0, 0, 1] * 10
    better = [1, 1, 1, 0, 1] * 10  # wins 2 rows in 5, loses none
    assert shipping_verdict("glue_qnli", paired_difference(better, base)).ships
    coin = [1, 0, 0, 1, 0] * 10  # wins 1, loses 1
    assert not shipping_verdict("glue_qnli", paired_difference(coin, base)).ships


def test_a_classifier_must_also_beat_a_constant_answer():
    verdict = shipping_verdict("boolq", CLEAR, CLEAR, over_constant=STRADDLES)
    assert not verdict.ships and "targets' prior" in verdict.reason
    assert "+0.100 [-0.020, +0.220]" in verdict.reason
    assert shipping_verdict("boolq", CLEAR, CLEAR, over_constant=CLEAR).ships
