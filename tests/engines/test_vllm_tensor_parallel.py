"""Colocated vLLM with tensor parallelism under a multi-process launch, on two CPU ranks (gloo).

Under ``external_launcher`` the two ranks share one tensor-parallel model, which must be given the same
requests on both. A stand-in ``vllm`` module records what each rank's ``LLM`` receives and answers with
the prompt's own first token, so the test sees whether every rank got back the completions of *its*
prompts, while both ranks generated the whole group's prompts with one seed.
"""

import json
import sys
import types
from pathlib import Path

import torch

from medreason.engines.base import SamplingParams
from medreason.testing import build_tiny_tokenizer
from medreason.testing.distributed import torchrun


def test_ranks_of_a_tensor_parallel_group_generate_the_same_requests(tmp_path):
    torchrun(__file__, tmp_path)
    seen = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert seen[0]["llm_inputs"] == seen[1]["llm_inputs"]  # the group's prompts, in rank order
    assert seen[0]["llm_inputs"] == seen[0]["own_inputs"] + seen[1]["own_inputs"]
    assert seen[0]["seeds"] == seen[1]["seeds"] == [1000]  # rank 0's seed
    for rank in seen:  # each rank gets its own prompts' completions, n of each
        assert rank["answers"] == [[ids[0]] * 2 for ids in rank["own_inputs"]]
    assert len(seen[0]["own_inputs"]) != len(seen[1]["own_inputs"])


class _Output:
    def __init__(self, token_ids, index):
        self.text, self.token_ids, self.finish_reason, self.index = "", token_ids, "stop", index


class _GroupLLM:
    """Stands in for ``vllm.LLM``: each request's n completions are the request's first prompt token."""

    def __init__(self, **kwargs):
        self.kwargs, self.inputs, self.seeds = kwargs, [], []

    def get_tokenizer(self):
        return build_tiny_tokenizer()

    def generate(self, inputs, params, use_tqdm):
        self.inputs.extend(item["prompt_token_ids"] for item in inputs)
        self.seeds.append(params.seed)
        ids = [item["prompt_token_ids"] for item in inputs]
        return [types.SimpleNamespace(outputs=[_Output([x[0]], k) for k in range(params.n)]) for x in ids]


def _run_rank(out: Path) -> None:
    sys.modules["vllm"] = types.SimpleNamespace(LLM=_GroupLLM, SamplingParams=lambda **kw: types.SimpleNamespace(**kw))
    from medreason.engines.vllm_engine import VLLMEngine

    torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank()
    engine = VLLMEngine("model-dir", tensor_parallel_size=2, distributed_executor_backend="external_launcher")
    prompts = ["first question", "second question", "third question"][: 1 + 2 * rank]  # 1 and 3 prompts
    answers = engine.generate(prompts, SamplingParams(n=2, max_tokens=4, seed=1000 + rank))
    record = {"llm_inputs": engine.llm.inputs, "seeds": engine.llm.seeds, "answers": [[c.token_ids[0] for c in group] for group in answers],
              "own_inputs": [engine.encode_prompt(p) for p in prompts]}
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    _run_rank(Path(sys.argv[1]))
