"""Evaluate a model with and without TTT on the same items, and tabulate the two side by side.

What ``python -m medreason.eval model=... suite=finemedlm ttt=finemedlm_o1`` runs: the model is loaded
once, evaluated as is, then evaluated through :class:`~medreason.ttt.TestTimeTrainer` (which restores
it after every question, so the second run starts from the same weights). The two runs have
different cache keys, so neither reuses the other's generations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from medreason.engines.transformers_engine import TransformersEngine
from medreason.eval.results import EvalResults
from medreason.eval.runner import evaluate
from medreason.ttt.config import TTTConfig
from medreason.ttt.trainer import TestTimeTrainer

__all__ = ["evaluate_from_config", "evaluate_with_and_without_ttt", "side_by_side_table"]


def evaluate_with_and_without_ttt(
    model: str | os.PathLike | PreTrainedModel,
    suite: str | None,
    corpus_path: str | os.PathLike,
    config: TTTConfig | None = None,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    **evaluate_kwargs: Any,
) -> tuple[EvalResults, EvalResults]:
    """Evaluate ``model`` on ``suite`` plainly and with TTT; return ``(without, with_ttt)``.

    Args:
        model: A path or hub id (loaded once, in float32 for full-parameter TTT: see
            :class:`TTTConfig`) or a model in memory (then pass ``tokenizer``).
        suite: The evaluation suite, e.g. ``"finemedlm"`` (MMLU-Pro biology and health).
        corpus_path: The TTT corpus (long-form reasoning records; JSONL, Parquet or a dataset id).
        config: TTT settings; default the FineMedLM-o1 card's.
        tokenizer: Required with a model in memory.
        **evaluate_kwargs: Passed to both :func:`medreason.eval.evaluate` runs (``benchmarks``,
            ``sampling``, ``greedy``, ``data_dir``, ``limit``, ``output_dir``, ...). ``backend`` must be
            ``"transformers"`` (TTT trains the model in memory); ``engine_kwargs`` may set ``batch_size``,
            ``device`` and ``model_name``.

    Example (a notebook)::

        plain, ttt = evaluate_with_and_without_ttt("outputs/finemedlm_o1/final", "finemedlm",
                                                   "data/finemed_o1.jsonl", data_dir="data/eval")
        print(side_by_side_table(plain, ttt))
    """
    config = config if config is not None else TTTConfig()
    backend = evaluate_kwargs.pop("backend", "transformers")
    if backend != "transformers":
        raise ValueError(
            f"TTT evaluation got backend={backend!r}: TTT trains the model in memory, so it runs on the "
            "transformers backend. Evaluate the plain model with that backend separately (no ttt=...)."
        )
    engine_kwargs = dict(evaluate_kwargs.pop("engine_kwargs", None) or {})
    unknown = set(engine_kwargs) - {"batch_size", "device", "model_name"}
    if unknown:
        raise ValueError(
            f"engine_kwargs {sorted(unknown)} are not used with TTT; the transformers engine takes "
            "batch_size, device and model_name."
        )
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(path)
        device = engine_kwargs.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.float32 if config.mode == "full" else "auto"
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
        engine_kwargs.setdefault("model_name", path)
    elif tokenizer is None:
        raise TypeError(
            "evaluate_with_and_without_ttt got a model in memory but no tokenizer: pass tokenizer=..."
        )
    if "batch_size" in engine_kwargs:
        config = replace(config, generation_batch_size=engine_kwargs["batch_size"])
    plain_engine = TransformersEngine(
        model, tokenizer, batch_size=config.generation_batch_size, model_name=engine_kwargs.get("model_name")
    )
    without = evaluate(suite=suite, engine=plain_engine, **evaluate_kwargs)
    ttt_engine = TestTimeTrainer(model, tokenizer, corpus=corpus_path, config=config)
    ttt_engine.model_name = ttt_engine.cache_name(plain_engine.model_name)
    with_ttt = evaluate(suite=suite, engine=ttt_engine, **evaluate_kwargs)
    return without, with_ttt


def evaluate_from_config(
    model: str | os.PathLike | PreTrainedModel,
    suite: str | None,
    ttt: Mapping[str, Any],
    **evaluate_kwargs: Any,
) -> tuple[EvalResults, EvalResults]:
    """:func:`evaluate_with_and_without_ttt` from the ``ttt`` config group (``conf/ttt/*.yaml``).

    ``ttt`` holds ``corpus_path`` plus :class:`TTTConfig` fields, e.g. the resolved ``cfg.ttt``.

    >>> evaluate_from_config("m", "finemedlm", {"corpus_path": None})
    Traceback (most recent call last):
    ...
    ValueError: ttt.corpus_path is not set: pass ttt.corpus_path=FILE (the long-form reasoning records to retrieve from).
    """
    fields = dict(ttt)
    corpus_path = fields.pop("corpus_path", None)
    if not corpus_path or corpus_path == "???":
        raise ValueError(
            "ttt.corpus_path is not set: pass ttt.corpus_path=FILE (the long-form reasoning records to retrieve from)."
        )
    return evaluate_with_and_without_ttt(model, suite, corpus_path, TTTConfig(**fields), **evaluate_kwargs)


def side_by_side_table(without: EvalResults, with_ttt: EvalResults, published: bool = True) -> str:
    """The suite's model-card table with our row without TTT, with TTT, and their difference in points.

    >>> from medreason.eval import BenchmarkResult
    >>> plain = EvalResults("m", [BenchmarkResult("medqa", "MedQA", 0.50, 0.1, 10, 1)])
    >>> ttt = EvalResults("m+ttt", [BenchmarkResult("medqa", "MedQA", 0.60, 0.1, 10, 1)])
    >>> print(side_by_side_table(plain, ttt))
    | Model | MedQA | Avg |
    |---|---|---|
    | **m** | 50.00 | 50.00 |
    | **m+ttt** | 60.00 | 60.00 |
    | **Δ TTT (points)** | 10.00 | 10.00 |
    """
    if [b.name for b in without.benchmarks] != [b.name for b in with_ttt.benchmarks]:
        raise ValueError(
            "side_by_side_table needs both runs on the same benchmarks, got "
            f"{[b.name for b in without.benchmarks]} and {[b.name for b in with_ttt.benchmarks]}."
        )
    delta = EvalResults(
        "Δ TTT (points)",
        [
            replace(b, accuracy=t.accuracy - b.accuracy, stderr=0.0)
            for b, t in zip(without.benchmarks, with_ttt.benchmarks, strict=True)
        ],
        suite=without.suite,
    )
    stderr = any(b.num_samples > 1 for b in without.benchmarks)
    lines = without.table(published=published, stderr=stderr).splitlines()
    lines.append(with_ttt.table(published=False, stderr=stderr).splitlines()[-1])
    lines.append(delta.table(published=False, stderr=False).splitlines()[-1])
    return "\n".join(lines)
