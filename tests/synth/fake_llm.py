"""A deterministic fake LLM for the synthesis tests: it recognises our prompt templates and answers them.

Scripted behaviour is driven by markers in the input data:

- a FineMed text carries its two questions' scores, e.g. ``S1=8,9,6,0 S2=7,5,5,0`` (quality,
  complexity, relevance, mentions-details) — the judge answers them back;
- ``MALFORMED`` in a prompt: the first attempt (seed 0) answers garbage, later attempts answer well;
- ``ALWAYS_BAD``: every attempt answers garbage (→ a failure row);
- ``RATE_LIMIT``: the first request of that prompt gets HTTP 429; ``SLOW``: the first one hangs past
  the client's timeout; ``DOWN``: every request gets HTTP 500 (the engine gives up → failure row);
- an MCQ question carries its key ``(key: B)`` and a tier marker ``EASY``/``MEDIUM``/``HARD``.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from typing import Any

from medreason.testing.openai_server import Fault, prompt_of

GARBAGE = "Sure! Here is what you asked for, more or less."


class FakeLLM:
    """The responder of :class:`~medreason.testing.openai_server.FakeLLMServer`; counts requests per call."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()

    @staticmethod
    def call_key(body: dict[str, Any]) -> str:
        return json.dumps(
            [
                body["model"],
                body.get("messages") or body.get("prompt"),
                body.get("temperature"),
                body.get("seed"),
                body.get("n", 1),
            ],
            sort_keys=True,
        )

    def __call__(self, body: dict[str, Any], index: int) -> str | Fault:
        prompt = prompt_of(body)
        seed = body.get("seed") or 0
        if index == 0:
            with self._lock:
                self.hits[self.call_key(body)] += 1
                first = self.hits[self.call_key(body)] == 1
            if "DOWN" in prompt:
                return Fault(500)
            if "RATE_LIMIT" in prompt and first:
                return Fault(429)
            if "SLOW" in prompt and first:
                return Fault(delay=1.5)
        if "ALWAYS_BAD" in prompt or ("MALFORMED" in prompt and seed == 0):
            return GARBAGE
        return self.answer(prompt, body, index)

    def answer(self, prompt: str, body: dict[str, Any], index: int) -> str:
        model, temperature = body["model"], body.get("temperature")
        if prompt.startswith("Read the medical passage"):
            passage = prompt.split("<<<", 1)[1]
            s1, s2 = re.search(r"S1=([\d,]+)", passage).group(1), re.search(r"S2=([\d,]+)", passage).group(1)
            tag = re.search(r"TAG=(\w+)", passage).group(1)
            return json.dumps(
                {
                    "question1": f"First question on {tag} [{s1}]?",
                    "question2": f"Second question on {tag} [{s2}]?",
                }
            )
        if prompt.startswith("You are grading a question"):
            question = prompt.split("<<<", 1)[1]
            q, c, r, d = (int(x) for x in re.search(r"\[([\d,]+)\]", question).group(1).split(","))
            if "BADSCORE" in question:
                q = 11
            return (
                "```json\n"
                + json.dumps(
                    {
                        "quality": q,
                        "difficulty": c,
                        "medical_relevance": r,
                        "mentions_specific_details": bool(d),
                    }
                )
                + "\n```"
            )
        if prompt.startswith("Answer the question below twice"):
            return json.dumps(
                {
                    "answer1": "A brief answer about thyroid care.",
                    "answer2": "A longer, structured answer.\n1. Check TSH.",
                }
            )
        if prompt.startswith("Work out a careful"):
            return "## Thought\nLet me weigh the findings step by step.\n## Summary\nThe final answer, carefully reasoned."
        if prompt.startswith("You are a physician sorting"):
            if "sub-specialty of" in prompt:
                return "Endocrinology" if "of Internal Medicine" in prompt else "None"
            return "Maybe Internal Medicine or Surgery" if "UNSURE" in prompt else "**Internal Medicine**"
        key = re.search(r"\(key: ([A-E])\)", prompt)
        key = key.group(1) if key else "A"
        if prompt.startswith("Answer the multiple-choice"):
            return f"Reasoning by {model} at t={temperature}: weigh every option.\nThe answer is {key}."
        if prompt.startswith("You check medical reasoning"):
            chain = prompt.split("Candidate chain of thought:", 1)[1]
            correct = (
                "EASY" in prompt
                and "gen3" not in chain
                or "MEDIUM" in prompt
                and "gen1" in chain
                and "t=1.0" not in chain
            )
            return json.dumps(
                {"verdict": "Correct" if correct else "Error", "reason": "" if correct else "wrong step"}
            )
        if prompt.startswith("Several chains of thought"):
            count = len(re.findall(r"^Candidate \d+ \(", prompt, flags=re.M))
            return json.dumps({"ranking": list(range(count, 0, -1))})
        if prompt.startswith("Improve the chain of thought"):
            return f"Refined reasoning, all errors fixed.\nThe answer is {key}."
        if prompt.startswith("Solve the multiple-choice"):
            wrong = "B" if key != "B" else "C"
            return f"1. Restate. 2. Recall. 3. Analyse. 4. Exclude. 5. Check. 6. Conclude.\nThe answer is {wrong if 'WRONG_AGAIN' in prompt else key}."
        if prompt.startswith("Condense the reasoning"):
            return f"In short: the findings point to option {key}."
        if "put your final answer" in prompt:
            letter = key if index % 2 == 1 and "NEVER" not in prompt else ("B" if key != "B" else "C")
            return (
                f"<think>\nSample {index}: thinking about it.\n</think>\n\nThe answer is \\boxed{{{letter}}}."
            )
        return GARBAGE
