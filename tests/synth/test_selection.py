"""Algorithm 1 (FineMedLM-o1, Appendix B) against hand-worked examples, one per branch."""

import random

import pytest

from medreason.synth.selection import InstructionScores, compare_instruction_scores, is_complex


def s(quality, complexity, relevance, details=False):
    return InstructionScores(quality, complexity, relevance, details)


@pytest.mark.parametrize(
    ("scores1", "scores2", "expected", "why"),
    [
        # lines 3-8: exactly one mentions specific details -> the other one, whatever the scores
        (s(10, 10, 6, True), s(1, 1, 1), "item2", "item1 mentions details"),
        (s(1, 1, 1), s(10, 10, 6, True), "item1", "item2 mentions details"),
        # lines 10-11: both mention details -> None
        (s(9, 9, 6, True), s(3, 3, 3, True), None, "both mention details"),
        # lines 13-16: quality + complexity + relevance: 7+8+4=19 vs 8+8+2=18
        (s(7, 8, 4), s(8, 8, 2), "item1", "sum of three"),
        (s(5, 5, 5), s(6, 5, 5), "item2", "sum of three, 15 vs 16"),
        # lines 18-21: three-way tie 20 = 20, then quality + complexity 14 vs 15
        (s(5, 9, 6), s(8, 7, 5), "item2", "tie on three, q+c decides"),
        (s(9, 6, 4), s(7, 7, 5), "item1", "tie 19 = 19, q+c 15 vs 14"),
        # lines 23-24: ties on both sums, quality decides: (8,6,5) vs (6,8,5): 19=19, 14=14, 8>6
        (s(8, 6, 5), s(6, 8, 5), "item1", "quality decides"),
        (s(6, 8, 5), s(8, 6, 5), "item2", "quality decides, reversed"),
    ],
)
def test_algorithm_1_branches(scores1, scores2, expected, why):
    result = compare_instruction_scores("item1", "item2", scores1, scores2)
    assert result == expected, why


def test_full_tie_is_a_random_choice_and_seedable():
    tie = s(7, 7, 5)
    picks = {compare_instruction_scores("a", "b", tie, tie, random.Random(seed)) for seed in range(20)}
    assert picks == {"a", "b"}
    assert compare_instruction_scores("a", "b", tie, tie, random.Random(3)) == compare_instruction_scores(
        "a", "b", tie, tie, random.Random(3)
    )


def test_relevance_only_counts_in_the_first_sum():
    # 6+6+6=18 vs 7+7+4=18 tie; then q+c 12 vs 14: item2, although item1 is far more medical
    assert compare_instruction_scores("a", "b", s(6, 6, 6), s(7, 7, 4)) == "b"


def test_complexity_threshold_8_splits_common_and_complex():
    assert is_complex(s(5, 8, 5)) and is_complex(s(5, 10, 5))
    assert not is_complex(s(10, 7, 6))
    assert is_complex(s(5, 7, 5), threshold=7)
