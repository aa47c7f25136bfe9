"""Generation from a ``trl vllm-serve`` server that also takes weight updates (RL server mode).

The policy trains on its own GPUs while vLLM serves on others. Generation goes over HTTP; after each
optimizer step the trainer's main process streams the new weights to the server over an NCCL group
(TRL's ``VLLMClient``: ``init_communicator`` once, ``update_named_param`` per tensor, then
``reset_prefix_cache`` since cached prefixes were computed with the old weights). Start the server
first, e.g. ``CUDA_VISIBLE_DEVICES=7 trl vllm-serve --model PATH --tensor-parallel-size 1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from accelerate import PartialState
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from medreason.engines.base import Completion, GenerationEngine, Prompt, SamplingParams
from medreason.engines.transformers_engine import encode_prompt


class VLLMServerEngine(GenerationEngine):
    """A :class:`GenerationEngine` over a ``trl vllm-serve`` server, with weight pushes for RL.

    Args:
        model: The served model's path or hub id (its tokenizer encodes prompts here, as in
            :class:`~medreason.engines.TransformersEngine`, so every engine sees the same token ids).
        base_url: The server's root, e.g. ``http://10.0.0.7:8000``.
        group_port: Port of the NCCL weight-update group.
        connection_timeout: Seconds to wait for the server to come up.
        tokenizer: A ready tokenizer instead of loading ``model``'s.
        model_name: Name used to key caches; default ``model``.

    Every rank may generate (each sends its share of prompts); only the main process pushes weights.
    The trainer gathers each bucket on every rank before calling :meth:`load_weights` (collective under
    FSDP2), so the other ranks returning at once cannot stall it.
    """

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000",
        group_port: int = 51216,
        connection_timeout: float = 240.0,
        tokenizer: PreTrainedTokenizerBase | None = None,
        model_name: str | None = None,
    ):
        from trl.generation.vllm_client import VLLMClient  # needs the server's extras only when used

        self.client = VLLMClient(base_url=base_url, group_port=group_port, connection_timeout=connection_timeout)
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
        self.model_name = model_name or str(model)
        self._communicator = False

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """The token ids the server is given for ``prompt``."""
        return encode_prompt(self.tokenizer, prompt)

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        """Return ``sampling.n`` completions per prompt, in prompt order."""
        extra: dict[str, Any] = {}
        if sampling.stop:
            extra["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            extra["seed"] = sampling.seed
        out = self.client.generate(
            [self.encode_prompt(p) for p in prompts], n=sampling.n, temperature=sampling.temperature,
            top_p=sampling.top_p, top_k=max(sampling.top_k, 0), max_tokens=sampling.max_tokens, logprobs=None,
            generation_kwargs=extra,
        )
        completions = [self._completion(ids, sampling) for ids in out["completion_ids"]]
        # The server answers prompt-major: the n completions of a prompt, then the next prompt's.
        return [completions[i * sampling.n : (i + 1) * sampling.n] for i in range(len(prompts))]

    def _completion(self, ids: list[int], sampling: SamplingParams) -> Completion:
        # The completions endpoint reports no finish reason through the client: a completion that
        # fills max_tokens without ending on EOS was cut off.
        ended = bool(ids) and ids[-1] == self.tokenizer.eos_token_id
        reason = "length" if len(ids) >= sampling.max_tokens and not ended else "stop"
        return Completion(self.tokenizer.decode(ids, skip_special_tokens=True), list(ids), reason)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Stream ``weights`` (HF parameter names) to the server from the main process."""
        if not PartialState().is_main_process:
            return
        if not self._communicator:
            self.client.init_communicator(device=torch.cuda.current_device() if torch.cuda.is_available() else "cpu")
            self._communicator = True
        for name, tensor in weights:
            self.client.update_named_param(name, tensor)
        self.client.reset_prefix_cache()

    def close(self) -> None:
        """Leave the weight-update group. Safe to call twice."""
        if self._communicator:
            self.client.close_communicator()
            self._communicator = False
