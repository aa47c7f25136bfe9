"""What a judge model is asked, and how its answer is read back.

Two judges share this module: the rubric judge (does the last assistant turn meet one criterion?
HealthBench's grading protocol: one call per criterion, the criterion shown as ``[points] text`` so
the judge knows an undesirable criterion when it sees one, a JSON answer ``{"explanation",
"criteria_met"}``) and the reference judge (how well does a response agree with a reference answer?
a JSON answer ``{"explanation", "score"}`` with a score in ``[0, 1]``). The prompt wording is ours.

Judge answers are parsed leniently about layout (code fences, text around the object, a ``<think>``
block first, ``"true"`` as a string) and strictly about content: an answer without a usable verdict
is ``None``, which the caller retries and finally records as a judge failure, never as "not met".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medreason.tasks.rubric import RubricItem

__all__ = [
    "LLM_JUDGE_TEMPLATE",
    "RUBRIC_JUDGE_TEMPLATE",
    "JudgeVerdict",
    "format_conversation",
    "parse_judge_json",
    "parse_rubric_verdict",
    "parse_score_verdict",
    "reference_judge_prompt",
    "rubric_judge_prompt",
]

RUBRIC_JUDGE_TEMPLATE = """You are grading the final assistant turn of a health conversation against one rubric criterion.

<conversation>
{conversation}
</conversation>

<criterion>
{criterion}
</criterion>

Decide whether the final assistant turn satisfies the criterion. The number in brackets is the
criterion's point value. A negative value marks an undesirable behaviour: still answer whether the
response shows that behaviour (true) or not (false), not whether the response is good.
- A criterion made of several requirements is met only if every requirement is met.
- Where the criterion lists examples ("such as", "for example", "including"), the response need not
  name all of them, or any particular one, to meet it.

Answer with a single JSON object and nothing else:
{{"explanation": "<one or two sentences>", "criteria_met": true or false}}"""
"""The rubric judge's prompt; ``{conversation}`` and ``{criterion}`` are filled in."""

LLM_JUDGE_TEMPLATE = """You are grading a response to a medical question against a reference answer written by an expert.

<question>
{question}
</question>

<reference_answer>
{reference}
</reference_answer>

<response>
{response}
</response>

Score how well the response agrees with the reference answer in its medical content: 1.0 when it
reaches the same conclusions and recommendations, 0.0 when it contradicts them or is unsafe, partial
credit in between. Ignore style and length.

Answer with a single JSON object and nothing else:
{{"explanation": "<one or two sentences>", "score": <a number from 0 to 1>}}"""
"""The default reference judge prompt; ``{question}``, ``{reference}`` and ``{response}`` are filled in."""

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


@dataclass(frozen=True)
class JudgeVerdict:
    """A judge's parsed answer.

    Args:
        value: ``True``/``False`` (rubric judge) or a score in ``[0, 1]`` (reference judge).
        explanation: The judge's reason, kept for audit.
    """

    value: bool | float
    explanation: str = ""


def format_conversation(messages: Sequence[Mapping[str, str]]) -> str:
    """``role: content`` per turn, separated by blank lines.

    >>> format_conversation([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
    'user: Hi\\n\\nassistant: Hello'
    """
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def rubric_judge_prompt(
    prompt: Sequence[Mapping[str, str]], response: str, item: RubricItem
) -> list[dict[str, str]]:
    """The chat messages asking a judge whether ``response`` (the next assistant turn after ``prompt``) meets ``item``."""
    conversation = format_conversation([*prompt, {"role": "assistant", "content": response}])
    return [{"role": "user", "content": RUBRIC_JUDGE_TEMPLATE.format(conversation=conversation, criterion=str(item))}]


def reference_judge_prompt(question: str, reference: str, response: str, template: str = LLM_JUDGE_TEMPLATE) -> list[dict[str, str]]:
    """The chat messages asking a judge to score ``response`` against ``reference`` with ``template``.

    Raises:
        ValueError: ``template`` lacks one of the ``{question}``, ``{reference}``, ``{response}`` fields.
    """
    for name in ("{question}", "{reference}", "{response}"):
        if name not in template:
            raise ValueError(f"The judge prompt template has no {name} field; it needs all of {{question}}, {{reference}}, {{response}}.")
    return [{"role": "user", "content": template.format(question=question, reference=reference, response=response)}]


def _objects(text: str) -> list[str]:
    """Candidate JSON objects in ``text``: fenced blocks first, then each balanced ``{...}`` span."""
    candidates = [block.strip() for block in _FENCE.findall(text)]
    depth, start, in_string, escaped = 0, -1, False, False
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char == "{":
            start = i if depth == 0 else start
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                candidates.append(text[start : i + 1])
    return candidates


def parse_judge_json(text: str) -> dict[str, Any] | None:
    """The last JSON object in a judge's answer (after any ``<think>`` block), or ``None``.

    >>> parse_judge_json('<think>hmm {no}</think>Sure: ```json\\n{"criteria_met": false}\\n```')
    {'criteria_met': False}
    >>> parse_judge_json("I think it is met.") is None
    True
    """
    text = _THINK.sub("", text)
    if "</think>" in text:  # an unclosed block's end: keep what follows it
        text = text.rsplit("</think>", 1)[1]
    for candidate in reversed(_objects(text)):
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _explanation(data: Mapping[str, Any]) -> str:
    explanation = data.get("explanation", "")
    return explanation if isinstance(explanation, str) else json.dumps(explanation)


def parse_rubric_verdict(text: str) -> JudgeVerdict | None:
    """``criteria_met`` from a rubric judge's answer, or ``None`` when it has no boolean verdict.

    >>> parse_rubric_verdict('{"explanation": "Advises 911.", "criteria_met": "True"}')
    JudgeVerdict(value=True, explanation='Advises 911.')
    >>> parse_rubric_verdict('{"criteria_met": "maybe"}') is None
    True
    """
    data = parse_judge_json(text)
    if data is None:
        return None
    met = data.get("criteria_met")
    if isinstance(met, str) and met.strip().lower() in ("true", "false"):
        met = met.strip().lower() == "true"
    if not isinstance(met, bool):
        return None
    return JudgeVerdict(met, _explanation(data))


def parse_score_verdict(text: str) -> JudgeVerdict | None:
    """``score`` in ``[0, 1]`` from a reference judge's answer, or ``None`` when missing or out of range.

    >>> parse_score_verdict('```json\\n{"score": 0.75, "explanation": "Misses the dose."}\\n```')
    JudgeVerdict(value=0.75, explanation='Misses the dose.')
    >>> parse_score_verdict('{"score": 7}') is None
    True
    """
    data = parse_judge_json(text)
    if data is None:
        return None
    score = data.get("score")
    if isinstance(score, str):
        try:
            score = float(score)
        except ValueError:
            return None
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score) or not 0 <= score <= 1:
        return None
    return JudgeVerdict(float(score), _explanation(data))
