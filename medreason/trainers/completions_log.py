"""What DAPO's policy actually wrote: a bounded sample of prompt groups every ``log_completions_steps`` steps.

Each due step writes ``<output_dir>/completions/step-<N>.jsonl``, one line per sampled completion:
the prompt, the completion, every reward function's score and the weighted reward, the group-normalised
advantage, the length in tokens, whether it hit ``max_completion_length`` (``truncated``) or reached the
overlong buffer (``overlong``), and whether dynamic sampling kept its group. With a tracker on, the same
rows go to it under a per-step name, so a later step never overwrites an earlier one (TensorBoard:
a markdown text entry at that step; Weights & Biases: a table ``completions/step_<N>``).

Why our own rather than TRL's ``log_completions``: TRL keeps one rolling table of the last batch and
logs no advantage of dropped groups; DAPO's question is *which* groups dynamic sampling dropped and why,
so every sampled group is logged with its ``kept`` flag, whether or not it was trained on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object

from medreason.trainers.dapo_loss import group_advantages
from medreason.trainers.dynamic_sampling import nonconstant_groups

COMPLETIONS_DIR = "completions"
FIELDS = ("step", "group", "prompt", "completion", "rewards", "reward", "advantage", "length", "truncated",
          "overlong", "kept")
"""The keys of every line of a ``completions/step-N.jsonl`` file."""


class CompletionsLog:
    """Samples up to ``max_groups`` prompt groups of a due step and writes them (main process) and to trackers.

    Args:
        accelerator: The trainer's accelerator (its trackers receive the tables; rows are gathered over ranks).
        output_dir: The stage directory; files go to ``output_dir/completions/``.
        every_steps: Log at steps that divide by this; 0 turns the log off.
        max_groups: Prompt groups logged per step, over all ranks (each rank contributes at most this many).
        reward_names: Names of the reward functions, in the order their scores arrive.
        overlong_start: Responses at least this long are in the overlong buffer
            (``max_completion_length - overlong_buffer_length``).
        advantage_eps: The ε of ``(R - mean) / (std + ε)``, as in training.

    >>> from accelerate import Accelerator
    >>> import tempfile
    >>> log = CompletionsLog(Accelerator(cpu=True), tempfile.mkdtemp(), every_steps=2, max_groups=1,
    ...                      reward_names=["format"], overlong_start=8, advantage_eps=1e-6)
    >>> log.due(1), log.due(2)
    (False, True)
    """

    def __init__(self, accelerator: Accelerator, output_dir: str | Path, every_steps: int, max_groups: int,
                 reward_names: Sequence[str], overlong_start: int, advantage_eps: float):
        self.accelerator = accelerator
        self.directory = Path(output_dir) / COMPLETIONS_DIR
        self.every_steps = every_steps
        self.max_groups = max_groups
        self.reward_names = list(reward_names)
        self.overlong_start = overlong_start
        self.advantage_eps = advantage_eps
        self._rows: list[dict[str, Any]] = []
        self._groups = 0

    def due(self, step: int) -> bool:
        """Whether training step ``step`` (1-based) is logged."""
        return self.every_steps > 0 and step % self.every_steps == 0

    def add_round(
        self, step: int, prompts: Sequence[Any], completions: Sequence[str], per_function: Sequence[Sequence[float | None]],
        rewards: torch.Tensor, filter_values: torch.Tensor, lengths: Sequence[int], truncated: Sequence[bool],
    ) -> None:
        """Keep this rank's groups of one generation round until ``max_groups`` are held (no-op unless due).

        Args:
            step: The step being collected (1-based).
            prompts: One prompt per group (text or chat messages).
            completions, lengths, truncated: Per response, groups of ``len(completions) / len(prompts)`` in a row.
            per_function: Each reward function's scores (``None`` = skipped).
            rewards: The weighted reward per response (``NaN`` = skipped by every function).
            filter_values: What dynamic sampling filters on; a group with no spread in it is dropped.
        """
        if not self.due(step) or self._groups >= self.max_groups or not prompts:
            return
        size = len(completions) // len(prompts)
        advantages = group_advantages(rewards.float(), size, self.advantage_eps).tolist()
        kept = nonconstant_groups(filter_values, size).tolist()
        for group, prompt in enumerate(prompts[: self.max_groups - self._groups]):
            for i in range(group * size, (group + 1) * size):
                reward = float(rewards[i])
                self._rows.append({
                    "step": step, "group": self._groups, "prompt": prompt, "completion": completions[i],
                    "rewards": {name: scores[i] for name, scores in zip(self.reward_names, per_function, strict=True)},
                    "reward": None if math.isnan(reward) else reward,
                    "advantage": None if math.isnan(advantages[i]) else advantages[i],
                    "length": int(lengths[i]), "truncated": bool(truncated[i]),
                    "overlong": int(lengths[i]) >= self.overlong_start, "kept": bool(kept[group]),
                })
            self._groups += 1

    def flush(self, step: int) -> Path | None:
        """Gather the step's rows over ranks, keep ``max_groups`` groups, write them; return the file (main process).

        Every rank must call this at every step (it gathers when the step is due).
        """
        if not self.due(step):
            return None
        rows, self._rows, self._groups = self._rows, [], 0
        gathered = gather_object([rows]) if self.accelerator.num_processes > 1 else [rows]
        if not self.accelerator.is_main_process:
            return None
        merged, seen = [], 0
        for rank_rows in gathered:  # renumber groups over ranks and stop at max_groups
            groups = sorted({row["group"] for row in rank_rows})[: max(self.max_groups - seen, 0)]
            renumber = {group: seen + k for k, group in enumerate(groups)}
            merged += [{**row, "group": renumber[row["group"]]} for row in rank_rows if row["group"] in renumber]
            seen += len(groups)
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"step-{step}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for row in merged:
                handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        self._to_trackers(step, merged)
        return path

    def _to_trackers(self, step: int, rows: list[dict[str, Any]]) -> None:
        columns = [name for name in FIELDS if name != "rewards"] + [f"rewards/{name}" for name in self.reward_names]
        table = [[_cell(row[name]) for name in columns if not name.startswith("rewards/")]
                 + [_cell(row["rewards"][name]) for name in self.reward_names] for row in rows]
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
                body = "\n".join("| " + " | ".join(_markdown(cell) for cell in line) + " |" for line in table)
                tracker.writer.add_text("completions", header + "\n" + body, global_step=step)
            elif tracker.name == "wandb":
                tracker.log_table(f"completions/step_{step}", columns=columns, data=table, step=step)


def _cell(value: Any) -> Any:
    """A table cell: chat prompts become their last message's text; other values stay as they are."""
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content", value))
    return value


def _markdown(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", "<br>")
