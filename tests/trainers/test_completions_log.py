"""DAPO's completions log: the stated fields, the stated steps, bounded size, and per-step tracker entries."""

import json
from pathlib import Path

import pytest

from medreason.testing import tiny_records
from medreason.trainers.completions_log import FIELDS
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_trainer import DAPOTrainer
from medreason.utils.config_errors import FieldError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n: int = 8) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": r["question"]}], "answer": r["answer"], "options": r["options"]}
            for r in tiny_records(n)]


def _args(output_dir: Path, **overrides) -> DAPOConfig:
    settings = dict(
        output_dir=str(output_dir), use_cpu=True, bf16=False, seed=0, max_steps=4, num_generations=3,
        train_prompt_batch_size=2, gen_prompt_batch_size=4, mini_batch_size=2, max_completion_length=8,
        overlong_buffer_length=3, rewards=["format", "overlong"], dynamic_sampling=False, learning_rate=1e-3,
        warmup_steps=0, save_steps=1000, logging_steps=1000, log_completions_steps=2, log_completions_groups=3,
    )
    settings.update(overrides)
    return DAPOConfig(**settings)


def test_completions_written_at_the_stated_steps_with_bounded_size(tiny_model_dir, tmp_path):
    trainer = DAPOTrainer(tiny_model_dir, _args(tmp_path, report_to=["tensorboard"]), _data())
    trainer.train()
    files = sorted(p.name for p in (tmp_path / "completions").iterdir())
    assert files == ["step-2.jsonl", "step-4.jsonl"]
    rows = [json.loads(line) for line in (tmp_path / "completions" / "step-4.jsonl").read_text().splitlines()]
    # 3 groups of 3 responses, though the step generated 4 groups
    assert len(rows) == 9 and sorted({row["group"] for row in rows}) == [0, 1, 2]
    for row in rows:
        assert tuple(row) == FIELDS and row["step"] == 4
        assert set(row["rewards"]) == {"format", "overlong"}
        assert row["prompt"][0]["role"] == "user" and isinstance(row["completion"], str)
        assert 0 <= row["length"] <= 8
        assert row["overlong"] == (row["length"] >= 5)
        assert row["truncated"] == (row["length"] == 8)
    for group in range(3):  # advantages are standardised within each group of 3
        advantages = [row["advantage"] for row in rows if row["group"] == group]
        rewards = [row["reward"] for row in rows if row["group"] == group]
        if len(set(rewards)) > 1:
            assert abs(sum(advantages)) < 1e-4
            assert max(advantages) == advantages[rewards.index(max(rewards))]
        else:
            assert advantages == [0.0] * 3
    # TensorBoard got one text entry per logged step, not one overwritten entry
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = next(tmp_path.rglob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(events), size_guidance={"tensors": 0})
    accumulator.Reload()
    tag = next(t for t in accumulator.Tags()["tensors"] if t.startswith("completions"))
    assert [event.step for event in accumulator.Tensors(tag)] == [2, 4]


def test_completions_log_off_writes_nothing(tiny_model_dir, tmp_path):
    DAPOTrainer(tiny_model_dir, _args(tmp_path, max_steps=1, log_completions_steps=0), _data()).train()
    assert not (tmp_path / "completions").exists()


def test_completions_log_sizes_are_validated(tmp_path):
    with pytest.raises(FieldError, match="log_completions_groups"):
        _args(tmp_path, log_completions_groups=0)
