"""``llm_judge``: a judge model scores a completion against a reference answer, in ``[0, 1]``.

For free-text medical answers, where keyword matching is easily gamed: the judge sees the question
(the record's prompt), the record's reference answer (column ``reference`` by default) and the
completion's final answer (reasoning removed), and answers ``{"explanation", "score"}``. The prompt
template is a setting (``{question}``, ``{reference}`` and ``{response}`` are filled in). Records
without a reference, and completions the judge failed on or the per-step budget left out, get ``None``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from medreason.engines import GenerationEngine, SamplingParams
from medreason.rewards.judging import JudgedReward, JudgeOutcome, final_answer
from medreason.rewards.registry import register_reward
from medreason.tasks.judge_prompts import LLM_JUDGE_TEMPLATE, parse_score_verdict, reference_judge_prompt
from medreason.utils.futures import call_now, then

__all__ = ["LLMJudgeReward"]


class LLMJudgeReward(JudgedReward):
    """A judge's ``[0, 1]`` score of each completion against its record's reference answer.

    Args:
        template: The judge prompt, with ``{question}``, ``{reference}`` and ``{response}`` fields.
        reference_column: The dataset column holding the reference answer.
        **judge_settings: :class:`~medreason.rewards.judging.JudgedReward`'s settings.

    >>> from medreason.testing.openai_server import FakeLLMServer
    >>> from medreason.testing.tiny_rubric import overlap_judge
    >>> with FakeLLMServer(overlap_judge()) as server:
    ...     reward = LLMJudgeReward(judge={"model": "judge", "base_url": server.base_url})
    ...     reward(["It is croup; see a doctor.", "No idea."], prompts=["Cough?"] * 2, reference=["croup doctor", None])
    [1.0, None]
    """

    cache_name = "llm_judge"

    def __init__(
        self,
        judge: GenerationEngine | Mapping[str, Any] | None = None,
        template: str = LLM_JUDGE_TEMPLATE,
        reference_column: str = "reference",
        cache_dir: str | os.PathLike | None = None,
        max_calls_per_step: int | None = None,
        max_attempts: int = 3,
        sampling: SamplingParams | Mapping[str, Any] | None = None,
        chunk_size: int = 256,
    ):
        super().__init__(judge, cache_dir, max_calls_per_step, max_attempts, sampling, chunk_size)
        reference_judge_prompt("q", "r", "a", template)  # a template without its fields fails here, before training
        self.template = template
        self.reference_column = reference_column

    def submit(self, completions: list[str], **kwargs: Any) -> Future[list[float | None]]:
        count = len(completions)
        references = kwargs.get(self.reference_column) or [None] * count
        prompts = kwargs.get("prompts") or [""] * count
        chosen, judge_prompts = [], []
        for index, (text, prompt, reference) in enumerate(zip(completions, prompts, references, strict=True)):
            if isinstance(reference, str) and reference.strip():
                question = prompt if isinstance(prompt, str) else "\n\n".join(f"{m['role']}: {m['content']}" for m in prompt)
                chosen.append(index)
                judge_prompts.append(reference_judge_prompt(question, reference, final_answer(text), self.template))
        if not judge_prompts:
            return call_now(list, [None] * count)

        def scored(outcomes: list[JudgeOutcome]) -> list[float | None]:
            scores: list[float | None] = [None] * count
            for index, outcome in zip(chosen, outcomes, strict=True):
                if outcome.verdict is not None:
                    scores[index] = float(outcome.verdict.value)
            return scores

        return then(self._judge(judge_prompts, parse_score_verdict), scored)


register_reward("llm_judge")(LLMJudgeReward)
