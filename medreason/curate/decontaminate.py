"""Decontamination against benchmark questions: exact, 10-gram and fuzzy matches.

Every text is normalised first (:func:`normalise`): Unicode NFKC, lower-case, every run of
characters that are not letters or digits (punctuation, ``_``, whitespace) becomes one space, ends
stripped. ``"Oxygen saturation: 98%."`` and ``"oxygen saturation 98"`` are the same text.

Three checks run in order, and the first one that matches decides:

1. **exact**: the normalised text equals a normalised benchmark question.
2. **n-gram** (word 10-grams, open-r1's ``scripts/decontaminate.py``), in one of two modes:

   * ``literal``: any shared 10-gram removes the record (open-r1 and the II-Medical card). On medical
     vignettes this removes many clean questions, because benchmarks share boilerplate such as
     "which of the following is the most appropriate next step in management".
   * ``overlap`` (default): 10-grams found in more than ``max_df`` distinct benchmark questions count
     as boilerplate and are ignored; a record matches a benchmark question when the remaining shared
     10-grams cover at least ``overlap_threshold`` of the shorter of the two (record or question).
3. **fuzzy** (s1K's method, the card's 90% threshold): ``rapidfuzz.fuzz.ratio`` of the normalised
   prompt and question. Candidates are blocked first, never scored O(N·M): only questions that share
   words found in at most ``block_max_df`` questions, have a compatible length, and rank among the
   ``max_candidates`` with most shared words are scored. Short prompts (``scan_max_words``) that this
   blocking does not match are compared with every question of compatible length (~0.15 ms each).

The benchmark side is an inverted index of 64-bit n-gram hashes (sorted array plus posting lists);
records are hashed and looked up in vectorised chunks, so the cost grows linearly with the corpus.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from rapidfuzz import fuzz, process
from tqdm.auto import tqdm

from medreason.curate.benchmarks import BenchmarkItem
from medreason.curate.records import TraceRecord

T = TypeVar("T")
MODES = ("overlap", "literal")
_NON_WORD = re.compile(r"[\W_]+")
_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)


def normalise(text: str) -> str:
    """The normalisation rule every decontamination check uses.

    >>> normalise("Oxygen  saturation: 98% on ROOM-air.")
    'oxygen saturation 98 on room air'
    """
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


@dataclass(frozen=True)
class DecontamConfig:
    """How records are matched against benchmark questions.

    Args:
        mode: ``"overlap"`` (default, boilerplate-aware) or ``"literal"`` (any shared n-gram).
        ngram: Words per n-gram (open-r1 and the card: 10).
        overlap_threshold: ``overlap`` mode: shared share of the shorter text's n-grams that matches.
        max_df: ``overlap`` mode: n-grams in more than this many distinct questions are boilerplate.
        fuzzy: Run the fuzzy check on prompts.
        fuzzy_threshold: ``fuzz.ratio`` score (0-100) that matches (card: 90).
        block_max_df: Words in more than this many questions do not block fuzzy candidates.
        max_candidates: Questions scored per record by the fuzzy check.
        scan_max_words: Prompts of at most this many words that blocking does not match are compared with
            every question of compatible length (short stems of common words have no rare word to block
            on; 0 turns this off).
        check_response: Also run the exact and n-gram checks on the response (reasoning + answer).
        chunk_size: Records hashed per vectorised batch.
    """

    mode: str = "overlap"
    ngram: int = 10
    overlap_threshold: float = 0.5
    max_df: int = 5
    fuzzy: bool = True
    fuzzy_threshold: float = 90.0
    block_max_df: int = 100
    max_candidates: int = 10
    scan_max_words: int = 24
    check_response: bool = False
    chunk_size: int = 10_000

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"decontamination mode must be one of {list(MODES)}, got {self.mode!r}.")
        if self.ngram < 1 or self.max_df < 1 or self.block_max_df < 1 or self.max_candidates < 1:
            raise ValueError("ngram, max_df, block_max_df and max_candidates must all be >= 1.")
        if not 0 < self.overlap_threshold <= 1:
            raise ValueError(f"overlap_threshold must be in (0, 1], got {self.overlap_threshold}.")
        if not 0 < self.fuzzy_threshold <= 100:
            raise ValueError(f"fuzzy_threshold is a percentage in (0, 100], got {self.fuzzy_threshold}.")


@dataclass(frozen=True)
class Match:
    """Why a text was judged contaminated.

    Args:
        benchmark: The matched item's benchmark (its ``source``).
        benchmark_id: The matched item's ``id``.
        method: ``"exact"``, ``"ngram"`` or ``"fuzzy"``.
        score: ``ngram``: share of the shorter text's n-grams shared (``literal``: share of the
            record's n-grams found anywhere in the benchmarks); ``fuzzy``: ``fuzz.ratio``; exact: 1.
        evidence: A shared n-gram (``ngram``) or the matched question (``fuzzy``, ``exact``).
    """

    benchmark: str
    benchmark_id: str
    method: str
    score: float
    evidence: str

    def to_json(self) -> dict[str, Any]:
        """The match as a JSON-ready dict."""
        return {
            "benchmark": self.benchmark,
            "benchmark_id": self.benchmark_id,
            "method": self.method,
            "score": round(self.score, 4),
            "evidence": self.evidence,
        }


@dataclass
class _Postings:
    """Sorted unique n-gram hashes with, for each, the distinct texts that contain it."""

    hashes: np.ndarray
    ptr: np.ndarray
    texts: np.ndarray
    first_pos: np.ndarray

    @property
    def df(self) -> np.ndarray:
        return np.diff(self.ptr)

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(found mask, index into self.hashes)`` for each query hash."""
        if len(self.hashes) == 0:
            return np.zeros(len(hashes), bool), np.zeros(len(hashes), np.int64)
        pos = np.minimum(np.searchsorted(self.hashes, hashes), len(self.hashes) - 1)
        return self.hashes[pos] == hashes, pos

    def expand(self, rows: np.ndarray, grams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All ``(row, text)`` pairs for the posting lists of ``grams``."""
        counts = self.df[grams]
        total = int(counts.sum())
        row_rep = np.repeat(rows, counts)
        starts = np.repeat(self.ptr[grams] - np.cumsum(counts) + counts, counts)
        return row_rep, self.texts[starts + np.arange(total)]


def _window_hashes(ids: np.ndarray, lengths: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hash every n-token window that lies inside one row and holds no unknown token (id 0).

    ``ids`` is the rows' token ids concatenated; returns ``(hashes, row of each window, start)``.
    """
    total = len(ids)
    if total < n:
        empty = np.zeros(0, np.int64)
        return empty.astype(np.uint64), empty, empty
    windows = total - n + 1
    ends = np.cumsum(lengths)
    rows = np.repeat(np.arange(len(lengths)), lengths)[:windows]
    starts = np.arange(windows)
    zeros = np.concatenate([[0], np.cumsum(ids == 0)])
    valid = (starts + n <= ends[rows]) & (zeros[starts + n] == zeros[starts])
    values = ids.astype(np.uint64)
    hashes = np.zeros(windows, np.uint64)
    for offset in range(n):  # polynomial rolling hash; uint64 arithmetic wraps modulo 2**64
        hashes = hashes * _HASH_BASE + values[offset : offset + windows]
    return hashes[valid], rows[valid], starts[valid]


def _best_per_row(rows: np.ndarray, cols: np.ndarray, scores: np.ndarray, top: int = 1) -> np.ndarray:
    """Indices of the ``top`` highest-scoring entries for each row (ties: lower column first)."""
    order = np.lexsort((cols, -scores, rows))
    sorted_rows = rows[order]
    first = np.searchsorted(sorted_rows, sorted_rows, side="left")
    return order[np.arange(len(order)) - first < top]


class Decontaminator:
    """Finds training texts that copy or lightly edit benchmark questions.

    Args:
        items: The benchmark questions (see :func:`medreason.curate.benchmarks.load_benchmarks`).
        config: Matching settings.

    Raises:
        ValueError: ``items`` is empty.

    >>> from medreason.curate.benchmarks import BenchmarkItem
    >>> question = "A 45-year-old man has crushing chest pain radiating to the left arm and jaw for two hours."
    >>> decon = Decontaminator([BenchmarkItem("medqa", "q1", question)])
    >>> decon.match_texts([question.upper(), "What is the normal adult resting heart rate range?"])[0].method
    'exact'
    """

    def __init__(self, items: Sequence[BenchmarkItem], config: DecontamConfig | None = None):
        if not items:
            raise ValueError("Decontaminator needs at least one benchmark question.")
        self.config = config or DecontamConfig()
        self._text_index: dict[str, int] = {}
        self.texts: list[str] = []
        self.text_items: list[list[BenchmarkItem]] = []
        for item in items:
            text = normalise(item.question)
            if text not in self._text_index:
                self._text_index[text] = len(self.texts)
                self.texts.append(text)
                self.text_items.append([])
            self.text_items[self._text_index[text]].append(item)
        self.vocab: dict[str, int] = {}
        tokens = [text.split() for text in self.texts]
        for words in tokens:
            for word in words:
                self.vocab.setdefault(word, len(self.vocab) + 1)
        self._token_ids = [
            np.fromiter((self.vocab[w] for w in words), np.int64, len(words)) for words in tokens
        ]
        self.text_chars = np.array([len(text) for text in self.texts], np.int64)
        self._length_order = np.argsort(self.text_chars, kind="stable")
        self._sorted_chars = self.text_chars[self._length_order]
        self._texts_by_length = [self.texts[i] for i in self._length_order]
        self.ngrams = self._build(self.config.ngram)
        self.text_ngrams = np.bincount(self.ngrams.texts, minlength=len(self.texts))
        self.words = self._build(1)

    def _build(self, n: int) -> _Postings:
        lengths = np.array([len(ids) for ids in self._token_ids], np.int64)
        ids = np.concatenate(self._token_ids) if self._token_ids else np.zeros(0, np.int64)
        hashes, rows, starts = _window_hashes(ids, lengths, n)
        order = np.lexsort((rows, hashes))
        hashes, rows, starts = hashes[order], rows[order], starts[order]
        keep = np.ones(len(hashes), bool)
        keep[1:] = (hashes[1:] != hashes[:-1]) | (rows[1:] != rows[:-1])
        hashes, rows, starts = hashes[keep], rows[keep], starts[keep]
        unique, first, counts = np.unique(hashes, return_index=True, return_counts=True)
        text_starts = np.concatenate([[0], np.cumsum(lengths)])
        ptr = np.concatenate([[0], np.cumsum(counts)])
        return _Postings(unique, ptr, rows, starts[first] - text_starts[rows[first]])

    def _ngram_words(self, gram: int) -> str:
        """The words of n-gram ``gram`` (an index into ``self.ngrams``), read from its first question."""
        postings = self.ngrams
        start = int(postings.first_pos[gram])
        return " ".join(
            self.texts[int(postings.texts[postings.ptr[gram]])].split()[start : start + self.config.ngram]
        )

    def _item(self, text: int) -> BenchmarkItem:
        return self.text_items[text][0]

    def match_texts(
        self, texts: Sequence[str], *, fuzzy: bool | None = None, progress: str | None = None
    ) -> list[Match | None]:
        """Check each of ``texts``; return its :class:`Match` or ``None`` when it is clean.

        Args:
            texts: Raw (unnormalised) texts.
            fuzzy: Run the fuzzy check (default: ``config.fuzzy``); responses are not fuzzy-checked.
            progress: Progress-bar label; ``None`` hides the bar.
        """
        fuzzy = self.config.fuzzy if fuzzy is None else fuzzy
        size = self.config.chunk_size
        results: list[Match | None] = []
        for start in tqdm(range(0, len(texts), size), desc=progress, disable=progress is None, unit="chunk"):
            results.extend(self._match_chunk(texts[start : start + size], fuzzy))
        return results

    def _match_chunk(self, raw: Sequence[str], fuzzy: bool) -> list[Match | None]:
        texts = [normalise(text) for text in raw]
        results: list[Match | None] = [None] * len(texts)
        for row, text in enumerate(texts):
            found = self._text_index.get(text)
            if found is not None:
                item = self._item(found)
                results[row] = Match(item.benchmark, item.id, "exact", 1.0, self.texts[found][:200])
        token_lists = [text.split() for text in texts]
        lengths = np.array([len(words) for words in token_lists], np.int64)
        vocab = self.vocab
        ids = np.fromiter(
            (vocab.get(w, 0) for words in token_lists for w in words), np.int64, int(lengths.sum())
        )
        self._ngram_check(ids, lengths, results)
        if fuzzy:
            self._fuzzy_check(ids, lengths, texts, results)
        return results

    def _ngram_check(self, ids: np.ndarray, lengths: np.ndarray, results: list[Match | None]) -> None:
        config, postings = self.config, self.ngrams
        hashes, rows, _ = _window_hashes(ids, lengths, config.ngram)
        found, grams = postings.lookup(hashes)
        rows, grams = rows[found], grams[found]
        pairs = np.unique(rows * len(postings.hashes) + grams)
        rows, grams = pairs // len(postings.hashes), pairs % len(postings.hashes)
        record_ngrams = np.maximum(lengths - config.ngram + 1, 1)
        df = postings.df[grams]
        if config.mode == "literal":
            shared = np.bincount(rows, minlength=len(lengths))
            for index in _best_per_row(rows, np.arange(len(rows)), -df.astype(float)):
                row, gram = int(rows[index]), int(grams[index])
                if results[row] is None:
                    item = self._item(int(postings.texts[postings.ptr[gram]]))
                    score = shared[row] / record_ngrams[row]
                    results[row] = Match(
                        item.benchmark, item.id, "ngram", float(score), self._ngram_words(gram)
                    )
            return
        rare = df <= config.max_df
        rows, grams = rows[rare], grams[rare]
        pair_rows, pair_texts = postings.expand(rows, grams)
        keys, shared = np.unique(pair_rows * len(self.texts) + pair_texts, return_counts=True)
        pair_rows, pair_texts = keys // len(self.texts), keys % len(self.texts)
        scores = shared / np.minimum(record_ngrams[pair_rows], np.maximum(self.text_ngrams[pair_texts], 1))
        for index in _best_per_row(pair_rows, pair_texts, scores):
            row, text = int(pair_rows[index]), int(pair_texts[index])
            if results[row] is None and scores[index] >= config.overlap_threshold:
                item = self._item(text)
                row_grams = grams[np.searchsorted(rows, row) : np.searchsorted(rows, row, side="right")]
                gram = next(
                    int(g) for g in row_grams if text in postings.texts[postings.ptr[g] : postings.ptr[g + 1]]
                )
                results[row] = Match(
                    item.benchmark, item.id, "ngram", float(scores[index]), self._ngram_words(gram)
                )

    def _fuzzy_check(
        self, ids: np.ndarray, lengths: np.ndarray, texts: list[str], results: list[Match | None]
    ) -> None:
        config, postings = self.config, self.words
        pending = np.array([result is None for result in results])
        hashes, rows, _ = _window_hashes(ids, lengths, 1)
        found, grams = postings.lookup(hashes)
        keep = found & pending[rows]
        keep[keep] &= postings.df[grams[keep]] <= config.block_max_df
        pairs = np.unique(rows[keep] * len(postings.hashes) + grams[keep])
        pair_rows, pair_texts = postings.expand(pairs // len(postings.hashes), pairs % len(postings.hashes))
        # fuzz.ratio = 2*matches/(len_a+len_b) <= 2*min/(len_a+len_b): skip pairs that cannot reach the threshold.
        chars = np.array([len(text) for text in texts], np.int64)
        a, b = chars[pair_rows], self.text_chars[pair_texts]
        possible = 200 * np.minimum(a, b) >= config.fuzzy_threshold * (a + b)
        keys, shared = np.unique(
            pair_rows[possible] * len(self.texts) + pair_texts[possible], return_counts=True
        )
        pair_rows, pair_texts = keys // len(self.texts), keys % len(self.texts)
        best: dict[int, tuple[float, int]] = {}
        for index in _best_per_row(pair_rows, pair_texts, shared.astype(float), top=config.max_candidates):
            row, text = int(pair_rows[index]), int(pair_texts[index])
            score = fuzz.ratio(texts[row], self.texts[text], score_cutoff=config.fuzzy_threshold)
            if score and score > best.get(row, (0.0, -1))[0]:
                best[row] = (score, text)
        short = np.flatnonzero(pending & (lengths <= config.scan_max_words) & (lengths > 0))
        for row in short.tolist():
            if row not in best:
                found_text = self._scan(texts[row])
                if found_text is not None:
                    best[row] = found_text
        for row, (score, text) in best.items():
            item = self._item(text)
            results[row] = Match(item.benchmark, item.id, "fuzzy", float(score), self.texts[text][:200])

    def _scan(self, text: str) -> tuple[float, int] | None:
        """Best ``fuzz.ratio`` against every question whose length allows the threshold."""
        threshold = self.config.fuzzy_threshold
        low = np.searchsorted(self._sorted_chars, np.ceil(len(text) * threshold / (200 - threshold)))
        high = np.searchsorted(
            self._sorted_chars, np.floor(len(text) * (200 - threshold) / threshold), side="right"
        )
        found = process.extractOne(
            text, self._texts_by_length[low:high], scorer=fuzz.ratio, score_cutoff=threshold
        )
        return None if found is None else (found[1], int(self._length_order[low + found[2]]))


def match_records(
    decontaminator: Decontaminator, records: Sequence[TraceRecord], check_response: bool | None = None
) -> list[tuple[str, Match] | None]:
    """``(field, match)`` for each contaminated record (field ``"prompt"`` or ``"response"``), else ``None``.

    Prompts get every check; responses (reasoning and answer), when ``check_response`` (default:
    ``config.check_response``), get the exact and n-gram checks only, since a whole trace is never
    90% similar to a question.
    """
    check_response = decontaminator.config.check_response if check_response is None else check_response
    results: list[tuple[str, Match] | None] = [
        ("prompt", match) if match else None
        for match in decontaminator.match_texts([r.prompt for r in records])
    ]
    if check_response:
        pending = [index for index, result in enumerate(results) if result is None]
        responses = [f"{records[i].reasoning or ''}\n{records[i].answer}" for i in pending]
        for index, match in zip(pending, decontaminator.match_texts(responses, fuzzy=False), strict=True):
            if match is not None:
                results[index] = ("response", match)
    return results


def iter_matches(
    decontaminator: Decontaminator, items: Iterable[tuple[T, TraceRecord]]
) -> Iterator[tuple[T, TraceRecord, tuple[str, Match] | None]]:
    """Stream ``(payload, record, result)`` for ``(payload, record)`` pairs, checked ``chunk_size`` at a time.

    ``result`` is what :func:`match_records` gives; ``payload`` rides along untouched (the raw input
    record, for instance), so any size of corpus is checked in bounded memory.
    """
    chunk: list[tuple[T, TraceRecord]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == decontaminator.config.chunk_size:
            yield from _check_chunk(decontaminator, chunk)
            chunk = []
    yield from _check_chunk(decontaminator, chunk)


def _check_chunk(
    decontaminator: Decontaminator, chunk: list[tuple[T, TraceRecord]]
) -> Iterator[tuple[T, TraceRecord, tuple[str, Match] | None]]:
    results = match_records(decontaminator, [record for _, record in chunk]) if chunk else []
    for (payload, record), result in zip(chunk, results, strict=True):
        yield payload, record, result
