"""The ``dapo`` stage kind of a recipe: RL on multiple-choice questions with :class:`DAPOTrainer`.

The stage's ``data`` block points at records in the shared MCQ schema (``question``, ``options``,
``answer``; JSONL, Parquet, a ``datasets`` id or ``builtin: tiny``). Each record becomes the prompt
evaluation uses (:class:`medreason.tasks.prompts.PromptTemplate`: the II-Medical ``\\boxed{}``
instruction), so the policy is trained on exactly the prompt format it is scored on.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from transformers import AutoModelForCausalLM

from medreason.engines.base import GenerationEngine
from medreason.stage_context import StageContext, StageSpec, mark_stage_complete
from medreason.tasks.mcq import Benchmark, to_eval_record
from medreason.tasks.prompts import PromptTemplate
from medreason.tasks.rubric import to_rubric_record
from medreason.testing.tiny_data import tiny_records
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_trainer import METRICS_FILE, DAPOTrainer
from medreason.trainers.peft_adapters import peft_settings, quantization_kwargs
from medreason.trainers.stage_io import load_tokenizer, model_init_kwargs, selected_records
from medreason.utils.jsonl import read_jsonl
from medreason.utils.training_curves import CURVES_FILE, plot_training_curves


def mcq_prompts(records: list[dict[str, Any]], positions: list[str], source: str, template: PromptTemplate) -> list[dict[str, Any]]:
    """``{prompt, answer, options}`` rows for the trainer; the rewards read ``answer`` and ``options``.

    Records are read exactly as evaluation reads benchmark files (:func:`medreason.tasks.mcq.to_eval_record`).
    A record with ``rubrics`` (HealthBench's format, :func:`medreason.tasks.rubric.to_rubric_record`)
    becomes ``{prompt, rubrics}`` instead, for the ``rubric_judge`` reward; a file may mix both kinds.

    Raises:
        RecordError: a record lacks a question, its options are not a mapping or list, or its answer is not an option.
    """
    spec = Benchmark(name="rl_prompts", title="RL prompts", path=source)
    rows = []
    for index, (record, position) in enumerate(zip(records, positions, strict=True)):
        if "rubrics" in record:
            rubric = to_rubric_record(record, source, position, index, spec.name)
            rows.append({"prompt": rubric.prompt, "rubrics": [item.to_json() for item in rubric.rubrics]})
            continue
        item = to_eval_record(record, spec, source, position, index)
        listed = "\n".join(f"{key}. {text}" for key, text in item.options.items())
        item = replace(item, question=item.question.removesuffix(listed).rstrip())  # tiny records list options too
        rows.append({"prompt": template(item), "answer": item.answer, "options": dict(item.options)})
    return rows


def rollout_engine(args: DAPOConfig, model_path: str) -> GenerationEngine | None:
    """The engine ``args.rollout_backend`` asks for; ``None`` lets the trainer sample from its live policy.

    With ``"vllm_server"`` every rank generates through one ``trl vllm-serve`` server and the main
    process streams the weights to it. With ``"vllm"`` every rank runs its own colocated engine on its GPU (the trainer shards prompts over
    ranks) and the trainer pushes the policy's weights into it after each step. Under a multi-process
    launch vLLM must join the launcher's process group rather than spawn workers: TRL's colocate mode
    passes ``distributed_executor_backend="external_launcher"`` for this, and so do we.
    """
    if args.rollout_backend == "transformers":
        return None
    if args.rollout_backend == "vllm_server":
        from medreason.engines.vllm_server_engine import VLLMServerEngine

        return VLLMServerEngine(
            model_path, base_url=args.vllm_server_base_url, group_port=args.vllm_server_group_port,
            connection_timeout=args.vllm_server_timeout,
        )
    from medreason.engines.vllm_engine import VLLMEngine  # vLLM is optional

    launched = PartialState().num_processes > 1
    return VLLMEngine(
        model_path, tensor_parallel_size=args.vllm_tensor_parallel_size, dtype="bfloat16" if args.bf16 else "auto",
        gpu_memory_utilization=args.vllm_gpu_memory_utilization,
        max_model_len=args.max_prompt_length + args.max_completion_length, seed=args.seed,
        sleep_mode=args.vllm_sleep_mode,
        **({"distributed_executor_backend": "external_launcher"} if launched else {}),
    )


def dapo_stage_config(spec: StageSpec) -> DAPOConfig:
    """The stage's :class:`DAPOConfig`."""
    return DAPOConfig(
        output_dir=str(spec.output_dir), run_name=f"{spec.run_cfg.run_name}/{spec.name}", seed=spec.run_cfg.seed,
        **spec.settings,
    )


def run_dapo_stage(context: StageContext) -> Path:
    """Train one DAPO stage from ``context.model_path``; save to ``context.final_dir`` and return it."""
    run_cfg, data, args = context.run_cfg, context.cfg.data, context.config
    # The records are read and checked before the model loads: a bad record fails in seconds, not after minutes.
    record_set = selected_records(context, builtin={"tiny": tiny_records})
    template = PromptTemplate(system=data.get("system_prompt"))
    rows = mcq_prompts(record_set.records, record_set.positions, record_set.source, template)
    # Master weights stay float32 whatever the model block says: at the card's LR of 1e-6, AdamW updates
    # are far below bf16's resolution (~0.4% of a weight) and would round away. bf16=true in the trainer
    # block runs the forward/backward passes in bf16 autocast instead, as verl does with FSDP.
    load_kwargs = {**model_init_kwargs(run_cfg.model), "dtype": torch.float32, **quantization_kwargs(peft_settings(args.peft))}
    model = AutoModelForCausalLM.from_pretrained(context.model_path, **load_kwargs)
    tokenizer = load_tokenizer(context.model_path, run_cfg.model.chat_template)
    engine = rollout_engine(args, context.model_path)
    try:
        trainer = DAPOTrainer(model, args, rows, processing_class=tokenizer, engine=engine)
        metrics = trainer.train(resume_from_checkpoint=bool(context.resume))
        trainer.save_model(context.final_dir)
        if trainer.accelerator.is_main_process:  # every step since the first, resumed runs included
            history = [entry for _, entry in read_jsonl(context.output_dir / METRICS_FILE)]
            plot_training_curves(history, context.output_dir / CURVES_FILE, f"{context.name} (dapo)")
            mark_stage_complete(context, {"global_step": trainer.global_step, **metrics})
    finally:
        if engine is not None:  # colocated vLLM holds a share of every GPU the next stage wants back
            engine.close()
    return context.final_dir
