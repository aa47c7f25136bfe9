"""The ``dapo`` stage kind: data block -> prompts, train, final model, completion marker."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

from medreason.stage_context import COMPLETE_MARKER, StageContext, StageSpec
from medreason.tasks.prompts import II_MEDICAL_INSTRUCTION, PromptTemplate
from medreason.testing import tiny_records
from medreason.trainers.dapo_stage import dapo_stage_config, mcq_prompts, run_dapo_stage
from medreason.utils.jsonl import RecordError, write_jsonl


def _context(tmp_path, model_dir, data_path) -> StageContext:
    trainer = dict(
        use_cpu=True, bf16=False, max_steps=1, num_generations=2, train_prompt_batch_size=2, gen_prompt_batch_size=2,
        mini_batch_size=1, max_completion_length=8, overlong_buffer_length=4, dynamic_sampling=False,
        rewards=["mcq_accuracy", "format", "overlong"], learning_rate=1e-3, save_steps=100,
    )
    run_cfg = OmegaConf.create({
        "run_name": "tiny_dapo", "seed": 0,
        "model": {"dtype": "float32", "attn_implementation": None, "config_overrides": {}, "chat_template": None},
        "trainer": {"learning_rate": None, "max_steps": None},
        "stages": {"dapo": {"kind": "dapo", "data": {"path": str(data_path), "builtin": None, "split": "train",
                                                     "column_map": {}, "system_prompt": None},
                            "trainer": trainer}},
    })
    return StageContext(
        name="dapo", kind="dapo", cfg=run_cfg.stages.dapo, model_path=str(model_dir), reference_path=None,
        output_dir=tmp_path / "dapo", resume=False, seed=0, run_cfg=run_cfg,
        config=dapo_stage_config(StageSpec("dapo", trainer, run_cfg.stages.dapo.data, tmp_path / "dapo", run_cfg)),
    )


@pytest.fixture
def one_thread():
    """The tiny model is ~10x faster on one thread than on two contended ones (shared CI machines)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_run_dapo_stage_writes_a_loadable_final_model(tmp_path, tiny_model_dir, one_thread):
    model_dir = tiny_model_dir
    data_path = tmp_path / "train.jsonl"
    records = tiny_records(4)
    write_jsonl(data_path, [{"question": r["question"], "options": r["options"], "answer": r["answer"]} for r in records])
    context = _context(tmp_path, model_dir, data_path)

    final_dir = run_dapo_stage(context)

    assert final_dir == context.final_dir
    AutoModelForCausalLM.from_pretrained(final_dir)
    marker = json.loads((context.output_dir / COMPLETE_MARKER).read_text())
    assert marker["metrics"]["global_step"] == 1 and "rewards/mcq_accuracy" in marker["metrics"]
    assert (context.output_dir / "metrics.jsonl").is_file()


def test_mcq_prompts_use_the_eval_template_and_validate_records():
    record = {"question": "Which gland?", "options": {"A": "Thyroid", "B": "Adrenal"}, "answer": "A"}
    (row,) = mcq_prompts([record], ["line 1"], "train.jsonl", PromptTemplate())
    assert row["prompt"][-1]["content"].endswith(II_MEDICAL_INSTRUCTION)
    assert row["answer"] == "A" and row["options"] == record["options"]
    with pytest.raises(RecordError, match="line 3.*answer"):
        mcq_prompts([{**record, "answer": "E"}], ["line 3"], "train.jsonl", PromptTemplate())


def test_mcq_prompts_list_the_options_once():
    record = {key: tiny_records(1)[0][key] for key in ("question", "options", "answer")}  # options inside the question
    (row,) = mcq_prompts([record], ["line 1"], "train.jsonl", PromptTemplate())
    content = row["prompt"][-1]["content"]
    assert all(content.count(f"{key}. {text}") == 1 for key, text in record["options"].items())


def test_rubric_records_become_prompt_and_rubrics_rows_beside_mcq_rows():
    from medreason.testing.tiny_rubric import tiny_rubric_records

    mcq = {"question": "Which gland?", "options": {"A": "Thyroid", "B": "Adrenal"}, "answer": "A"}
    rubric = tiny_rubric_records(1)[0]
    first, second = mcq_prompts([mcq, rubric], ["line 1", "line 2"], "mixed.jsonl", PromptTemplate())
    assert first["answer"] == "A" and "rubrics" not in first
    assert second == {"prompt": rubric["prompt"], "rubrics": [{**item, "points": float(item["points"])} for item in rubric["rubrics"]]}
    with pytest.raises(RecordError, match="line 2, field 'rubrics'"):
        mcq_prompts([mcq, {**rubric, "rubrics": []}], ["line 1", "line 2"], "mixed.jsonl", PromptTemplate())
