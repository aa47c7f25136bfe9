"""Nearest-neighbour retrieval for TTT: embed the corpus once (cached on disk), exact cosine top-k.

FineMedLM-o1 retrieves "the most similar instance" of its long-form reasoning subset with
bge-large-en-v1.5. Corpus embeddings are computed once per (encoder, corpus) and saved under
``cache_dir/<encoder>-<fingerprint>.pt``; the fingerprint hashes every corpus text, so an edited
corpus never reuses stale vectors. Search is an exact inner product of L2-normalised vectors
(= cosine) with one torch matmul, or faiss' exact ``IndexFlatIP`` when asked for.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from medreason.utils.encoders import local_encoder_path
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

__all__ = ["Neighbour", "Retriever", "TextEncoder", "corpus_fingerprint"]


class TextEncoder(Protocol):
    """Anything with sentence-transformers' ``encode(texts) -> (len(texts), dim) array``."""

    def encode(self, sentences: list[str], **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Neighbour:
    """One retrieved corpus example.

    Args:
        index: Position of the example in the corpus.
        score: Cosine similarity to the query, in [-1, 1].
    """

    index: int
    score: float


def corpus_fingerprint(texts: Sequence[str]) -> str:
    """A hash of the texts and their order (it keys the embedding cache).

    >>> corpus_fingerprint(["a", "b"]) == corpus_fingerprint(["a", "b"]) != corpus_fingerprint(["b", "a"])
    True
    """
    digest = hashlib.sha256()
    for text in texts:
        encoded = text.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "little") + encoded)  # length prefix: ["ab"] != ["a", "b"]
    return digest.hexdigest()


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name.strip("/").replace("/", "__"))[-80:]


class Retriever:
    """Exact cosine top-k over a fixed corpus of texts.

    Args:
        texts: The corpus texts to search (for TTT: the training examples' questions).
        encoder: A sentence-transformers model id/path (loaded here) or a ready encoder object.
        encoder_name: Names the encoder in the cache key; default ``encoder`` when it is a string.
            Required with an encoder object and a ``cache_dir``, or two encoders would share vectors.
        cache_dir: Where corpus embeddings are saved and looked up; ``None`` keeps them in memory.
        device: Device to load a named encoder on.
        use_faiss: Search with faiss' exact ``IndexFlatIP`` (needs ``faiss``) instead of a matmul.

    Corpus embeddings are computed on first use (not in the constructor), once.

    >>> class Letters:  # a toy encoder: counts of a, b, c
    ...     def encode(self, sentences, **kwargs):
    ...         return [[s.count(c) for c in "abc"] for s in sentences]
    >>> retriever = Retriever(["aaa", "bbb", "ccc"], Letters(), encoder_name="letters", cache_dir=None)
    >>> retriever.search(["bb b", "cac"], k=1)
    [[Neighbour(index=1, score=1.0)], [Neighbour(index=2, score=0.8944271802902222)]]
    """

    def __init__(
        self,
        texts: Sequence[str],
        encoder: str | TextEncoder,
        encoder_name: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        device: str | None = None,
        use_faiss: bool = False,
    ):
        if not texts:
            raise ValueError("Retriever needs a non-empty corpus of texts; the TTT corpus has no records.")
        if encoder_name is None and not isinstance(encoder, str):
            if cache_dir is not None:
                raise ValueError(
                    f"Retriever got an encoder object ({type(encoder).__name__}) and cache_dir={cache_dir!s} but no "
                    "encoder_name: pass encoder_name= (e.g. the model id) so cached embeddings are keyed by it, "
                    "or cache_dir=None."
                )
            encoder_name = type(encoder).__name__
        if use_faiss:
            import importlib.util

            if importlib.util.find_spec("faiss") is None:
                raise ImportError(
                    "use_faiss=True needs faiss: pip install faiss-cpu (or faiss-gpu), or use_faiss=False."
                )
        self.texts = list(texts)
        self.encoder_name = encoder_name if encoder_name is not None else str(encoder)
        self.fingerprint = corpus_fingerprint(self.texts)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.use_faiss = use_faiss
        self._encoder = encoder
        self._device = device
        self._embeddings: torch.Tensor | None = None
        self._index: Any = None

    @property
    def encoder(self) -> TextEncoder:
        """The encoder, loaded on first use when it was given by name."""
        if isinstance(self._encoder, str):
            from sentence_transformers import SentenceTransformer

            logger.info("Loading retrieval encoder %s.", self._encoder)
            self._encoder = SentenceTransformer(local_encoder_path(self._encoder), device=self._device)
        return self._encoder

    @property
    def cache_path(self) -> Path | None:
        """The file the corpus embeddings are cached in (``None`` without a cache dir)."""
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{_slug(self.encoder_name)}-{self.fingerprint[:20]}.pt"

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised float32 embeddings of ``texts``, shape ``(len(texts), dim)``, on the CPU."""
        vectors = self.encoder.encode(list(texts))
        vectors = torch.as_tensor(vectors if not isinstance(vectors, torch.Tensor) else vectors.cpu())
        return F.normalize(vectors.float().reshape(len(texts), -1), dim=-1)

    @property
    def embeddings(self) -> torch.Tensor:
        """The corpus embeddings: read from the cache, or computed once (and cached)."""
        if self._embeddings is None:
            self._embeddings = self._load_or_compute()
        return self._embeddings

    def _load_or_compute(self) -> torch.Tensor:
        path = self.cache_path
        if path is not None and path.is_file():
            cached = torch.load(path, weights_only=True)
            embeddings = cached["embeddings"]
            if cached["fingerprint"] == self.fingerprint and embeddings.shape[0] == len(self.texts):
                logger.info("Loaded %d corpus embeddings from %s.", len(self.texts), path)
                return embeddings
            logger.warning("Ignoring %s: it was computed for a different corpus.", path)
        logger.info("Embedding %d corpus texts with %s.", len(self.texts), self.encoder_name)
        embeddings = self.encode(self.texts)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".tmp{os.getpid()}")
            payload = {
                "encoder": self.encoder_name,
                "fingerprint": self.fingerprint,
                "embeddings": embeddings,
            }
            torch.save(payload, partial)
            partial.replace(path)  # atomic: a concurrent reader never sees half a file
        return embeddings

    def search(
        self, queries: Sequence[str], k: int = 1, min_similarity: float | None = None
    ) -> list[list[Neighbour]]:
        """The ``k`` most similar corpus texts of each query, best first, with one encoder call.

        Neighbours with a cosine below ``min_similarity`` are dropped, so a list may be shorter than
        ``k`` or empty. Ties go to the lower corpus index.
        """
        if k < 1:
            raise ValueError(f"Retriever.search k must be >= 1, got {k}.")
        if not queries:
            return []
        corpus = self.embeddings
        found = self.encode(queries)
        if found.shape[1] != corpus.shape[1]:
            raise ValueError(
                f"The encoder gives {found.shape[1]}-d query vectors but the corpus embeddings are "
                f"{corpus.shape[1]}-d: encoder_name={self.encoder_name!r} must name the encoder actually used "
                f"(it keys the cache{f' at {self.cache_path}' if self.cache_path else ''})."
            )
        k = min(k, corpus.shape[0])
        if self.use_faiss:
            scores, indices = self._faiss_search(found, k)
        else:
            scores, indices = torch.topk(found @ corpus.T, k, dim=1, sorted=True)
        results = []  # topk's order among equal scores is unspecified: re-sort by (-score, index)
        for row_scores, row_indices in zip(scores.tolist(), indices.tolist(), strict=True):
            pairs = sorted(zip(row_scores, row_indices, strict=True), key=lambda pair: (-pair[0], pair[1]))
            results.append(
                [Neighbour(i, s) for s, i in pairs if min_similarity is None or s >= min_similarity]
            )
        return results

    def _faiss_search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        import faiss

        if self._index is None:
            self._index = faiss.IndexFlatIP(self.embeddings.shape[1])
            self._index.add(self.embeddings.numpy())
        scores, indices = self._index.search(queries.numpy(), k)
        return torch.from_numpy(scores), torch.from_numpy(indices)
