"""Bradley-Terry ratings against hand-worked answers, the two-player closed form, and bootstrap."""

from __future__ import annotations

import math

import pytest

from lora_land.arena.ratings import bradley_terry, pair_counts, rate


def _battles(left: str, right: str, left_wins: int, right_wins: int, ties: int = 0) -> list:
    return (
        [(left, right, "left")] * left_wins
        + [(left, right, "right")] * right_wins
        + [(left, right, "tie")] * ties
    )


def test_two_players_match_the_closed_form():
    # With only A and B, the MLE odds are the observed odds: R_A - R_B = 400 log10(wA / wB)
    battles = _battles("A", "B", 30, 10)
    ratings = bradley_terry(battles, prior=0)
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(3), abs=1e-3)
    assert (ratings["A"] + ratings["B"]) / 2 == pytest.approx(1000, abs=1e-6)


def test_hand_worked_three_players_with_strengths_4_2_1():
    # Observed wins equal the wins expected under strengths 4:2:1 (A-B 2:1, B-C 2:1, A-C 4:1),
    # so Zermelo's score equations hold exactly at those strengths: A is 400 log10(2) = 120.41
    # above B, which is 120.41 above C, and the mean is 1000.
    battles = _battles("A", "B", 2, 1) + _battles("B", "C", 2, 1) + _battles("C", "A", 1, 4)
    ratings = bradley_terry(battles, prior=0)
    step = 400 * math.log10(2)
    assert ratings["A"] == pytest.approx(1000 + step, abs=1e-3)
    assert ratings["B"] == pytest.approx(1000, abs=1e-3)
    assert ratings["C"] == pytest.approx(1000 - step, abs=1e-3)


def test_a_tie_counts_as_half_a_win_for_each_side():
    # A 1 win + 2 ties vs B 0 wins: 2 wins to 1, the same as a plain 2:1 record
    with_ties = bradley_terry(_battles("A", "B", 1, 0, ties=2), prior=0)
    plain = bradley_terry(_battles("A", "B", 2, 1), prior=0)
    assert with_ties["A"] - with_ties["B"] == pytest.approx(plain["A"] - plain["B"], abs=1e-3)
    assert pair_counts(_battles("A", "B", 1, 0, ties=2), ["A", "B"]).tolist() == [
        [0.0, 2.0],  # A over B: 1 win + 2 half wins
        [1.0, 0.0],  # B over A: 2 half wins
    ]


def test_sides_do_not_matter():
    one_way = bradley_terry(_battles("A", "B", 5, 2), prior=0)
    flipped = bradley_terry(_battles("B", "A", 2, 5), prior=0)
    assert one_way["A"] == pytest.approx(flipped["A"], abs=1e-4)


def test_the_prior_keeps_an_unbeaten_player_finite_and_ahead():
    ratings = bradley_terry(_battles("A", "B", 3, 0))
    assert 1000 < ratings["A"] < 2000 and ratings["B"] < 1000


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_votes():
    few = {r.contestant: r for r in rate(_battles("A", "B", 6, 4), resamples=200)}
    many = {r.contestant: r for r in rate(_battles("A", "B", 60, 40), resamples=200)}
    for table in (few, many):
        assert table["A"].low <= table["A"].rating <= table["A"].high
    assert many["A"].high - many["A"].low < few["A"].high - few["A"].low
    assert (many["A"].votes, many["A"].wins, many["A"].losses, many["A"].ties) == (100, 60, 40, 0)


def test_rate_is_best_first_and_reproducible_with_a_seed():
    battles = _battles("A", "B", 8, 2) + _battles("B", "C", 7, 3, ties=2)
    first, second = rate(battles, seed=3), rate(battles, seed=3)
    assert [r.contestant for r in first] == ["A", "B", "C"]
    assert first == second
    assert rate([]) == []
