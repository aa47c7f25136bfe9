"""A resumable on-disk cache of generations, one JSONL file per model and benchmark.

Each line holds every completion of one item under a key made of the model name, the benchmark,
the item id, the sampling parameters and a hash of the rendered prompt (so editing the prompt
template regenerates instead of silently reusing stale answers). Lines are appended, flushed and
synced after each engine call (token ids are not kept, only their count), so a crash or Ctrl-C loses at
most the call in flight; a torn last line is skipped on reload, its item generated again and appended on
a line of its own (:class:`~medreason.utils.jsonl.JsonlLog`).

Under data-parallel evaluation each rank appends to a file of its own, ``<benchmark>.rank<r>.jsonl``
(one writer per file, so no lock across processes), and every cache reads all of a benchmark's files:
a killed run resumes under any number of processes, one included, without generating anything twice.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from medreason.engines.base import Completion, Prompt, SamplingParams
from medreason.utils.jsonl import JsonlLog

__all__ = ["GenerationCache", "model_slug", "prompt_hash"]


def model_slug(model_name: str) -> str:
    """A file-system-safe name for ``model_name`` (a hub id or a path).

    >>> model_slug("Intelligent-Internet/II-Medical-8B")
    'Intelligent-Internet__II-Medical-8B'
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name.strip("/").replace("/", "__"))
    if len(slug) > 120:  # long local paths: keep the readable end, disambiguate with a hash
        slug = slug[-100:] + "-" + hashlib.sha1(model_name.encode()).hexdigest()[:10]
    return slug or "model"


def prompt_hash(prompt: Prompt) -> str:
    """A short stable hash of a text or chat prompt."""
    return hashlib.sha1(json.dumps(prompt, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


class GenerationCache:
    """Completions of one model on one benchmark, stored in ``root/<model slug>/<benchmark>.jsonl``.

    Args:
        root: The cache directory (``<output_dir>/generations`` in :func:`~medreason.eval.evaluate`).
        model_name: The engine's model name.
        benchmark: The benchmark name.
        rank: Under data-parallel evaluation, the rank whose file ``put`` appends to
            (``<benchmark>.rank<rank>.jsonl``); ``None`` for ``<benchmark>.jsonl``. Reads see every file.
    """

    def __init__(self, root: str | os.PathLike, model_name: str, benchmark: str, rank: int | None = None):
        self.model_name = model_name
        self.benchmark = benchmark
        folder = Path(root) / model_slug(model_name)
        self.path = folder / (f"{benchmark}.jsonl" if rank is None else f"{benchmark}.rank{rank}.jsonl")
        self._log = JsonlLog(self.path, fsync=True)
        rank_files = sorted(glob.glob(os.path.join(glob.escape(str(folder)), f"{glob.escape(benchmark)}.rank*.jsonl")))
        paths = [folder / f"{benchmark}.jsonl", *map(Path, rank_files)]
        self._entries: dict[tuple[str, str, str], list[Completion]] = {}
        for path in paths:
            log = self._log if path == self.path else JsonlLog(path)
            self._entries.update(entry for entry in log.read(self._parse) if entry is not None)

    def _parse(self, entry: dict[str, Any]) -> tuple[tuple[str, str, str], list[Completion]] | None:
        """An entry's key and completions; ``None`` for another model's or benchmark's entry."""
        completions = [Completion.from_json(c) for c in entry["completions"]]
        key = (str(entry["id"]), entry["sampling"], entry["prompt_hash"])
        if entry.get("model") != self.model_name or entry.get("benchmark") != self.benchmark:
            return None
        return key, completions

    def get(self, item_id: str, sampling: SamplingParams, prompt: Prompt) -> list[Completion] | None:
        """The cached completions of an item, or ``None`` when they must be generated."""
        return self._entries.get((item_id, sampling.cache_key(), prompt_hash(prompt)))

    def put(self, items: list[tuple[str, Prompt, list[Completion]]], sampling: SamplingParams) -> None:
        """Append ``(item id, prompt, completions)`` entries and flush and sync them to disk."""
        key = sampling.cache_key()
        entries = [
            {"model": self.model_name, "benchmark": self.benchmark, "id": item_id, "sampling": key,
             "prompt_hash": prompt_hash(prompt), "completions": [c.to_json() for c in completions]}
            for item_id, prompt, completions in items
        ]
        self._log.append(entries)
        for (item_id, _, completions), entry in zip(items, entries, strict=True):
            self._entries[(item_id, key, entry["prompt_hash"])] = completions
