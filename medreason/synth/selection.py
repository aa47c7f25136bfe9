"""FineMedLM-o1 instruction selection: Algorithm 1 (CompareInstructionScore) and the complexity split.

Source: Yu et al. 2025, "FineMedLM-o1", Section 2.1 and Appendix B. Each medical text yields two
instructions; each is scored for quality (1-10), difficulty/complexity (1-10), relevance to medicine
(1-6) and whether it mentions specific details of the text. Algorithm 1 keeps at most one of the two:

1. exactly one mentions specific details → keep the other one;
2. both mention specific details → keep neither (``None``);
3. otherwise the higher quality + complexity + relevance wins; on a tie the higher
   quality + complexity; on a tie the higher quality; on a tie a random one.

Kept instructions with complexity at or above the threshold (8 in the paper) are *complex* (answered
with long-form reasoning); the rest are *common*.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["COMPLEXITY_THRESHOLD", "InstructionScores", "compare_instruction_scores", "is_complex"]

COMPLEXITY_THRESHOLD = 8
"""FineMedLM-o1, Section 2.1: "categorized instructions into common and complex types based on their
complexity scores, with a threshold set at 8"."""


@dataclass(frozen=True)
class InstructionScores:
    """The judge's scores of one generated instruction.

    Args:
        quality: Clarity and precision, 1-10.
        complexity: Difficulty of understanding and answering, 1-10 (the paper's "difficulty").
        relevance: Relevance to medicine, 1-6.
        mentions_specific_details: Whether it leans on specific details of the source text.
    """

    quality: int
    complexity: int
    relevance: int
    mentions_specific_details: bool


T = TypeVar("T")


def compare_instruction_scores(
    item1: T,
    item2: T,
    scores1: InstructionScores,
    scores2: InstructionScores,
    rng: random.Random | None = None,
) -> T | None:
    """Algorithm 1 of FineMedLM-o1, line by line: return ``item1``, ``item2`` or ``None``.

    Args:
        item1, item2: The two instructions generated from one text (any objects).
        scores1, scores2: Their scores.
        rng: Source of the final random choice (line 26); seed it for reproducible runs.

    >>> s = lambda q, c, r, d=False: InstructionScores(q, c, r, d)
    >>> compare_instruction_scores("a", "b", s(9, 9, 6, True), s(2, 2, 1))  # line 5: a mentions details
    'b'
    >>> compare_instruction_scores("a", "b", s(5, 5, 5, True), s(5, 5, 5, True)) is None  # line 11
    True
    >>> compare_instruction_scores("a", "b", s(7, 8, 4), s(8, 8, 2))  # line 16: 19 > 18
    'a'
    """
    details1, details2 = scores1.mentions_specific_details, scores2.mentions_specific_details
    if details1 != details2:  # lines 3-9: exactly one mentions specific details
        return item2 if details1 else item1
    if details1 and details2:  # lines 10-12
        return None
    total1 = scores1.quality + scores1.complexity + scores1.relevance  # lines 13-17
    total2 = scores2.quality + scores2.complexity + scores2.relevance
    if total1 != total2:
        return item1 if total1 > total2 else item2
    total1 = scores1.quality + scores1.complexity  # lines 18-22
    total2 = scores2.quality + scores2.complexity
    if total1 != total2:
        return item1 if total1 > total2 else item2
    if scores1.quality != scores2.quality:  # lines 23-25
        return item1 if scores1.quality > scores2.quality else item2
    return (rng or random).choice([item1, item2])  # line 26


def is_complex(scores: InstructionScores, threshold: int = COMPLEXITY_THRESHOLD) -> bool:
    """Whether an instruction is *complex* (complexity ≥ ``threshold``) rather than *common*.

    >>> is_complex(InstructionScores(7, 8, 5, False)), is_complex(InstructionScores(9, 7, 6, False))
    (True, False)
    """
    return scores.complexity >= threshold
