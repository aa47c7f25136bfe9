import json
import threading
import time

import pytest

from medreason.engines.base import Completion, GenerationEngine, SamplingParams
from medreason.synth.cache import CallCache, call_key
from medreason.synth.parsing import ParseError
from medreason.synth.runner import Call, EnginePool, Role, SynthRunner, build_role


class ScriptedEngine(GenerationEngine):
    """Answers ``f(prompt, seed)``; records every prompt it was asked and the peak concurrency."""

    model_name = "scripted"

    def __init__(self, answer, fail_on=()):
        self.answer = answer
        self.fail_on = set(fail_on)
        self.asked: list[tuple[str, int | None]] = []
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()

    def generate(self, prompts, sampling):
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            self.asked.extend((p, sampling.seed) for p in prompts)
        try:
            time.sleep(0.01)
            if any(p in self.fail_on for p in prompts):
                raise RuntimeError("server gave up after 6 attempts")
            return [[Completion(self.answer(p, sampling.seed))] for p in prompts]
        finally:
            with self.lock:
                self.in_flight -= 1


def number(completions, call):
    text = completions[0].text
    if not text.isdigit():
        raise ParseError(f"not a number: {text!r}")
    return int(text)


def role(engine, concurrency=1, batch_size=1):
    return Role.for_engine(
        "r", engine, "scripted", SamplingParams(temperature=0.7, seed=0), concurrency, batch_size
    )


def test_cache_round_trip_and_torn_last_line(tmp_path):
    path = tmp_path / "c.jsonl"
    cache = CallCache(path)
    cache.put("a", [Completion("one"), Completion("two", finish_reason="length")])
    with path.open("ab") as handle:  # a write cut short by a kill, mid-way through a two-byte character
        handle.write('{"key": "b", "completions": [{"text": "café'.encode()[:-1])
    reloaded = CallCache(path)
    assert [c.text for c in reloaded.get("a")] == ["one", "two"] and reloaded.get("a")[1].truncated
    assert reloaded.get("b") is None
    reloaded.put("c", [Completion("three")])
    assert [c.text for c in CallCache(path).get("c")] == ["three"]  # not glued to the torn line


def test_call_key_covers_backend_model_prompt_sampling_and_attempt():
    base = call_key("openai", "m", [{"role": "user", "content": "x"}], SamplingParams(temperature=0.7))
    variants = [
        call_key("vllm", "m", [{"role": "user", "content": "x"}], SamplingParams(temperature=0.7)),
        call_key("openai", "m2", [{"role": "user", "content": "x"}], SamplingParams(temperature=0.7)),
        call_key("openai", "m", [{"role": "user", "content": "y"}], SamplingParams(temperature=0.7)),
        call_key("openai", "m", [{"role": "user", "content": "x"}], SamplingParams(temperature=0.9)),
        call_key(
            "openai", "m", [{"role": "user", "content": "x"}], SamplingParams(temperature=0.7), attempt=1
        ),
    ]
    assert len({base, *variants}) == 6


def test_parse_failures_are_retried_with_new_seeds_then_become_failure_rows(tmp_path):
    # "late": garbage at seed 0 and 1, a number at seed 2; "never": garbage always
    engine = ScriptedEngine(lambda p, seed: "7" if p == "ok" or (p == "late" and seed == 2) else "seven")
    runner = SynthRunner(tmp_path, max_attempts=3, progress=False)
    calls = [Call("a", "ok"), Call("b", "late"), Call("c", "never")]
    assert runner.run("step", role(engine), calls, number) == {"a": 7, "b": 7}
    assert sorted(engine.asked) == sorted(
        [("ok", 0), ("late", 0), ("late", 1), ("late", 2), ("never", 0), ("never", 1), ("never", 2)]
    )
    (failure,) = runner.failures
    assert (failure.stage, failure.id, failure.kind, failure.attempts) == ("step", "c", "parse", 3)
    assert "not a number: 'seven'" in failure.error and failure.raw == "seven"
    assert runner.stats["step"].parse_retries == 4  # late: 2, never: 2

    # a rerun reads every answer (bad ones too) from the cache and asks nothing
    engine.asked.clear()
    again = SynthRunner(tmp_path, max_attempts=3, progress=False)
    assert again.run("step", role(engine), calls, number) == {"a": 7, "b": 7}
    assert engine.asked == [] and [f.id for f in again.failures] == ["c"]
    # allowing more attempts resumes the failed item at attempt 3, not from scratch
    more = SynthRunner(tmp_path, max_attempts=4, progress=False)
    more.run("step", role(engine), calls, number)
    assert engine.asked == [("never", 3)]


def test_engine_errors_become_failure_rows_and_are_retried_next_run(tmp_path):
    engine = ScriptedEngine(lambda p, seed: "1", fail_on={"down"})
    runner = SynthRunner(tmp_path, progress=False)
    assert runner.run("step", role(engine), [Call("a", "up"), Call("b", "down")], number) == {"a": 1}
    (failure,) = runner.failures
    assert failure.kind == "engine" and "server gave up" in failure.error
    engine.fail_on.clear()
    engine.asked.clear()
    assert SynthRunner(tmp_path, progress=False).run(
        "step", role(engine), [Call("a", "up"), Call("b", "down")], number
    ) == {"a": 1, "b": 1}
    assert engine.asked == [("down", 0)]


def test_concurrency_and_batch_size_bound_the_engine_calls(tmp_path):
    engine = ScriptedEngine(lambda p, seed: "3")
    runner = SynthRunner(tmp_path, progress=False)
    calls = [Call(str(i), f"p{i}") for i in range(40)]
    assert len(runner.run("step", role(engine, concurrency=4, batch_size=5), calls, number)) == 40
    assert 1 < engine.peak <= 4
    lines = (tmp_path / "cache" / "step.jsonl").read_text().splitlines()
    assert len(lines) == 40 and json.loads(lines[0])["stage"] == "step"


def test_build_role_errors_name_the_field():
    pool = EnginePool()
    with pytest.raises(ValueError, match="roles.judge.model is not set"):
        build_role("judge", {"backend": "openai", "model": None}, pool)
    with pytest.raises(ValueError, match=r"roles.judge: unknown settings \['temprature'\]"):
        build_role("judge", {"model": "m", "temprature": 0.1}, pool)
    with pytest.raises(ValueError, match="roles.judge.sampling: SamplingParams.top_p"):
        build_role("judge", {"model": "m", "sampling": {"top_p": 0}}, pool)
    a = build_role("a", {"model": "m", "base_url": "http://127.0.0.1:9/v1"}, pool)
    b = build_role(
        "b", {"model": "m", "base_url": "http://127.0.0.1:9/v1", "sampling": {"temperature": 0}}, pool
    )
    assert a.connect() is b.connect()  # roles on the same server share one engine


def test_engine_pool_builds_lazily_and_keeps_one_local_model(monkeypatch):
    built, closed = [], []

    class Engine(GenerationEngine):
        def __init__(self, model, **kwargs):
            self.model_name = model
            built.append(model)

        def generate(self, prompts, sampling):
            return [[Completion("1")] for _ in prompts]

        def close(self):
            closed.append(self.model_name)

    monkeypatch.setattr("medreason.synth.runner.build_engine", lambda backend, **kwargs: Engine(**kwargs))
    pool = EnginePool(one_local_model=True)
    first = build_role("verifier", {"backend": "vllm", "model": "qwen-72b"}, pool)
    second = build_role("strong", {"backend": "vllm", "model": "qwq-32b"}, pool)
    remote = build_role(
        "api", {"backend": "openai", "model": "o1", "base_url": "http://127.0.0.1:9/v1"}, pool
    )
    assert built == [] and first.model_name == "qwen-72b"  # nothing loads until a step needs it
    first.connect(), remote.connect(), second.connect()
    assert built == ["qwen-72b", "o1", "qwq-32b"] and closed == ["qwen-72b"]  # remote engines stay
    first.connect()
    assert closed == ["qwen-72b", "qwq-32b"]
    pool.close()
    assert sorted(closed) == ["o1", "qwen-72b", "qwen-72b", "qwq-32b"]


def test_reward_model_picks_the_higher_score_and_caches_it(tmp_path, tiny_model_dir, monkeypatch):
    from medreason.synth.reward import RewardModel

    scorer = RewardModel(str(tiny_model_dir), batch_size=3)
    assert len(scorer.score([("Why?", "Because."), ("How?", "Like this.")])) == 2
    scored = []

    def fake_score(pairs):
        scored.extend(pairs)
        return [float(len(answer)) for _, answer in pairs]  # longer answer wins

    monkeypatch.setattr(scorer, "score", fake_score)
    cache = CallCache(tmp_path / "reward.jsonl")
    items = [("q1", "short", "much longer"), ("q2", "longest answer", "tiny"), ("q3", "same", "same")]
    assert scorer.choose(items, cache) == [1, 0, 0]  # a tie keeps the first answer
    assert len(scored) == 6
    assert scorer.choose(items, CallCache(tmp_path / "reward.jsonl")) == [1, 0, 0] and len(scored) == 6
