"""Decontamination against benchmark questions: exact, word n-gram and fuzzy matches.

Two modes decide what an n-gram match is; the checks run in order and the first match decides.

``overlap`` (default), on texts normalised by :func:`normalise` (Unicode NFKC, lower-case, every run
of characters that are not letters or digits, punctuation and ``_`` included, becomes one space;
``"Oxygen saturation: 98%."`` and ``"oxygen saturation 98"`` are the same text):

1. **exact**: the normalised text equals a normalised benchmark question.
2. **n-gram**: word n-grams (``ngram``, 10) found in more than ``max_df`` distinct benchmark
   questions count as boilerplate ("which of the following is the most appropriate next step in
   management") and are ignored; a record matches a question when the remaining shared n-grams cover
   at least ``overlap_threshold`` of the shorter of the two (record or question).

``literal``: open-r1's ``scripts/decontaminate.py`` rule exactly, nothing else (no exact check, no
other normalisation): lower-case, split on whitespace (:func:`literal_words`, punctuation kept, so
``"98%."`` and ``"98%"`` are different words), word n-grams, and a record is contaminated when any of
its n-grams is an n-gram of a benchmark question; a text shorter than ``ngram`` words never matches.
``ngram=10`` is the II-Medical card's setting, 8 open-r1's default. On medical vignettes this removes
many clean questions, because benchmarks share boilerplate.

Then, in both modes, when ``fuzzy`` is on:

3. **fuzzy** (s1K's method, the card's 90% threshold): ``rapidfuzz.fuzz.ratio`` of the normalised
   prompt and question. Candidates are blocked first, never scored O(N·M): only questions that share
   words found in at most ``block_max_df`` questions, have a compatible length, and rank among the
   ``max_candidates`` with most shared words are scored. Short prompts (``scan_max_words``) that this
   blocking does not match are compared with every question of compatible length (~0.15 ms each).

The benchmark side is an inverted index of 64-bit n-gram hashes (sorted array plus posting lists);
records are hashed and looked up in vectorised chunks, so the cost grows linearly with the corpus. A
``literal`` hit is confirmed word for word, so a hash collision can never remove a record.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    """The normalisation of the exact, ``overlap`` n-gram and fuzzy checks.

    >>> normalise("Oxygen  saturation: 98% on ROOM-air.")
    'oxygen saturation 98 on room air'
    """
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def literal_words(text: str) -> list[str]:
    """The words of the ``literal`` check: open-r1's lower-case, strip, collapse whitespace, split.

    >>> literal_words("  Oxygen saturation:  98%\\non ROOM-air. ")
    ['oxygen', 'saturation:', '98%', 'on', 'room-air.']
    """
    return text.lower().split()


@dataclass(frozen=True)
class DecontamConfig:
    """How records are matched against benchmark questions.

    Args:
        mode: ``"overlap"`` (default, boilerplate-aware) or ``"literal"`` (open-r1's rule: any shared
            n-gram of lower-cased, whitespace-split words, punctuation kept; no exact check).
        ngram: Words per n-gram (the card: 10; open-r1's script defaults to 8).
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


@dataclass
class _Index:
    """Distinct benchmark texts (their words joined by spaces), the items behind each, and word ids.

    Word id 0 stands for any word outside the benchmarks, so no n-gram holding one can match.
    """

    texts: list[str]
    items: list[list[BenchmarkItem]]
    positions: dict[str, int]
    vocab: dict[str, int]
    token_ids: list[np.ndarray]

    @classmethod
    def build(cls, items: Sequence[BenchmarkItem], words: Callable[[str], list[str]]) -> _Index:
        index = cls([], [], {}, {}, [])
        for item in items:
            text = " ".join(words(item.question))
            if text not in index.positions:
                index.positions[text] = len(index.texts)
                index.texts.append(text)
                index.items.append([])
            index.items[index.positions[text]].append(item)
        tokens = [text.split() for text in index.texts]
        for text_words in tokens:
            for word in text_words:
                index.vocab.setdefault(word, len(index.vocab) + 1)
        index.token_ids = [np.fromiter((index.vocab[w] for w in t), np.int64, len(t)) for t in tokens]
        return index

    def encode(self, token_lists: Sequence[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """``(concatenated word ids, words per text)`` of texts already split into words."""
        lengths = np.array([len(words) for words in token_lists], np.int64)
        vocab = self.vocab
        ids = np.fromiter(
            (vocab.get(w, 0) for words in token_lists for w in words), np.int64, int(lengths.sum())
        )
        return ids, lengths

    def postings(self, n: int) -> _Postings:
        """The index of every n-gram of the texts."""
        lengths = np.array([len(ids) for ids in self.token_ids], np.int64)
        ids = np.concatenate(self.token_ids) if self.token_ids else np.zeros(0, np.int64)
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

    def ngram_words(self, postings: _Postings, gram: int, n: int) -> str:
        """The words of n-gram ``gram`` (an index into ``postings``), read from its first text."""
        start = int(postings.first_pos[gram])
        return " ".join(self.texts[int(postings.texts[postings.ptr[gram]])].split()[start : start + n])


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
    >>> literal = Decontaminator([BenchmarkItem("medqa", "q1", question)], DecontamConfig(mode="literal", fuzzy=False))
    >>> [m is not None for m in literal.match_texts([question.upper(), "crushing chest pain radiating to the left arm"])]
    [True, False]
    """

    def __init__(self, items: Sequence[BenchmarkItem], config: DecontamConfig | None = None):
        if not items:
            raise ValueError("Decontaminator needs at least one benchmark question.")
        self.config = config or DecontamConfig()
        self._normalised = _Index.build(items, lambda question: normalise(question).split())
        self.texts, self.text_items = self._normalised.texts, self._normalised.items  # normalised questions
        self.text_chars = np.array([len(text) for text in self.texts], np.int64)
        self._length_order = np.argsort(self.text_chars, kind="stable")
        self._sorted_chars = self.text_chars[self._length_order]
        self._texts_by_length = [self.texts[i] for i in self._length_order]
        literal = self.config.mode == "literal"
        self._ngram_index = _Index.build(items, literal_words) if literal else self._normalised
        self.ngrams = self._ngram_index.postings(self.config.ngram)
        self.text_ngrams = np.bincount(self.ngrams.texts, minlength=len(self._ngram_index.texts))
        self.words = self._normalised.postings(1)

    def _ngram_words(self, gram: int) -> str:
        return self._ngram_index.ngram_words(self.ngrams, gram, self.config.ngram)

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
        if self.config.mode == "literal":
            self._literal_check([literal_words(text) for text in raw], results)
        else:
            for row, text in enumerate(texts):
                found = self._normalised.positions.get(text)
                if found is not None:
                    item = self._item(found)
                    results[row] = Match(item.benchmark, item.id, "exact", 1.0, self.texts[found][:200])
        ids, lengths = self._normalised.encode([text.split() for text in texts])
        if self.config.mode == "overlap":
            self._overlap_check(ids, lengths, results)
        if fuzzy:
            self._fuzzy_check(ids, lengths, texts, results)
        return results

    def _literal_check(self, token_lists: list[list[str]], results: list[Match | None]) -> None:
        """open-r1's rule: a record sharing any n-gram with a benchmark question is contaminated."""
        n, postings, index = self.config.ngram, self.ngrams, self._ngram_index
        ids, lengths = index.encode(token_lists)
        hashes, rows, starts = _window_hashes(ids, lengths, n)
        found, grams = postings.lookup(hashes)
        if not found.any():
            return
        rows, grams = rows[found], grams[found]
        starts = starts[found] - np.concatenate([[0], np.cumsum(lengths)])[rows]  # word position in its text
        distinct = np.unique(rows * len(postings.hashes) + grams) // len(postings.hashes)
        shared = np.bincount(distinct, minlength=len(lengths))
        order = np.lexsort((postings.df[grams], rows))  # per row, the rarest shared n-gram first
        rows, grams, starts = rows[order], grams[order], starts[order]
        bounds = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1], [True]]))
        for first, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            row = int(rows[first])
            for k in range(first, stop):  # confirmed word for word: a hash collision removes nothing
                evidence, start = self._ngram_words(int(grams[k])), int(starts[k])
                if evidence == " ".join(token_lists[row][start : start + n]):
                    item = index.items[int(postings.texts[postings.ptr[grams[k]]])][0]
                    score = shared[row] / max(int(lengths[row]) - n + 1, 1)
                    results[row] = Match(item.benchmark, item.id, "ngram", float(score), evidence)
                    break

    def _overlap_check(self, ids: np.ndarray, lengths: np.ndarray, results: list[Match | None]) -> None:
        config, postings = self.config, self.ngrams
        hashes, rows, _ = _window_hashes(ids, lengths, config.ngram)
        found, grams = postings.lookup(hashes)
        rows, grams = rows[found], grams[found]
        pairs = np.unique(rows * len(postings.hashes) + grams)
        rows, grams = pairs // len(postings.hashes), pairs % len(postings.hashes)
        record_ngrams = np.maximum(lengths - config.ngram + 1, 1)
        df = postings.df[grams]
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
