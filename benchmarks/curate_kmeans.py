"""K-means for the domain step: 100k x 384-dim embeddings into 5,000 clusters (random unit vectors).

Times :func:`medreason.curate.cluster.kmeans` (mini-batch k-means in torch, or faiss when installed)
plus the nearest-10-per-centroid selection. Baseline, on a subsample: full-batch Lloyd iterations in
torch (the same distance kernel over every point at every iteration), timed for one iteration and
scaled to 25 (faiss's default ``niter``).

    python benchmarks/curate_kmeans.py                          # 100k x 384, k=5,000
    python benchmarks/curate_kmeans.py --quick                  # 20k x 384, k=1,000
    python benchmarks/curate_kmeans.py --points 200000 --clusters 10000 --iterations 150
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from medreason.curate.cluster import assign_to_centroids, kmeans, nearest_to_centroids

LLOYD_ITERATIONS = 25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384, help="all-MiniLM-L6-v2 width")
    parser.add_argument("--clusters", type=int, default=5_000)
    parser.add_argument("--iterations", type=int, default=100, help="mini-batch steps")
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "faiss"])
    parser.add_argument("--quick", action="store_true", help="20k points, 1,000 clusters")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check-determinism", action="store_true", help="fit twice and compare the labels")
    args = parser.parse_args()
    if args.quick:
        args.points, args.clusters = 20_000, 1_000

    rng = np.random.default_rng(args.seed)
    points = rng.standard_normal((args.points, args.dim)).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    print(
        f"{args.points} x {args.dim} points, k={args.clusters}, {args.iterations} mini-batch steps of "
        f"{args.batch_size}, torch threads={torch.get_num_threads()}, backend={args.backend}"
    )

    def run_kmeans():
        return kmeans(
            points, args.clusters, seed=args.seed, iterations=args.iterations, batch_size=args.batch_size,
            backend=args.backend,
        )

    start, cpu = time.perf_counter(), time.process_time()
    result = run_kmeans()
    fit, fit_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    nearest = nearest_to_centroids(result, per_cluster=10)
    select = time.perf_counter() - start
    sizes = np.bincount(result.labels, minlength=args.clusters)
    print(
        f"kmeans (fit + full assignment): {fit:.1f}s wall, {fit_cpu:.1f}s CPU; nearest-10 selection: {select:.2f}s; "
        f"non-empty clusters {np.count_nonzero(sizes)}/{args.clusters}, mean squared distance "
        f"{result.distances.mean():.4f}, {sum(map(len, nearest.values()))} prompts to classify"
    )

    start = time.perf_counter()
    assign_to_centroids(torch.from_numpy(points), torch.from_numpy(result.centroids))
    lloyd = time.perf_counter() - start
    print(
        f"baseline: one full-batch Lloyd iteration (assign all {args.points} points) takes {lloyd:.1f}s; "
        f"{LLOYD_ITERATIONS} Lloyd iterations (faiss's default niter) would take ~{lloyd * LLOYD_ITERATIONS:.0f}s "
        f"({lloyd * LLOYD_ITERATIONS / fit:.1f}x the mini-batch fit)"
    )

    if args.check_determinism:
        again = run_kmeans()
        print(
            f"rerun with the same seed: labels identical = {bool(np.array_equal(again.labels, result.labels))}"
        )


if __name__ == "__main__":
    main()
