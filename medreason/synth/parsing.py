"""Strict parsers for LLM answers: a parsed value or a :class:`ParseError` saying what was wrong.

No parser guesses: an out-of-range score, a missing field or a label outside the allowed list is an
error, never a default. The runner retries a failed call up to ``max_attempts`` times and then writes
a failure row with the last error and the raw answer (:mod:`medreason.synth.runner`).

Reasoning models may put a ``<think>…</think>`` block before their answer; the parsers look only at
the text after it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medreason.data.chat_templates import THINK_CLOSE, THINK_OPEN
from medreason.engines.base import Completion
from medreason.synth.selection import InstructionScores

__all__ = [
    "ParseError",
    "Verdict",
    "answer_text",
    "parse_answer_pair",
    "parse_instruction_pair",
    "parse_instruction_scores",
    "parse_json_object",
    "parse_label",
    "parse_long_form",
    "parse_ranking",
    "parse_text",
    "parse_verdict",
    "split_reasoning",
]

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?|\n?```\s*$")
_SECTION = re.compile(r"^\s*(?:#+\s*|\*\*)?(thought|summary)(?:\*\*)?\s*:?\s*(?:\*\*)?\s*$", re.I | re.M)


class ParseError(ValueError):
    """An LLM answer that does not follow the requested format; the message says how."""


def split_reasoning(text: str) -> tuple[str, str]:
    """Split ``<think>reasoning</think>answer`` into ``(reasoning, answer)``; no block → ``("", text)``.

    >>> split_reasoning("<think>\\nhmm\\n</think>\\n\\nB")
    ('hmm', 'B')
    """
    close = text.rfind(THINK_CLOSE)
    if close == -1:
        return "", text.strip()
    return text[:close].replace(THINK_OPEN, "").strip(), text[close + len(THINK_CLOSE) :].strip()


def answer_text(completion: Completion, allow_truncated: bool = False) -> str:
    """The non-empty text of ``completion`` (after any ``<think>`` block).

    Raises:
        ParseError: the completion hit ``max_tokens`` (unless allowed) or is empty.
    """
    if completion.truncated and not allow_truncated:
        raise ParseError("the answer was cut off at max_tokens; raise the role's max_tokens")
    if completion.text.count(THINK_OPEN) > completion.text.count(THINK_CLOSE):
        raise ParseError("the reasoning block <think> was never closed")
    text = split_reasoning(completion.text)[1]
    if not text:
        raise ParseError("the answer is empty")
    return text


def parse_text(completion: Completion) -> str:
    """A free-text answer (a chain of thought, a summary): any non-empty, complete text."""
    return answer_text(completion)


def parse_json_object(text: str, required: Sequence[str]) -> dict[str, Any]:
    """The one JSON object in ``text`` (code fences allowed), with every key of ``required``.

    >>> parse_json_object('```json\\n{"a": 1}\\n```', ["a"])
    {'a': 1}
    >>> parse_json_object('{"b": 1}', ["a"])
    Traceback (most recent call last):
    ...
    medreason.synth.parsing.ParseError: the JSON object lacks the field 'a' (it has: b)
    """
    stripped = _FENCE.sub("", text.strip()).strip()
    start, end = stripped.find("{"), stripped.rfind("}")
    if start == -1 or end < start:
        raise ParseError(f"no JSON object found in the answer: {text[:120]!r}")
    try:
        data = json.loads(stripped[start : end + 1])
    except json.JSONDecodeError as error:
        raise ParseError(f"invalid JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(data, dict):
        raise ParseError(f"expected a JSON object, got {type(data).__name__}")
    for key in required:
        if key not in data:
            raise ParseError(
                f"the JSON object lacks the field {key!r} (it has: {', '.join(data) or 'nothing'})"
            )
    return data


def _string(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        raise ParseError(f"field {key!r} must be a non-empty string, got {value!r}")
    return value.strip()


def _integer(data: dict[str, Any], key: str, low: int, high: int) -> int:
    value = data[key]
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParseError(f"field {key!r} must be a whole number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise ParseError(f"field {key!r} must be from {low} to {high}, got {value}")
    return value


def _boolean(data: dict[str, Any], key: str) -> bool:
    value = data[key]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "false", "no"):
        return value.strip().lower() in ("true", "yes")
    raise ParseError(f"field {key!r} must be true or false, got {value!r}")


def _pair(completion: Completion, first: str, second: str) -> tuple[str, str]:
    data = parse_json_object(answer_text(completion), [first, second])
    one, two = _string(data, first), _string(data, second)
    if one == two:
        raise ParseError(f"{first!r} and {second!r} are identical; two different ones were asked for")
    return one, two


def parse_instruction_pair(completion: Completion) -> tuple[str, str]:
    """``{"question1": …, "question2": …}`` → the two questions (non-empty and different)."""
    return _pair(completion, "question1", "question2")


def parse_answer_pair(completion: Completion) -> tuple[str, str]:
    """``{"answer1": …, "answer2": …}`` → the two answers (non-empty and different)."""
    return _pair(completion, "answer1", "answer2")


def parse_instruction_scores(completion: Completion) -> InstructionScores:
    """The judge's JSON scores → :class:`InstructionScores`, every field checked against its scale.

    >>> parse_instruction_scores(Completion('{"quality": 8, "difficulty": "9", '
    ...     '"medical_relevance": 6, "mentions_specific_details": "false"}'))
    InstructionScores(quality=8, complexity=9, relevance=6, mentions_specific_details=False)
    """
    keys = ("quality", "difficulty", "medical_relevance", "mentions_specific_details")
    data = parse_json_object(answer_text(completion), keys)
    return InstructionScores(
        quality=_integer(data, "quality", 1, 10),
        complexity=_integer(data, "difficulty", 1, 10),
        relevance=_integer(data, "medical_relevance", 1, 6),
        mentions_specific_details=_boolean(data, "mentions_specific_details"),
    )


def parse_long_form(completion: Completion) -> tuple[str, str]:
    """A long-form answer → ``(thought, summary)``.

    Accepted layouts: a ``Thought`` heading then a ``Summary`` heading, or ``<think>…</think>`` then
    the summary (a server whose reasoning parser splits the thinking off).
    """
    if completion.truncated:
        raise ParseError("the long-form answer was cut off at max_tokens; raise the role's max_tokens")
    reasoning, rest = split_reasoning(completion.text)
    headings = list(_SECTION.finditer(rest))
    names = [match.group(1).lower() for match in headings]
    if names.count("thought") == 1 and names.count("summary") == 1 and names.index("thought") == 0:
        thought_heading, summary_heading = headings
        thought = rest[thought_heading.end() : summary_heading.start()].strip()
        summary = rest[summary_heading.end() :].strip()
        reasoning = f"{reasoning}\n\n{thought}".strip()
    elif reasoning and not headings:
        summary = rest
    else:
        raise ParseError(
            "expected a 'Thought' section followed by a 'Summary' section (or <think>…</think> then "
            f"the summary); found headings {names or 'none'}"
        )
    if not reasoning or not summary:
        raise ParseError("the Thought or the Summary section is empty")
    return reasoning, summary


def parse_label(completion: Completion, labels: Sequence[str], allow_none: bool = False) -> str | None:
    """The one label of ``labels`` the answer names (whole answer, case and markup ignored).

    ``"None"`` is accepted (and returned as ``None``) only with ``allow_none``.

    >>> parse_label(Completion("**Cardiology**."), ["Cardiology", "Neurology"])
    'Cardiology'
    """
    text = answer_text(completion).strip().strip("*`\"'. ").strip()
    text = re.sub(r"^(?:department|answer|label)\s*:\s*", "", text, flags=re.I).strip("*`\"'. ")
    folded = " ".join(text.split()).casefold()
    for label in labels:
        if folded == " ".join(label.split()).casefold():
            return label
    if allow_none and folded == "none":
        return None
    allowed = ", ".join(labels) + (", None" if allow_none else "")
    raise ParseError(f"the answer {text[:80]!r} is not one of: {allowed}")


@dataclass(frozen=True)
class Verdict:
    """A verifier's judgement of one chain of thought.

    Args:
        correct: ``True`` for Correct, ``False`` for Error.
        reason: The verifier's explanation (the error it found, if any).
    """

    correct: bool
    reason: str


def parse_verdict(completion: Completion) -> Verdict:
    """``{"verdict": "Correct" | "Error", "reason": …}`` → :class:`Verdict`."""
    data = parse_json_object(answer_text(completion), ["verdict", "reason"])
    verdict = str(data["verdict"]).strip().lower()
    if verdict not in ("correct", "error"):
        raise ParseError(f"field 'verdict' must be 'Correct' or 'Error', got {data['verdict']!r}")
    return Verdict(correct=verdict == "correct", reason=str(data["reason"]).strip())


def parse_ranking(completion: Completion, count: int, keep: int) -> list[int]:
    """``{"ranking": [3, 1, …]}`` (1-based, best first) → the 0-based indices of the best ``keep``.

    Raises:
        ParseError: a number outside 1..``count``, a repeated number, or fewer than ``keep`` numbers.
    """
    data = parse_json_object(answer_text(completion), ["ranking"])
    ranking = data["ranking"]
    if not isinstance(ranking, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in ranking
    ):
        raise ParseError(f"field 'ranking' must be a list of whole numbers, got {ranking!r}")
    if any(not 1 <= i <= count for i in ranking) or len(set(ranking)) != len(ranking):
        raise ParseError(f"'ranking' must name distinct candidates from 1 to {count}, got {ranking}")
    if len(ranking) < keep:
        raise ParseError(f"'ranking' must list at least {keep} candidates, got {ranking}")
    return [i - 1 for i in ranking[:keep]]
