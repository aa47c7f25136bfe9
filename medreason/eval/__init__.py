"""Evaluation: benchmark registry, answer grading shared with the RL reward, runner, tables and plots.

>>> from medreason.eval import extract_choice
>>> extract_choice("<think>A or C?</think>The answer is \\\\boxed{C}.", {"A": "Asthma", "B": "COPD", "C": "Croup"})
'C'
"""

from medreason.eval.benchmarks import (
    BENCHMARKS,
    SUITES,
    Benchmark,
    EvalRecord,
    get_benchmark,
    load_records,
    register_benchmark,
    resolve_benchmarks,
)
from medreason.eval.config import EngineSettings, EvalConfig
from medreason.eval.grading import extract_choice, grade
from medreason.eval.prompts import II_MEDICAL_INSTRUCTION, PromptTemplate, format_question
from medreason.eval.published import PublishedTable, published_table
from medreason.eval.results import BenchmarkResult, EvalResults, mean_and_stderr
from medreason.eval.runner import CARD_SAMPLING, evaluate

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
