"""Evaluation: benchmark registry, runner, tables and plots.

The record schema, prompt template and answer grader it re-exports live in :mod:`medreason.tasks`,
shared with the RL rewards, the DAPO stage and synthesis.

>>> from medreason.eval import extract_choice
>>> extract_choice("<think>A or C?</think>The answer is \\\\boxed{C}.", {"A": "Asthma", "B": "COPD", "C": "Croup"})
'C'
"""

from medreason.eval.benchmarks import (
    BENCHMARKS,
    SUITES,
    get_benchmark,
    register_benchmark,
    resolve_benchmarks,
)
from medreason.eval.config import EngineSettings, EvalConfig
from medreason.eval.published import PublishedTable, published_table
from medreason.eval.results import BenchmarkResult, EvalResults, mean_and_stderr
from medreason.eval.runner import CARD_SAMPLING, evaluate
from medreason.tasks.grading import extract_choice, grade
from medreason.tasks.mcq import Benchmark, EvalRecord, load_records
from medreason.tasks.prompts import II_MEDICAL_INSTRUCTION, PromptTemplate, format_question

__all__ = [
    "BENCHMARKS",
    "CARD_SAMPLING",
    "II_MEDICAL_INSTRUCTION",
    "SUITES",
    "Benchmark",
    "BenchmarkResult",
    "EngineSettings",
    "EvalConfig",
    "EvalRecord",
    "EvalResults",
    "PromptTemplate",
    "PublishedTable",
    "evaluate",
    "extract_choice",
    "format_question",
    "get_benchmark",
    "grade",
    "load_records",
    "mean_and_stderr",
    "published_table",
    "register_benchmark",
    "resolve_benchmarks",
]
