"""An append-only JSONL cache of LLM calls, and the manifest that marks a finished run.

Every completed call is appended as one line and flushed at once, so a killed job loses at most the
calls in flight. A call's key hashes the backend, the model, the prompt, the sampling parameters and
the attempt number (a parse retry is a new call, not a cache hit of the failed one). A rerun with the
same settings finds every finished call here and asks the engine only for the rest; a torn last line
(the job died mid-write) is skipped and its call made again (:class:`~medreason.utils.jsonl.JsonlLog`).

The manifest (``manifest.json``) is written after every output file, so its presence means the run
completed; a run deletes any old manifest before it starts writing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medreason.engines.base import Completion, Prompt, SamplingParams
from medreason.utils.jsonl import JsonlLog

__all__ = ["MANIFEST", "CallCache", "call_key", "clear_manifest", "write_manifest"]

MANIFEST = "manifest.json"


def call_key(backend: str, model: str, prompt: Prompt, sampling: SamplingParams, attempt: int = 0) -> str:
    """The cache key of one LLM call: a hash of everything that changes its answer.

    >>> sampling = SamplingParams(temperature=0.7)
    >>> call_key("openai", "m", "Hi", sampling) == call_key("openai", "m", "Hi", sampling)
    True
    >>> call_key("openai", "m", "Hi", sampling) == call_key("openai", "m", "Hi", sampling, attempt=1)
    False
    """
    material = json.dumps(
        [backend, model, prompt, sampling.cache_key(), attempt], sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(material.encode()).hexdigest()


class CallCache:
    """Completions of earlier calls, loaded from and appended to one JSONL file.

    Args:
        path: The cache file (created with its folder on the first write).
        fsync: Also ``fsync`` after each record, which survives a power cut and not only a killed
            process; costs a disk sync per call.

    Safe to share between the threads of one process (writes are serialised).

    >>> import tempfile
    >>> cache = CallCache(Path(tempfile.mkdtemp()) / "calls.jsonl")
    >>> cache.put("k", [Completion("yes")], meta={"stage": "demo"})
    >>> [c.text for c in CallCache(cache.path).get("k")]
    ['yes']
    """

    def __init__(self, path: str | os.PathLike, fsync: bool = False):
        self._log = JsonlLog(path, fsync)
        self.path = self._log.path
        self._entries: dict[str, list[Completion]] = dict(self._log.read(_parse_entry))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> list[Completion] | None:
        """The completions stored under ``key``, or ``None`` when the call was never completed."""
        return self._entries.get(key)

    def put(self, key: str, completions: list[Completion], meta: Mapping[str, Any] | None = None) -> None:
        """Append one call's completions (and ``meta``, for people reading the file) and flush."""
        entry = {"key": key, **(meta or {}), "completions": [c.to_json() for c in completions]}
        self._log.append([entry])
        self._entries[key] = [Completion.from_json(c) for c in entry["completions"]]


def _parse_entry(entry: dict[str, Any]) -> tuple[str, list[Completion]]:
    """A cache line's key and completions."""
    return entry["key"], [Completion.from_json(c) for c in entry["completions"]]


def clear_manifest(output_dir: str | os.PathLike) -> None:
    """Delete ``output_dir/manifest.json`` before a run writes, so a stale one never vouches for it."""
    (Path(output_dir) / MANIFEST).unlink(missing_ok=True)


def write_manifest(output_dir: str | os.PathLike, manifest: Mapping[str, Any]) -> Path:
    """Write ``manifest.json`` atomically (temporary file, then rename); call it after every output."""
    path = Path(output_dir) / MANIFEST
    partial = path.with_suffix(".json.partial")
    partial.write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    os.replace(partial, path)
    return path
