import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from medreason.engines import SamplingParams, TransformersEngine

CHAT = [{"role": "user", "content": "A toddler has a barking cough. What is the most likely diagnosis?"}]
PROMPTS = ["The most likely diagnosis is", CHAT, "Hyperthyroidism lowers TSH because"]
GREEDY = SamplingParams(temperature=0, max_tokens=8)


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return TransformersEngine(tiny_model_dir, batch_size=4)


def test_greedy_returns_n_completions_per_prompt_in_order(engine):
    out = engine.generate(PROMPTS, SamplingParams(temperature=0, max_tokens=8, n=2))
    assert [len(completions) for completions in out] == [2, 2, 2]
    for completions in out:
        first, second = completions
        assert first.token_ids == second.token_ids  # greedy: every sample is the same
        assert 0 < len(first.token_ids) <= 8
        assert first.text == engine.tokenizer.decode(
            first.token_ids, skip_special_tokens=True
        )  # no think tags here
    singles = [engine.generate([prompt], GREEDY)[0][0].token_ids for prompt in PROMPTS]
    assert singles == [completions[0].token_ids for completions in out]


def test_batching_does_not_change_greedy_output(tiny_model_dir, engine):
    one_at_a_time = TransformersEngine(tiny_model_dir, batch_size=1)
    expected = [c[0].token_ids for c in one_at_a_time.generate(PROMPTS, GREEDY)]
    assert [c[0].token_ids for c in engine.generate(PROMPTS, GREEDY)] == expected


def test_hitting_max_tokens_without_eos_is_length(engine):
    completion = engine.generate(["Hello"], SamplingParams(temperature=0, max_tokens=5))[0][0]
    assert len(completion.token_ids) == 5
    assert completion.finish_reason == "length" and completion.truncated


def test_encode_prompt_applies_chat_template_with_generation_prompt(engine):
    ids = engine.encode_prompt(CHAT)
    text = engine.tokenizer.decode(ids)
    assert text.startswith("<|im_start|>user\n")
    assert text.endswith("<|im_start|>assistant\n")
    assert engine.encode_prompt("plain text") == engine.tokenizer("plain text")["input_ids"]


def test_sampling_is_reproducible_with_a_seed_and_varies_across_seeds(engine):
    def sample(seed):
        params = SamplingParams(temperature=1.0, max_tokens=12, n=3, seed=seed)
        return [c.token_ids for c in engine.generate(["Hello"], params)[0]]

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)
    assert len({tuple(ids) for ids in sample(1)}) > 1  # n samples are drawn independently


def test_unseeded_calls_draw_new_samples_and_seeded_calls_keep_the_global_rng(engine):
    unseeded = SamplingParams(temperature=1.0, max_tokens=12)
    torch.manual_seed(0)
    first, second = (engine.generate(["Hello"], unseeded)[0][0].token_ids for _ in range(2))
    assert first != second
    state = torch.random.get_rng_state()
    engine.generate(["Hello"], SamplingParams(temperature=1.0, max_tokens=4, seed=5))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_top_k_one_and_tiny_top_p_reduce_to_greedy(engine):
    greedy = [c[0].token_ids for c in engine.generate(PROMPTS, GREEDY)]
    top_k = SamplingParams(temperature=1.0, top_k=1, max_tokens=8, seed=0)
    top_p = SamplingParams(temperature=1.0, top_p=1e-6, max_tokens=8, seed=0)
    assert [c[0].token_ids for c in engine.generate(PROMPTS, top_k)] == greedy
    assert [c[0].token_ids for c in engine.generate(PROMPTS, top_p)] == greedy


def test_eos_ends_a_row_and_the_rest_of_the_batch_keeps_going(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    probe = TransformersEngine(model, tokenizer)
    first_tokens = [c[0].token_ids[0] for c in probe.generate(PROMPTS, GREEDY)]
    eos = first_tokens[0]
    assert eos not in first_tokens[1:]  # the tiny model's greedy starts differ for these prompts
    model.generation_config.eos_token_id = eos
    out = TransformersEngine(model, tokenizer).generate(PROMPTS, GREEDY)
    assert out[0][0].token_ids == [eos] and out[0][0].finish_reason == "stop"
    assert out[1][0].token_ids[0] != eos and eos not in out[1][0].token_ids[:-1]


def test_stop_strings_cut_the_text_and_end_generation(engine):
    params = SamplingParams(temperature=1.0, max_tokens=24, seed=3)
    free = engine.generate(["Hello"], params)[0][0]
    stop = free.text[5:8]
    assert len(stop) == 3 and stop.strip()
    stopped = engine.generate(
        ["Hello"], SamplingParams(temperature=1.0, max_tokens=24, seed=3, stop=(stop,))
    )[0][0]
    assert stopped.text == free.text[: free.text.index(stop)]
    assert stopped.finish_reason == "stop"
    assert len(stopped.token_ids) < len(free.token_ids)


def test_live_model_train_mode_is_restored(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    engine = TransformersEngine(model, tokenizer, model_name="policy")
    assert engine.model_name == "policy"
    model.train()
    engine.generate(["Hello"], GREEDY)
    assert model.training
    model.eval()
    engine.generate(["Hello"], GREEDY)
    assert not model.training


def test_in_memory_model_needs_a_tokenizer(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with pytest.raises(TypeError, match="tokenizer"):
        TransformersEngine(model)
    with pytest.raises(ValueError, match="batch_size"):
        TransformersEngine(model, AutoTokenizer.from_pretrained(tiny_model_dir), batch_size=0)


def test_think_tags_survive_decoding_and_eos_is_kept_in_token_ids(engine):
    # The tiny tokenizer registers <think> as a special token; grading needs to see it in the text.
    ids = engine.tokenizer("<think>\nLow TSH.\n</think>\n\nB", add_special_tokens=False)["input_ids"]
    eos = engine.eos_token_ids[0]
    completion = engine._to_completion(
        [*ids, eos, engine.pad_token_id], SamplingParams(max_tokens=len(ids) + 2)
    )
    assert completion.text == "<think>\nLow TSH.\n</think>\n\nB"
    assert completion.token_ids == [*ids, eos] and completion.finish_reason == "stop"


def test_only_the_sampling_params_decide_not_the_models_generation_defaults(tiny_model_dir, engine):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    defaults = model.generation_config
    defaults.update(do_sample=True, top_k=1, repetition_penalty=5.0, max_new_tokens=2)
    params = SamplingParams(temperature=1.0, max_tokens=12, n=3, seed=7)
    expected = [c.token_ids for c in engine.generate(["Hello"], params)[0]]
    assert [
        c.token_ids for c in TransformersEngine(model, tokenizer).generate(["Hello"], params)[0]
    ] == expected
    assert model.generation_config is defaults and defaults.top_k == 1  # restored afterwards
