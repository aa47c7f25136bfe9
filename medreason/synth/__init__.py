"""LLM data synthesis: FineMedLM-o1 instructions, ReasonMed chains of thought, II-Medical traces.

Every pipeline calls its models through :class:`~medreason.engines.GenerationEngine` (OpenAI-compatible
HTTP, in-process vLLM, transformers), caches each call in an append-only JSONL file so a killed job
resumes without repeating a call, and parses every answer strictly (failures become rows, never
defaults). Guide: docs/synthesis.md; command line: ``python -m medreason.synth +pipeline=NAME``.
"""

from medreason.synth.cache import CallCache, call_key
from medreason.synth.finemed import FineMedSettings, load_texts, run_finemed
from medreason.synth.mcq import load_mcq
from medreason.synth.parsing import ParseError
from medreason.synth.prompts import PromptTemplate, load_template
from medreason.synth.reasonmed import ReasonMedSettings, run_reasonmed
from medreason.synth.run import compose_config, run_pipeline
from medreason.synth.runner import Call, EnginePool, Failure, Role, SynthRunner, build_role
from medreason.synth.selection import InstructionScores, compare_instruction_scores, is_complex
from medreason.synth.traces import TraceSettings, run_traces

__all__ = [
    "Call",
    "CallCache",
    "EnginePool",
    "Failure",
    "FineMedSettings",
    "InstructionScores",
    "ParseError",
    "PromptTemplate",
    "ReasonMedSettings",
    "Role",
    "SynthRunner",
    "TraceSettings",
    "build_role",
    "call_key",
    "compare_instruction_scores",
    "compose_config",
    "is_complex",
    "load_mcq",
    "load_template",
    "load_texts",
    "run_finemed",
    "run_pipeline",
    "run_reasonmed",
    "run_traces",
]
