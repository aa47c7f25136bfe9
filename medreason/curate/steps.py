"""The pipeline's steps: load, filter, domain, mix, dedupe, decontaminate.

Each step is a small class with a ``name``, the ``settings()`` that key its resume fingerprint, and
``run(context)``, which streams the previous step's records and keeps, drops or adds them (see
:class:`~medreason.curate.pipeline.StepContext`).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from medreason.curate.benchmarks import load_benchmarks
from medreason.curate.cluster import kmeans, nearest_to_centroids
from medreason.curate.decontaminate import DecontamConfig, Decontaminator, iter_matches
from medreason.curate.domain_vote import DEFAULT_DOMAINS, DEFAULT_TEMPLATE, ClusterVote, DomainClassifier
from medreason.curate.embed import DEFAULT_MODEL, Embedder, Encoder
from medreason.curate.filters import BoundFilter, first_failure
from medreason.curate.mixing import DEDUPE_BY, MixSource, dedupe_key, sample_fixed
from medreason.curate.pipeline import StepContext
from medreason.curate.records import TraceRecord, read_traces
from medreason.engines import build_engine
from medreason.engines.base import GenerationEngine, SamplingParams


def _file_identity(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    return {"path": str(path.resolve()), "bytes": path.stat().st_size if path.is_file() else None}


class LoadStep:
    """Reads the input JSONL files into trace records (malformed lines: see ``on_error``).

    Args:
        inputs: JSONL files in any shape :func:`~medreason.curate.records.parse_trace` reads.
    """

    name = "load"

    def __init__(self, inputs: Sequence[str | os.PathLike]):
        if not inputs:
            raise ValueError("The curation pipeline needs at least one input file (input=...).")
        self.inputs = [str(path) for path in inputs]

    def settings(self) -> Any:
        return [_file_identity(path) for path in self.inputs]

    def run(self, context: StepContext) -> None:
        with context.bar(None) as bar:
            for path in self.inputs:
                for _, record in read_traces(path, context.rejects, first_uid=context.next_uid):
                    context.add(record)
                    bar.update()


class FilterStep:
    """Drops records that fail any filter; the reason names the first filter that failed.

    Args:
        filters: Bound filters (see :func:`~medreason.curate.filters.build_filters`).
    """

    name = "filter"

    def __init__(self, filters: list[BoundFilter]):
        self.filters = filters

    def settings(self) -> Any:
        return [{"name": f.name, **f.params} for f in self.filters]

    def run(self, context: StepContext) -> None:
        with context.bar(context.total) as bar:
            for record in context.records():
                failure = first_failure(record, self.filters)
                if failure is None:
                    context.keep(record)
                else:
                    context.drop(record, failure[0], failure[1])
                bar.update()


@dataclass
class DomainSettings:
    """Settings of the domain step (II-Medical card values as defaults).

    Args:
        embedding_model: Sentence-transformers model for prompts (card: all-MiniLM-L6-v2).
        clusters: K-means clusters (card: 50,000 for its R1 traces; clipped to the number of prompts).
        per_cluster: Prompts nearest each centre that the LLM classifies (card: 10).
        keep: Domains whose clusters are kept (card: Medical, Biology).
        domains: Labels the LLM may answer.
        template: Classification prompt with ``{domains}`` and ``{prompt}``.
        sources: Only records of these sources are clustered; others pass untouched (``None``: all).
        seed: K-means seed.
        iterations: K-means mini-batch steps.
        batch_size: K-means mini-batch size.
        kmeans_backend: ``auto``, ``torch`` or ``faiss``.
        embed_batch_size: Prompts per embedding batch.
        device: Device for the embedding model.
        engine: ``build_engine`` arguments for the classifier (``backend``, ``model``, …).
        max_tokens: Tokens the classifier may answer with.
    """

    embedding_model: str = DEFAULT_MODEL
    clusters: int = 50_000
    per_cluster: int = 10
    keep: list[str] = field(default_factory=lambda: ["Medical", "Biology"])
    domains: list[str] = field(default_factory=lambda: list(DEFAULT_DOMAINS))
    template: str = DEFAULT_TEMPLATE
    sources: list[str] | None = None
    seed: int = 0
    iterations: int = 100
    batch_size: int = 8192
    kmeans_backend: str = "auto"
    embed_batch_size: int = 256
    device: str = "cpu"
    engine: dict[str, Any] = field(
        default_factory=lambda: {"backend": "vllm", "model": "Qwen/Qwen2.5-32B-Instruct"}
    )
    max_tokens: int = 16


def _build_engine(options: Mapping[str, Any]) -> GenerationEngine:
    options = dict(options)
    backend = options.pop("backend", None)
    if not isinstance(backend, str):
        raise ValueError(
            f"domain.engine needs a 'backend' ('transformers', 'openai' or 'vllm'), got {backend!r}."
        )
    return build_engine(backend, **options)


class DomainStep:
    """Embeds prompts, clusters them, LLM-votes each cluster's domain and keeps the wanted domains.

    Args:
        settings: Step settings.
        engine: Classifier backend; built from ``settings.engine`` with ``build_engine`` when ``None``.
        encoder: Embedding function; the sentence-transformers model when ``None``.
    """

    name = "domain"

    def __init__(
        self, settings: DomainSettings, engine: GenerationEngine | None = None, encoder: Encoder | None = None
    ):
        self.config, self.engine, self.encoder = settings, engine, encoder

    def settings(self) -> Any:
        return asdict(self.config)

    def _subject(self, record: TraceRecord) -> bool:
        return self.config.sources is None or record.source in self.config.sources

    def run(self, context: StepContext) -> None:
        config = self.config
        uids, prompts = [], []
        for record in context.records():
            if self._subject(record):
                uids.append(record.uid)
                prompts.append(record.prompt)
        labels: dict[int, int] = {}
        votes = {}
        if prompts:
            embedder = Embedder(
                config.embedding_model,
                cache_dir=context.cache_dir / "embeddings",
                encoder=self.encoder,
                device=config.device,
                batch_size=config.embed_batch_size,
            )
            with context.bar(len(prompts), desc="domain: embed") as bar:
                vectors = embedder.embed(prompts, progress=bar.update)
            with context.bar(config.iterations, unit="it", desc="domain: k-means") as bar:
                result = kmeans(
                    vectors,
                    config.clusters,
                    seed=config.seed,
                    iterations=config.iterations,
                    batch_size=config.batch_size,
                    backend=config.kmeans_backend,
                    progress=bar.update,
                )
            labels = dict(zip(uids, result.labels.tolist(), strict=True))
            nearest = nearest_to_centroids(result, config.per_cluster)
            votes = self._vote({c: [prompts[i] for i in members] for c, members in nearest.items()}, context)
            clusters = {
                c: {
                    **votes[c].to_json(),
                    "size": int(np.sum(result.labels == c)),
                    "nearest_uids": [uids[i] for i in members],
                }
                for c, members in nearest.items()
            }
            (context.directory / "clusters.json").write_text(json.dumps(clusters, indent=1))
        for record in context.records():
            if record.uid not in labels:
                context.keep(record)
                continue
            domain = votes[labels[record.uid]].domain
            if domain in config.keep:
                context.keep(record)
            else:
                context.drop(record, f"domain {domain}", {"cluster": labels[record.uid]})
        domains = Counter(vote.domain for vote in votes.values())
        context.summary.extra = {
            "clustered prompts": len(prompts),
            "clusters": len(votes),
            "clusters per domain": dict(domains.most_common()),
        }

    def _vote(self, representatives: dict[int, list[str]], context: StepContext) -> dict[int, ClusterVote]:
        config = self.config
        engine = self.engine if self.engine is not None else _build_engine(config.engine)
        try:
            classifier = DomainClassifier(
                engine,
                domains=config.domains,
                template=config.template,
                sampling=SamplingParams(temperature=0.0, max_tokens=config.max_tokens),
                cache_path=context.cache_dir / "domain_votes.jsonl",
            )
            total = sum(len(prompts) for prompts in representatives.values())
            with context.bar(total, desc="domain: LLM vote") as bar:
                return classifier.vote(representatives, progress=bar.update)
        finally:
            if self.engine is None:
                engine.close()


class MixStep:
    """Adds fixed counts from other sources (card: 15,000 light-r1 math traces), after the filters.

    Args:
        sources: What to add.
        filters: Filters the added records must pass first.
        seed: Sampling seed.
    """

    name = "mix"

    def __init__(self, sources: list[MixSource], filters: list[BoundFilter], seed: int = 0):
        self.sources, self.filters, self.seed = sources, filters, seed

    def settings(self) -> Any:
        return {
            "sources": [{**asdict(s), "file": _file_identity(s.path)} for s in self.sources],
            "filters": FilterStep(self.filters).settings(),
            "seed": self.seed,
        }

    def run(self, context: StepContext) -> None:
        for record in context.records():
            context.keep(record)
        added = {}
        for index, source in enumerate(self.sources):
            eligible = [
                record
                for _, record in read_traces(source.path, context.rejects)
                if first_failure(record, self.filters) is None
            ]
            chosen = sample_fixed(eligible, source.count, seed=self.seed + index)
            for record in chosen:
                context.add(replace(record, uid=context.next_uid, source=source.name or record.source))
            added[source.path] = f"{len(chosen)} of {len(eligible)} that pass the filters"
        context.summary.extra = {"added": added}


class DedupeStep:
    """Drops exact duplicates across sources, keeping the first occurrence.

    Args:
        by: ``"prompt_response"`` (same prompt and response) or ``"prompt"``.
    """

    name = "dedupe"

    def __init__(self, by: str = "prompt_response"):
        if by not in DEDUPE_BY:
            raise ValueError(f"dedupe.by must be one of {list(DEDUPE_BY)}, got {by!r}.")
        self.by = by

    def settings(self) -> Any:
        return {"by": self.by}

    def run(self, context: StepContext) -> None:
        first: dict[str, str] = {}
        with context.bar(context.total) as bar:
            for record in context.records():
                key = dedupe_key(record, self.by)
                if key in first:
                    context.drop(record, "duplicate", {"first": first[key]})
                else:
                    first[key] = f"{record.source}:{record.id}"
                    context.keep(record)
                bar.update()


class DecontaminateStep:
    """Drops records whose prompt (or response) matches a benchmark question.

    Args:
        benchmarks: Benchmark files, directories or a suite name (see :func:`load_benchmarks`).
        config: Matching settings.
        data_dir: Where a suite's relative benchmark files live.
    """

    name = "decontaminate"

    def __init__(self, benchmarks: str | Sequence[str], config: DecontamConfig, data_dir: str | None = None):
        self.benchmarks, self.config, self.data_dir = benchmarks, config, data_dir

    def settings(self) -> Any:
        specs = [self.benchmarks] if isinstance(self.benchmarks, str) else list(self.benchmarks)
        files = [_file_identity(spec) if Path(spec).is_file() else spec for spec in specs]
        return {"benchmarks": files, "data_dir": self.data_dir, **asdict(self.config)}

    def run(self, context: StepContext) -> None:
        decontaminator = Decontaminator(load_benchmarks(self.benchmarks, self.data_dir), self.config)
        methods: Counter[str] = Counter()
        with context.bar(context.total) as bar:
            for _, record, result in iter_matches(decontaminator, ((None, r) for r in context.records())):
                if result is None:
                    context.keep(record)
                else:
                    where, match = result
                    methods[match.method] += 1
                    context.drop(
                        record, f"contaminated ({match.method})", {"field": where, **match.to_json()}
                    )
                bar.update()
        context.summary.extra = {
            "benchmark questions": sum(len(i) for i in decontaminator.text_items),
            "mode": self.config.mode,
            "matches by method": dict(methods),
        }


def settings_from(cls: type, data: Mapping[str, Any] | None, where: str) -> Any:
    """Build dataclass ``cls`` from a config mapping, naming ``where`` and the valid keys on a typo.

    Raises:
        ValueError: ``data`` has keys that ``cls`` does not define, or a value ``cls`` rejects.
    """
    data = dict(data or {})
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ValueError(f"Unknown key(s) {unknown} in {where}; valid keys: {valid}.")
    try:
        return cls(**data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: {error}") from None
