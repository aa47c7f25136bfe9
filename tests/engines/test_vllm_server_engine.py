"""VLLMServerEngine against a stand-in for TRL's VLLMClient (a real server needs GPUs and NCCL)."""

import pytest
import torch

from medreason.engines.base import SamplingParams
from medreason.engines.vllm_server_engine import VLLMServerEngine


class RecordingClient:
    """Answers like ``VLLMClient.generate``: prompt-major completion ids; records every call."""

    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []

    def generate(self, prompts, **kwargs):
        self.calls.append(("generate", prompts, kwargs))
        n, eos = kwargs["n"], 2
        completion_ids = []
        for p in range(len(prompts)):
            for i in range(n):
                # prompt 0: the first sample ends on EOS, the others fill max_tokens
                completion_ids.append([5, eos] if (p, i) == (0, 0) else [5] * kwargs["max_tokens"])
        return {"prompt_ids": prompts, "completion_ids": completion_ids}

    def init_communicator(self, device):
        self.calls.append(("init_communicator",))

    def update_named_param(self, name, weights):
        self.calls.append(("update", name, weights.shape))

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))

    def close_communicator(self):
        self.calls.append(("close_communicator",))


@pytest.fixture
def engine(monkeypatch, tiny_model_dir):
    monkeypatch.setattr("trl.generation.vllm_client.VLLMClient", RecordingClient)
    engine = VLLMServerEngine(str(tiny_model_dir), base_url="http://10.0.0.7:8000", group_port=51300)
    engine.tokenizer.eos_token_id = 2
    return engine


def test_generate_sends_token_ids_and_groups_completions_per_prompt(engine):
    prompts = ["A patient with a low TSH", [{"role": "user", "content": "Which option?"}]]
    out = engine.generate(prompts, SamplingParams(n=2, temperature=1.0, top_k=-1, max_tokens=3, seed=7, stop=("\n",)))
    _, sent, kwargs = engine.client.calls[0]
    assert sent == [engine.encode_prompt(p) for p in prompts]
    assert (kwargs["n"], kwargs["top_k"], kwargs["max_tokens"]) == (2, 0, 3)
    assert kwargs["generation_kwargs"] == {"stop": ["\n"], "seed": 7}
    assert [len(c) for c in out] == [2, 2]
    assert [c.finish_reason for c in out[0]] == ["stop", "length"]
    assert out[1][0].token_ids == [5, 5, 5] and out[1][0].truncated
    assert engine.client.kwargs == {"base_url": "http://10.0.0.7:8000", "group_port": 51300, "connection_timeout": 240.0}


def test_weights_are_streamed_once_the_group_exists_then_the_cache_reset(engine):
    weights = [("model.embed_tokens.weight", torch.zeros(4, 2)), ("lm_head.weight", torch.zeros(4, 2))]
    engine.load_weights(iter(weights))
    engine.load_weights(iter(weights[:1]))
    engine.close()
    assert engine.client.calls == [
        ("init_communicator",),
        ("update", "model.embed_tokens.weight", (4, 2)),
        ("update", "lm_head.weight", (4, 2)),
        ("reset_prefix_cache",),
        ("update", "model.embed_tokens.weight", (4, 2)),
        ("reset_prefix_cache",),
        ("close_communicator",),
    ]
