"""VLLMEngine's sleep/wake wiring, against a stand-in ``vllm`` module (the real one needs CUDA for sleep mode)."""

import sys
import types

from medreason.engines.vllm_engine import VLLMEngine


class RecordingLLM:
    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []

    def get_tokenizer(self):
        return None

    def sleep(self, level):
        self.calls.append(("sleep", level))

    def wake_up(self):
        self.calls.append(("wake_up",))


def fake_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=RecordingLLM))


def test_sleep_mode_starts_vllm_with_it_and_sleeps_at_level_one(monkeypatch):
    fake_vllm(monkeypatch)
    engine = VLLMEngine("model-dir", sleep_mode=True)
    assert engine.llm.kwargs["enable_sleep_mode"] is True
    engine.sleep()
    engine.wake_up()
    assert engine.llm.calls == [("sleep", 1), ("wake_up",)]


def test_without_sleep_mode_sleep_and_wake_are_no_ops(monkeypatch):
    fake_vllm(monkeypatch)
    engine = VLLMEngine("model-dir")
    assert "enable_sleep_mode" not in engine.llm.kwargs
    engine.sleep()
    engine.wake_up()
    assert engine.llm.calls == []
