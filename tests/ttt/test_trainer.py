"""TestTimeTrainer: the answer step sees the adapted model, weights are exact after, latency split, grouping."""

import pytest
import torch

from medreason.engines import SamplingParams, TransformersEngine
from medreason.testing import tiny_records
from medreason.ttt import TestTimeTrainer, TTTConfig, answer_loss

from .helpers import HashEncoder, load_tiny, max_abs_diff, state

SAMPLING = SamplingParams(temperature=0.0, max_tokens=6)
CONFIGS = {
    "full": TTTConfig(
        mode="full", learning_rate=1e-3, max_length=256, embedding_cache_dir=None, encoder="hash"
    ),
    "lora": TTTConfig(
        mode="lora",
        lora_learning_rate=1e-2,
        lora_rank=4,
        lora_alpha=8,
        max_length=256,
        embedding_cache_dir=None,
        encoder="hash",
    ),
}
RECORDS = tiny_records(24)


def build(tiny_model_dir, mode="full", **overrides):
    model, tokenizer = load_tiny(tiny_model_dir)
    config = CONFIGS[mode]
    if overrides:
        config = TTTConfig(**{**config.__dict__, **overrides})
    return TestTimeTrainer(model, tokenizer, corpus=RECORDS, config=config, encoder=HashEncoder())


def question(index):
    return [{"role": "user", "content": RECORDS[index]["question"]}]


@pytest.mark.parametrize("mode", CONFIGS)
def test_answer_step_sees_a_lower_loss_on_the_retrieved_example_and_restore_is_exact(tiny_model_dir, mode):
    ttt = build(tiny_model_dir, mode)
    example = ttt.encoded(7)
    with torch.no_grad():
        loss_before = answer_loss(ttt.model, [example])
    before = state(ttt.model)
    during = []
    real_generate = ttt.engine.generate

    def spy(prompts, sampling):  # runs inside the adaptation, right where the answer is generated
        with torch.no_grad():
            during.append(answer_loss(ttt.model, [example]))
        return real_generate(prompts, sampling)

    ttt.engine.generate = spy
    ttt.generate([question(7)], SAMPLING)
    assert ttt.latencies[-1].neighbours[0].index == 7  # its own question is the nearest
    assert during[0] < 0.98 * loss_before, (during[0].item(), loss_before.item())
    with torch.no_grad():
        assert torch.equal(answer_loss(ttt.model, [example]), loss_before)
    assert max_abs_diff(ttt.model, before) == 0.0


def test_questions_sharing_an_example_share_one_adaptation_with_the_same_answers(tiny_model_dir, monkeypatch):
    ttt = build(tiny_model_dir, generation_batch_size=1)  # batch 1: no padding, so outputs compare exactly
    prompts = [question(3), question(5), [{"role": "user", "content": RECORDS[3]["question"] + " Why?"}]]
    one_by_one = [ttt.generate([p], SAMPLING)[0][0].text for p in prompts]
    import medreason.ttt.trainer as trainer_module

    calls = []
    real_adapted = trainer_module.adapted

    def counting(model, examples, *args):
        calls.append(len(examples))
        return real_adapted(model, examples, *args)

    monkeypatch.setattr(trainer_module, "adapted", counting)
    ttt.latencies.clear()
    together = [c[0].text for c in ttt.generate(prompts, SAMPLING)]
    assert together == one_by_one
    assert calls == [1, 1]  # question 3 (twice) and question 5
    assert [q.group_size for q in ttt.latencies] == [2, 1, 2]


def test_latency_split_is_recorded_per_question(tiny_model_dir):
    ttt = build(tiny_model_dir)
    ttt.generate([question(1), question(2)], SAMPLING)
    assert len(ttt.latencies) == 2
    for latency in ttt.latencies:
        assert min(latency.retrieve_s, latency.adapt_s, latency.generate_s) >= 0
        assert latency.total_s == pytest.approx(latency.retrieve_s + latency.adapt_s + latency.generate_s)
        assert len(latency.train_losses) == 2 and len(latency.neighbours) == 1
    summary = ttt.latency_summary()
    assert summary["questions"] == 2 and set(summary) == {
        "questions",
        "retrieve_s",
        "adapt_s",
        "generate_s",
        "total_s",
    }


def test_below_the_similarity_floor_the_plain_model_answers(tiny_model_dir):
    ttt = build(tiny_model_dir, min_similarity=0.99)
    unrelated = [{"role": "user", "content": "zebra quantum violin"}]
    plain = TransformersEngine(ttt.model, ttt.tokenizer).generate([unrelated], SAMPLING)
    assert ttt.generate([unrelated], SAMPLING)[0][0].text == plain[0][0].text
    latency = ttt.latencies[-1]
    assert latency.neighbours == () and latency.adapt_s == 0 and latency.train_losses == ()


def test_engine_interface_and_cache_name(tiny_model_dir):
    ttt = build(tiny_model_dir, mode="lora")
    before = state(ttt.model)
    assert isinstance(ttt.answer(RECORDS[0]["question"], SAMPLING), str)
    out = ttt.generate(
        [question(0), RECORDS[1]["question"]], SamplingParams(temperature=1.0, n=2, max_tokens=4, seed=1)
    )
    assert [len(c) for c in out] == [2, 2]
    assert max_abs_diff(ttt.model, before) == 0.0
    assert ttt.model_name.startswith(str(tiny_model_dir))
    assert f"+ttt-lora-{ttt.config.fingerprint()}-" in ttt.model_name


def test_full_mode_on_bfloat16_weights_warns(tiny_model_dir, caplog):
    model, tokenizer = load_tiny(tiny_model_dir)
    with caplog.at_level("WARNING", logger="medreason.ttt.trainer"):
        TestTimeTrainer(model.to(torch.bfloat16), tokenizer, RECORDS, CONFIGS["full"], encoder=HashEncoder())
    assert "Load the model in float32" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="medreason.ttt.trainer"):
        TestTimeTrainer(model, tokenizer, RECORDS, CONFIGS["lora"], encoder=HashEncoder())
    assert caplog.text == ""
