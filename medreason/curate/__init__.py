"""Curation and decontamination of reasoning data (the II-Medical pipeline).

Run it from the command line (``python -m medreason.curate``, see :mod:`medreason.curate.__main__`)
or piece by piece from Python:

>>> from medreason.curate import Decontaminator, BenchmarkItem
>>> decon = Decontaminator([BenchmarkItem("demo", "1", "Which vitamin deficiency causes scurvy in adults?")])
>>> decon.match_texts(["which vitamin deficiency causes SCURVY in adults"])[0].method
'exact'
"""

from medreason.curate.benchmarks import BenchmarkItem, load_benchmarks
from medreason.curate.cluster import KMeansResult, kmeans, nearest_to_centroids
from medreason.curate.commands import build_pipeline, curate, decontaminate_file
from medreason.curate.config import CurateConfig
from medreason.curate.decontaminate import DecontamConfig, Decontaminator, Match, match_records, normalise
from medreason.curate.domain_vote import ClusterVote, DomainClassifier, majority
from medreason.curate.embed import Embedder
from medreason.curate.filters import FILTERS, build_filters, register_filter
from medreason.curate.mixing import MixSource, sample_fixed
from medreason.curate.pipeline import CurationPipeline, StepContext
from medreason.curate.records import Rejects, TraceRecord, parse_trace, read_traces
from medreason.curate.summary import StepSummary

__all__ = [
    "CurateConfig",
    "FILTERS",
    "BenchmarkItem",
    "ClusterVote",
    "CurationPipeline",
    "DecontamConfig",
    "Decontaminator",
    "DomainClassifier",
    "Embedder",
    "KMeansResult",
    "Match",
    "MixSource",
    "Rejects",
    "StepContext",
    "StepSummary",
    "TraceRecord",
    "build_filters",
    "build_pipeline",
    "curate",
    "decontaminate_file",
    "kmeans",
    "load_benchmarks",
    "majority",
    "match_records",
    "nearest_to_centroids",
    "normalise",
    "parse_trace",
    "read_traces",
    "register_filter",
    "sample_fixed",
]
