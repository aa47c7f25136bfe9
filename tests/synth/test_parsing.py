import pytest

from medreason.engines.base import Completion
from medreason.synth.parsing import (
    ParseError,
    parse_answer_pair,
    parse_instruction_pair,
    parse_instruction_scores,
    parse_label,
    parse_long_form,
    parse_ranking,
    parse_text,
    parse_verdict,
)
from medreason.synth.taxonomy import DEPARTMENTS, PRIMARY_DESCRIPTIONS, count_subdepartments

SCORES = '{"quality": 7, "difficulty": 8, "medical_relevance": 5, "mentions_specific_details": false}'


def c(text, finish_reason="stop"):
    return Completion(text, finish_reason=finish_reason)


def test_scores_parse_with_fences_think_blocks_and_string_numbers():
    scores = parse_instruction_scores(
        c("<think>hmm</think>\n```json\n" + SCORES.replace("7", '"7"') + "\n```")
    )
    assert (scores.quality, scores.complexity, scores.relevance, scores.mentions_specific_details) == (
        7,
        8,
        5,
        False,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SCORES.replace('"quality": 7', '"quality": 11'), "'quality' must be from 1 to 10, got 11"),
        (SCORES.replace('"medical_relevance": 5', '"medical_relevance": 7'), "from 1 to 6"),
        (SCORES.replace('"quality": 7', '"quality": 7.5'), "whole number"),
        (SCORES.replace("false", '"maybe"'), "must be true or false"),
        (SCORES.replace('"difficulty": 8, ', ""), "lacks the field 'difficulty'"),
        ("Quality: 7/10", "no JSON object"),
        ('{"quality": 7,', "no JSON object"),
        ('{"quality": 7, }', "invalid JSON"),
    ],
)
def test_scores_are_never_guessed(text, message):
    with pytest.raises(ParseError, match=message):
        parse_instruction_scores(c(text))


def test_truncated_and_unclosed_answers_are_errors():
    with pytest.raises(ParseError, match="max_tokens"):
        parse_instruction_scores(c(SCORES, finish_reason="length"))
    with pytest.raises(ParseError, match="never closed"):
        parse_text(c("<think>still thinking"))
    with pytest.raises(ParseError, match="empty"):
        parse_text(c("<think>only thoughts</think>   "))


def test_pairs_must_be_two_different_non_empty_strings():
    assert parse_instruction_pair(c('{"question1": "Why?", "question2": "How?"}')) == ("Why?", "How?")
    with pytest.raises(ParseError, match="identical"):
        parse_answer_pair(c('{"answer1": "Same", "answer2": "Same"}'))
    with pytest.raises(ParseError, match="non-empty string"):
        parse_instruction_pair(c('{"question1": "", "question2": "How?"}'))


def test_long_form_needs_thought_then_summary():
    assert parse_long_form(c("## Thought\nstep 1\nstep 2\n## Summary\nanswer")) == (
        "step 1\nstep 2",
        "answer",
    )
    assert parse_long_form(c("**Thought**\nx\n**Summary**\ny")) == ("x", "y")
    assert parse_long_form(c("<think>deep</think>\nfinal")) == ("deep", "final")
    with pytest.raises(ParseError, match="found headings \\['summary'\\]"):
        parse_long_form(c("## Summary\nanswer only"))
    with pytest.raises(ParseError, match="Thought"):
        parse_long_form(c("just an answer"))


def test_labels_are_matched_exactly_ignoring_case_and_markup():
    labels = list(DEPARTMENTS["Internal Medicine"])
    assert parse_label(c("endocrinology"), labels) == "Endocrinology"
    assert parse_label(c("Department: **Cardiology**."), labels) == "Cardiology"
    assert parse_label(c("None"), labels, allow_none=True) is None
    with pytest.raises(ParseError, match="not one of"):
        parse_label(c("None"), labels)
    with pytest.raises(ParseError, match="not one of"):
        parse_label(c("Cardiology or Neurology"), labels)


def test_taxonomy_has_the_papers_5_plus_other_primary_and_29_secondary_departments():
    assert list(DEPARTMENTS) == list(PRIMARY_DESCRIPTIONS)
    assert len(DEPARTMENTS) == 6 and "Other Departments" in DEPARTMENTS
    assert count_subdepartments() == 29
    assert "Endocrinology" in DEPARTMENTS["Internal Medicine"]


def test_verdicts_and_rankings():
    assert parse_verdict(c('{"verdict": "Error", "reason": "wrong drug"}')).correct is False
    with pytest.raises(ParseError, match="'Correct' or 'Error'"):
        parse_verdict(c('{"verdict": "Mostly right", "reason": ""}'))
    assert parse_ranking(c('{"ranking": [3, 1, 2]}'), count=3, keep=2) == [2, 0]
    with pytest.raises(ParseError, match="distinct"):
        parse_ranking(c('{"ranking": [1, 1]}'), count=3, keep=2)
    with pytest.raises(ParseError, match="from 1 to 3"):
        parse_ranking(c('{"ranking": [4, 1]}'), count=3, keep=2)
    with pytest.raises(ParseError, match="at least 2"):
        parse_ranking(c('{"ranking": [1]}'), count=3, keep=2)
