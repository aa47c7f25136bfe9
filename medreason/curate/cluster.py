"""K-means over prompt embeddings, and the prompts nearest each centroid.

The card clusters R1 prompts into 50,000 clusters, so Lloyd's algorithm over the whole corpus at
every iteration is too slow on a CPU. :func:`kmeans` uses faiss when it is installed and otherwise
mini-batch k-means in torch (Sculley 2010, with scikit-learn's per-centre learning rate
``1 / points seen``), then one full assignment pass. Both are deterministic for a given ``seed``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

BACKENDS = ("auto", "torch", "faiss")


@dataclass
class KMeansResult:
    """Centroids and the cluster of every point.

    Args:
        centroids: ``(k, dim)`` float32.
        labels: ``(n,)`` int64 cluster index of each point.
        distances: ``(n,)`` float32 squared distance of each point to its centroid.
    """

    centroids: np.ndarray
    labels: np.ndarray
    distances: np.ndarray


def assign_to_centroids(
    points: torch.Tensor, centroids: torch.Tensor, chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid and squared distance for each point (``|x|² - 2x·c + |c|²``, chunked)."""
    half_norms = 0.5 * (centroids * centroids).sum(1)
    labels, distances = [], []
    for start in range(0, len(points), chunk):
        block = points[start : start + chunk]
        scores = block @ centroids.T - half_norms
        best, index = scores.max(1)
        labels.append(index)
        distances.append(((block * block).sum(1) - 2 * best).clamp_min(0))
    return torch.cat(labels), torch.cat(distances)


def _torch_kmeans(
    points: np.ndarray,
    k: int,
    *,
    seed: int,
    iterations: int,
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    data = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    centroids = data[torch.randperm(len(data), generator=generator)[:k]].clone()
    seen = torch.zeros(k, dtype=torch.float32)
    for _ in range(iterations):
        batch = data[torch.randint(len(data), (min(batch_size, len(data)),), generator=generator)]
        labels, _ = assign_to_centroids(batch, centroids)
        counts = torch.bincount(labels, minlength=k).float()
        sums = torch.zeros_like(centroids).index_add_(0, labels, batch)
        seen += counts
        hit = counts > 0
        # c <- c + (sum - n·c) / seen: the running mean of every point a centre has been given.
        centroids[hit] += (sums[hit] - counts[hit, None] * centroids[hit]) / seen[hit, None]
        if progress is not None:
            progress(1)
    return centroids.numpy()


def _faiss_kmeans(points: np.ndarray, k: int, *, seed: int, iterations: int) -> np.ndarray:
    import faiss

    trainer = faiss.Kmeans(points.shape[1], k, niter=iterations, seed=seed, verbose=False)
    trainer.train(np.ascontiguousarray(points, dtype=np.float32))
    return trainer.centroids


def kmeans(
    points: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    iterations: int = 100,
    batch_size: int = 8192,
    backend: str = "auto",
    progress: Callable[[int], None] | None = None,
) -> KMeansResult:
    """Cluster ``points`` into ``k`` clusters.

    Args:
        points: ``(n, dim)`` embeddings.
        k: Number of clusters (the card: 50,000 for its R1 traces); clipped to ``n``.
        seed: Seed for the initial centres and the mini-batches.
        iterations: Mini-batch steps (torch) or Lloyd iterations (faiss).
        batch_size: Points per mini-batch (torch backend).
        backend: ``"auto"`` (faiss if installed, else torch), ``"torch"`` or ``"faiss"``.
        progress: Called with 1 after each iteration (torch backend).

    Raises:
        ValueError: empty ``points``, ``k < 1``, or an unknown or unavailable backend.

    >>> import numpy as np
    >>> points = np.array([[0, 0], [0, 0.1], [5, 5], [5, 5.1]], np.float32)
    >>> result = kmeans(points, 2, iterations=20, batch_size=4, backend="torch")
    >>> sorted(np.bincount(result.labels).tolist())
    [2, 2]
    """
    if points.ndim != 2 or len(points) == 0:
        raise ValueError(f"kmeans needs a non-empty (n, dim) array, got shape {points.shape}.")
    if k < 1:
        raise ValueError(f"kmeans needs k >= 1, got {k}.")
    if backend not in BACKENDS:
        raise ValueError(f"kmeans backend must be one of {list(BACKENDS)}, got {backend!r}.")
    has_faiss = importlib.util.find_spec("faiss") is not None
    if backend == "faiss" and not has_faiss:
        raise ValueError(
            "kmeans backend 'faiss' needs the faiss package (pip install faiss-cpu), or use 'torch'."
        )
    k = min(k, len(points))
    if backend == "faiss" or (backend == "auto" and has_faiss):
        centroids = _faiss_kmeans(points, k, seed=seed, iterations=iterations)
    else:
        centroids = _torch_kmeans(
            points, k, seed=seed, iterations=iterations, batch_size=batch_size, progress=progress
        )
    labels, distances = assign_to_centroids(
        torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)), torch.from_numpy(centroids)
    )
    return KMeansResult(centroids, labels.numpy().astype(np.int64), distances.numpy())


def nearest_to_centroids(result: KMeansResult, per_cluster: int = 10) -> dict[int, list[int]]:
    """For each non-empty cluster, the indices of its ``per_cluster`` points nearest the centroid.

    The card asks an LLM about "the 10 prompts nearest to the cluster center". Ties go to the lower index.
    """
    order = np.lexsort((np.arange(len(result.labels)), result.distances, result.labels))
    labels = result.labels[order]
    first = np.searchsorted(labels, labels, side="left")
    chosen = order[np.arange(len(order)) - first < per_cluster]
    nearest: dict[int, list[int]] = {}
    for index in chosen.tolist():
        nearest.setdefault(int(result.labels[index]), []).append(index)
    return nearest
