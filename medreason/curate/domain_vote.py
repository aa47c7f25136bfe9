"""Domain classification of clusters: ask an LLM about each representative prompt, then vote.

The card classifies the 10 prompts nearest each cluster centre with Qwen2.5-32B-Instruct, gives each
cluster its majority domain and keeps the clusters voted Medical or Biology. Any
:class:`~medreason.engines.base.GenerationEngine` answers here; its replies are cached on disk (keyed
by model, prompt template, sampling settings and prompt), so a rerun asks nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from medreason.engines.base import GenerationEngine, SamplingParams
from medreason.utils.jsonl import JsonlLog

DEFAULT_DOMAINS = (
    "Medical",
    "Biology",
    "Chemistry",
    "Physics",
    "Mathematics",
    "Computer Science",
    "Engineering",
    "Humanities",
    "Social Science",
    "Other",
)
DEFAULT_TEMPLATE = (
    "Classify the domain of the following question. Answer with exactly one of: {domains}.\n\n"
    "Question: {prompt}\n\nDomain:"
)
UNKNOWN = "Other"


def parse_domain(reply: str, domains: Sequence[str]) -> str:
    """The domain a reply names first (case-insensitive, whole words); ``"Other"`` if none.

    >>> parse_domain("The domain is **Biology**.", DEFAULT_DOMAINS)
    'Biology'
    """
    found = [
        (m.start(), d) for d in domains if (m := re.search(rf"\b{re.escape(d)}\b", reply, re.IGNORECASE))
    ]
    return min(found)[1] if found else UNKNOWN


@dataclass(frozen=True)
class ClusterVote:
    """A cluster's domain and the votes behind it.

    Args:
        domain: The majority domain (ties go to the label of the prompt nearest the centre).
        votes: Domain of each representative prompt, nearest first.
    """

    domain: str
    votes: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        """The vote as a JSON-ready dict."""
        return {"domain": self.domain, "votes": list(self.votes)}


def majority(votes: Sequence[str]) -> str:
    """The most common label; among tied labels, the one that appears first.

    >>> majority(["Biology", "Medical", "Medical", "Biology", "Physics"])
    'Biology'
    """
    counts = Counter(votes)
    top = max(counts.values())
    return next(vote for vote in votes if counts[vote] == top)


class DomainClassifier:
    """Labels prompts with a domain through a generation engine, caching every answer.

    Args:
        engine: Any generation backend.
        domains: Allowed labels; replies naming none of them count as ``"Other"``.
        template: Prompt with ``{domains}`` and ``{prompt}`` placeholders.
        sampling: Sampling settings (default: greedy, 16 tokens).
        cache_path: JSONL file of earlier answers; ``None`` disables the cache.
        batch_size: Prompts per ``engine.generate`` call.
        max_prompt_chars: Prompts are cut to this many characters before classification.
    """

    def __init__(
        self,
        engine: GenerationEngine,
        *,
        domains: Sequence[str] = DEFAULT_DOMAINS,
        template: str = DEFAULT_TEMPLATE,
        sampling: SamplingParams | None = None,
        cache_path: str | os.PathLike | None = None,
        batch_size: int = 256,
        max_prompt_chars: int = 2000,
    ):
        if "{prompt}" not in template:
            raise ValueError("The domain-classification template needs a {prompt} placeholder.")
        self.engine, self.domains, self.template = engine, tuple(domains), template
        self.sampling = sampling or SamplingParams(temperature=0.0, max_tokens=16)
        self._log = JsonlLog(cache_path) if cache_path is not None else None
        self.batch_size, self.max_prompt_chars = batch_size, max_prompt_chars
        self._cache: dict[str, str] = {}
        if self._log is not None:
            self._cache = dict(self._log.read(lambda row: (row["key"], row["domain"])))

    def _render(self, prompt: str) -> str:
        return self.template.format(domains=", ".join(self.domains), prompt=prompt[: self.max_prompt_chars])

    def _key(self, rendered: str) -> str:
        material = json.dumps(
            [self.engine.model_name, self.sampling.cache_key(), list(self.domains), rendered]
        )
        return hashlib.sha1(material.encode("utf-8")).hexdigest()

    def classify(self, prompts: Sequence[str], progress: Callable[[int], None] | None = None) -> list[str]:
        """The domain of each prompt, asking the engine only about prompts not cached yet."""
        rendered = [self._render(prompt) for prompt in prompts]
        keys = [self._key(text) for text in rendered]
        todo = list(dict.fromkeys(key for key in keys if key not in self._cache))
        text_of = dict(zip(keys, rendered, strict=True))
        if progress is not None:
            progress(len(prompts) - len(todo))
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            # sent as a user turn, so instruct models (the card's Qwen2.5-32B-Instruct) get their chat template
            chats = [[{"role": "user", "content": text_of[key]}] for key in batch]
            replies = self.engine.generate(chats, self.sampling)
            answers = {
                key: parse_domain(reply[0].text if reply else "", self.domains)
                for key, reply in zip(batch, replies, strict=True)
            }
            self._cache.update(answers)
            if self._log is not None:
                self._log.append({"key": k, "domain": d} for k, d in answers.items())
            if progress is not None:
                progress(len(batch))
        return [self._cache[key] for key in keys]

    def vote(
        self, representatives: dict[int, list[str]], progress: Callable[[int], None] | None = None
    ) -> dict[int, ClusterVote]:
        """Majority-vote each cluster's domain from its representative prompts (nearest first)."""
        clusters = list(representatives)
        flat = [prompt for cluster in clusters for prompt in representatives[cluster]]
        labels = iter(self.classify(flat, progress))
        votes = {}
        for cluster in clusters:
            cluster_votes = tuple(next(labels) for _ in representatives[cluster])
            votes[cluster] = ClusterVote(majority(cluster_votes), cluster_votes)
        return votes
