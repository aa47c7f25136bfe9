"""A tiny rubric benchmark in HealthBench's format and deterministic judges to serve with :class:`FakeLLMServer`.

The records reuse :mod:`medreason.testing.tiny_data`'s facts: the user describes a finding, and the
rubric rewards naming the diagnosis and advising a doctor, and penalises naming a distractor. The
judges read the prompts of :mod:`medreason.tasks.judge_prompts` and decide by keyword, so the whole
judged path (evaluation, rewards, the ``tiny`` recipe) runs offline and gives the same verdict every time.

>>> judge = keyword_judge()
>>> from medreason.tasks.judge_prompts import rubric_judge_prompt
>>> from medreason.tasks.rubric import RubricItem
>>> prompt = rubric_judge_prompt([{"role": "user", "content": "Cough?"}], "Probably croup, see a doctor.",
...                              RubricItem('Mentions "croup"', 5))
>>> judge({"messages": prompt}, 0)
'{"explanation": "The response mentions \\\\"croup\\\\" 1 time(s).", "criteria_met": true}'
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medreason.testing.openai_server import prompt_of
from medreason.testing.tiny_data import _FACTS
from medreason.utils.jsonl import write_jsonl

__all__ = ["keyword_judge", "overlap_judge", "tiny_rubric_records", "write_tiny_rubric_benchmark"]

_CRITERION = re.compile(r'<criterion>\s*\[(-?[\d.]+)\]\s*Mentions "(.+?)"(?: at least (\d+) times)?\s*</criterion>', re.DOTALL)
_CONVERSATION = re.compile(r"<conversation>\n(.*)\n</conversation>", re.DOTALL)
_TAG = {name: re.compile(rf"<{name}>\n(.*?)\n</{name}>", re.DOTALL) for name in ("reference_answer", "response")}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def tiny_rubric_records(num_records: int = 12) -> list[dict[str, Any]]:
    """Rubric records in HealthBench's field names (``prompt_id``, ``prompt``, ``rubrics``, ``example_tags``).

    >>> record = tiny_rubric_records(1)[0]
    >>> [item["points"] for item in record["rubrics"]], record["example_tags"]
    ([6, 3, -4], ['theme:internal_medicine'])
    """
    records = []
    for index in range(num_records):
        department, _, finding, truth, distractors, why = _FACTS[index % len(_FACTS)]
        records.append(
            {
                "prompt_id": f"tiny-rubric-{index:04d}",
                "prompt": [{"role": "user", "content": f"I have {finding}. What could this be, and what should I do?"}],
                "rubrics": [
                    {"criterion": f'Mentions "{truth}"', "points": 6, "tags": ["axis:accuracy", "level:example"]},
                    {"criterion": 'Mentions "doctor"', "points": 3, "tags": ["axis:completeness", "level:cluster"]},
                    {"criterion": f'Mentions "{distractors[0]}"', "points": -4, "tags": ["axis:accuracy", "level:example"]},
                ],
                "example_tags": [f"theme:{_slug(department)}"],
                "ideal_completions_data": {"ideal_completion": f"This sounds like {truth}: {why} Please see a doctor soon."},
            }
        )
    return records


def write_tiny_rubric_benchmark(directory: str | Path, num_records: int = 12) -> Path:
    """Write :func:`tiny_rubric_records` to ``directory/tiny_rubric.jsonl`` and return the path."""
    path = Path(directory) / "tiny_rubric.jsonl"
    write_jsonl(path, tiny_rubric_records(num_records))
    return path


def keyword_judge(fenced: bool = False) -> Callable[[dict[str, Any], int], str]:
    """A rubric judge for criteria of the form ``Mentions "WORD"`` or ``Mentions "WORD" at least N times``.

    The criterion is met when the final assistant turn holds ``WORD`` (case-insensitive) at least
    ``N`` (default 1) times; other criteria are never met. ``fenced`` wraps the JSON in a markdown
    code block, as many judge models do.
    """

    def answer(body: dict[str, Any], choice: int) -> str:
        prompt = prompt_of(body)
        criterion, conversation = _CRITERION.search(prompt), _CONVERSATION.search(prompt)
        response = conversation.group(1).rsplit("assistant: ", 1)[-1] if conversation else ""
        if criterion is None:
            verdict = {"explanation": "The criterion is not of the form Mentions \"WORD\".", "criteria_met": False}
        else:
            word, times = criterion.group(2), int(criterion.group(3) or 1)
            count = response.lower().count(word.lower())
            verdict = {"explanation": f'The response mentions "{word}" {count} time(s).', "criteria_met": count >= times}
        text = json.dumps(verdict)
        return f"```json\n{text}\n```" if fenced else text

    return answer


def overlap_judge() -> Callable[[dict[str, Any], int], str]:
    """A reference judge: the score is the share of the reference answer's words found in the response.

    >>> from medreason.tasks.judge_prompts import reference_judge_prompt
    >>> overlap_judge()({"messages": reference_judge_prompt("Q?", "croup doctor", "It is croup.")}, 0)
    '{"explanation": "1 of 2 reference words found.", "score": 0.5}'
    """

    def answer(body: dict[str, Any], choice: int) -> str:
        prompt = prompt_of(body)
        found = {name: pattern.search(prompt) for name, pattern in _TAG.items()}
        reference = set(re.findall(r"\w+", found["reference_answer"].group(1).lower())) if found["reference_answer"] else set()
        response = set(re.findall(r"\w+", found["response"].group(1).lower())) if found["response"] else set()
        hits = len(reference & response)
        score = hits / len(reference) if reference else 0.0
        return json.dumps({"explanation": f"{hits} of {len(reference)} reference words found.", "score": round(score, 4)})

    return answer
