import json
from pathlib import Path

import pytest

from medreason.engines import SamplingParams, build_engine
from medreason.engines.openai_engine import OpenAIEngine

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "eval"
CHAT = [{"role": "user", "content": "Which option?"}]


def make_engine(server, **kwargs):
    kwargs = {"backoff_base": 0.01, "max_retries": 3, "timeout": 5.0, **kwargs}
    return OpenAIEngine("served-model", base_url=server.base_url, **kwargs)


def test_chat_and_text_prompts_use_their_endpoints_and_keep_order(openai_server):
    openai_server.reply = lambda body, index: (
        f"{index}:" + (body.get("prompt") or body["messages"][-1]["content"])
    )
    prompts = [CHAT, "plain text", [{"role": "user", "content": "second chat"}]]
    out = make_engine(openai_server).generate(
        prompts, SamplingParams(n=2, max_tokens=7, top_k=5, seed=3, stop=("##",))
    )
    assert [[c.text for c in completions] for completions in out] == [
        ["0:Which option?", "1:Which option?"],
        ["0:plain text", "1:plain text"],
        ["0:second chat", "1:second chat"],
    ]
    assert out[1][0].finish_reason == "length" and out[0][0].finish_reason == "stop"
    paths = sorted(path for path, _ in openai_server.bodies)
    assert paths == ["/v1/chat/completions", "/v1/chat/completions", "/v1/completions"]
    body = next(body for path, body in openai_server.bodies if path == "/v1/completions")
    assert body == {
        "prompt": "plain text",
        "model": "served-model",
        "n": 2,
        "temperature": 1.0,
        "top_p": 1.0,
        "max_tokens": 7,
        "top_k": 5,
        "stop": ["##"],
        "seed": 3,
    }


def test_top_k_off_and_no_seed_are_not_sent(openai_server):
    make_engine(openai_server).generate([CHAT], SamplingParams(temperature=0))
    ((_, body),) = openai_server.bodies
    assert "top_k" not in body and "seed" not in body and "stop" not in body
    assert body["temperature"] == 0


def test_reasoning_content_is_returned_as_think_block(openai_server):
    openai_server.reasoning = True
    completion = make_engine(openai_server).generate([CHAT], SamplingParams())[0][0]
    assert completion.text.startswith("<think>\nConsidering each option.\n</think>\n\n")
    assert completion.text.endswith("\\boxed{A}.")


def test_rate_limits_and_server_errors_are_retried(openai_server):
    openai_server.failures = [429, 503, 500]
    out = make_engine(openai_server).generate([CHAT], SamplingParams())
    assert out[0][0].text.endswith("\\boxed{A}.")
    assert len(openai_server.bodies) == 4


def test_timeouts_are_retried(openai_server):
    openai_server.failures = ["sleep"]
    out = make_engine(openai_server, timeout=0.2).generate(["text"], SamplingParams())
    assert len(out[0]) == 1
    assert len(openai_server.bodies) == 2


def test_gives_up_after_max_retries(openai_server):
    openai_server.failures = [500] * 10
    with pytest.raises(RuntimeError, match="failed after 3 attempts; last error: HTTP 500"):
        make_engine(openai_server, max_retries=2).generate([CHAT], SamplingParams())
    assert len(openai_server.bodies) == 3


def test_client_errors_fail_at_once(openai_server):
    openai_server.failures = [400]
    with pytest.raises(RuntimeError, match="rejected the request.*HTTP 400"):
        make_engine(openai_server).generate([CHAT], SamplingParams())
    assert len(openai_server.bodies) == 1


def test_concurrency_is_bounded(openai_server):
    openai_server.gate = 3  # each request waits until 3 are in flight, so the bound is reached
    out = make_engine(openai_server, max_concurrency=3).generate([CHAT] * 12, SamplingParams())
    assert len(out) == 12
    assert openai_server.max_in_flight == 3


def test_threads_share_one_engine_and_each_gets_its_own_answers_in_order(openai_server):
    from concurrent.futures import ThreadPoolExecutor

    openai_server.reply = lambda body, index: "echo " + body["messages"][-1]["content"]
    engine = make_engine(openai_server, max_concurrency=2)

    def ask(thread):
        prompts = [[{"role": "user", "content": f"{thread}-{i}"}] for i in range(3)]
        return [out[0].text for out in engine.generate(prompts, SamplingParams())]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert answers == [[f"echo {t}-{i}" for i in range(3)] for t in range(8)]
    engine.close()
    engine.close()  # twice is fine
    assert ask(9) == ["echo 9-0", "echo 9-1", "echo 9-2"]  # a closed engine starts its loop again
    engine.close()


def test_completions_endpoint_rejects_messages(openai_server):
    with pytest.raises(TypeError, match="text prompts"):
        make_engine(openai_server, endpoint="completions").generate([CHAT], SamplingParams())


def test_build_engine_by_name(openai_server):
    engine = build_engine("openai", model="m", base_url=openai_server.base_url)
    assert isinstance(engine, OpenAIEngine) and engine.model_name == "m"
    with pytest.raises(ValueError, match="choose one of transformers, openai, vllm"):
        build_engine("tgi")


def test_evaluate_real_benchmarks_through_the_http_server(openai_server, tmp_path):
    if not DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {DATA}")
    from medreason.eval import evaluate

    # The server always answers A, so accuracy is exactly the share of items whose answer is A.
    engine = make_engine(openai_server, max_concurrency=4)
    results = evaluate(
        engine=engine,
        benchmarks=["medqa", "pubmedqa"],
        data_dir=DATA,
        limit=8,
        output_dir=tmp_path,
        progress=False,
    )
    for benchmark in ("medqa", "pubmedqa"):
        with open(DATA / f"{benchmark}.jsonl") as handle:
            answers = [json.loads(line)["answer"] for line, _ in zip(handle, range(8), strict=False)]
        assert results.accuracies[benchmark] == answers.count("A") / 8
    assert len(openai_server.bodies) == 16
    assert all(body["temperature"] == 0.6 and body["top_p"] == 0.9 for _, body in openai_server.bodies)
    assert "\\boxed{}" in openai_server.bodies[0][1]["messages"][-1]["content"]
