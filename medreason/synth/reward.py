"""Reward-model choice between two candidate answers (FineMedLM-o1, Section 2.1, "Response Generation").

The paper lets a reward model (sfairXC/FsfairX-LLaMA3-RM-v0.1) pick the better of Qwen's two answers
to a common instruction. Any sequence-classification checkpoint with one output works here: the
instruction and answer are rendered with the tokenizer's chat template (plain concatenation when it
has none) and the first logit is the score. Scores are cached beside the LLM calls, so a resumed run
does not score a pair twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch

from medreason.engines.base import Completion, SamplingParams
from medreason.synth.cache import CallCache, call_key

__all__ = ["RewardModel"]

_NO_SAMPLING = SamplingParams(n=1, temperature=0.0, max_tokens=1)  # a fixed part of reward cache keys


class RewardModel:
    """A sequence-classification reward model scoring ``(instruction, answer)`` pairs.

    Args:
        model: Path or hub id of the checkpoint (``AutoModelForSequenceClassification``).
        batch_size: Pairs per forward pass.
        max_length: Tokens kept per pair (longer ones are truncated from the right).
        device: Where to run; default CUDA when available.

    >>> import tempfile
    >>> from medreason.testing import build_tiny_model_dir
    >>> scorer = RewardModel(str(build_tiny_model_dir(tempfile.mkdtemp())), batch_size=2)
    >>> len(scorer.score([("Why?", "Because."), ("How?", "Like this.")]))
    2
    """

    def __init__(self, model: str, batch_size: int = 8, max_length: int = 4096, device: str | None = None):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.model_name = model
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(model, num_labels=1)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(self.device).eval()

    def _render(self, instruction: str, answer: str) -> str:
        if not self.tokenizer.chat_template:
            return f"{instruction}\n\n{answer}"
        messages = [{"role": "user", "content": instruction}, {"role": "assistant", "content": answer}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False)

    @torch.no_grad()
    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """The reward of each ``(instruction, answer)`` pair."""
        scores: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            texts = [self._render(q, a) for q, a in pairs[start : start + self.batch_size]]
            batch = self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            scores.extend(self.model(**batch).logits[:, 0].float().tolist())
        return scores

    def choose(self, items: Sequence[tuple[str, str, str]], cache: CallCache) -> list[int]:
        """For each ``(instruction, answer1, answer2)`` the index (0 or 1) of the higher-scored answer.

        Scores found in ``cache`` are reused; new ones are appended to it. Ties keep the first answer.
        """
        keys = [call_key("reward", self.model_name, list(item), _NO_SAMPLING) for item in items]
        missing = [i for i, key in enumerate(keys) if key not in cache]
        for start in range(0, len(missing), self.batch_size):
            block = missing[start : start + self.batch_size]
            pairs = [(items[i][0], items[i][answer]) for i in block for answer in (1, 2)]
            scores = self.score(pairs)
            for position, i in enumerate(block):
                text = json.dumps(scores[2 * position : 2 * position + 2])
                cache.put(keys[i], [Completion(text)], meta={"stage": "reward", "model": self.model_name})
        choices = []
        for key in keys:
            first, second = json.loads(cache.get(key)[0].text)
            choices.append(0 if first >= second else 1)
        return choices
