"""What the GPU kit runs: every measurement as one process of an existing benchmark script, with its cap.

Cheap sections come first and DAPO (the longest: 4k- and 8k-token rollouts) last, so a run that hits the
kit's overall budget still reports everything before it. ``compare_to`` names the baseline run in the
same section; the report divides the ``ratio_keys`` figures of the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field

QWEN3_VOCAB = "151936"  # Qwen3-0.6B's vocabulary: its embedding and logits, as in the real model


@dataclass(frozen=True)
class Run:
    """One benchmark process of the kit.

    Args:
        section: Report section (``sft``, ``dpo``, ``dapo``, ``ttt``, ``eval``, ``grading``).
        label: Row name, unique in the section.
        script: Script under ``benchmarks/``.
        argv: Its arguments (a ``--variant`` run prints one JSON line; the others print JSON last).
        cap_s: Seconds before the process is killed (the kit's overall deadline can cut it shorter).
        compare_to: Label of the baseline run of the same section, if any.
        ratio_keys: Figures divided by the baseline's (this run / baseline).
    """

    section: str
    label: str
    script: str
    argv: tuple[str, ...]
    cap_s: float
    compare_to: str | None = None
    ratio_keys: tuple[str, ...] = field(default=())


def build_plan(device: str, smoke: bool, peak_tflops: float | None) -> list[Run]:
    """The runs of one kit call: real shapes on a GPU, tiny shapes in seconds with ``smoke``."""
    cuda = ("--device", device)
    if smoke:  # the tiny test model, a few tokens: the same code paths, in seconds
        model, sft_lengths, dpo_length, dapo_lengths = ("--shape", "tiny"), (128,), 512, (16,)
        sft = ("--batch", "2", "--steps", "2", "--packing")
        dpo = ("--batch", "1", "--steps", "2")
        dapo = ("--gen-prompts", "2", "--num-generations", "4", "--steps", "1", "--warmup-steps", "0")
        ttt = ("--questions", "1", "--max-length", "1024", "--max-new-tokens", "8", "--corpus-size", "16")
        evaluation = ("--items", "8", "--max-tokens", "8", "--batch-size", "4", "--baseline-items", "2")
        grading, caps = ("--seconds", "0.05"), {"sft": 120, "dpo": 120, "dapo": 120, "ttt": 120, "eval": 120, "grading": 60}
    else:
        # Qwen3-0.6B's shape and vocabulary, bf16, activation checkpointing: the card's long sequences.
        model, sft_lengths, dpo_length, dapo_lengths = ("--shape", "qwen3-0.6b", "--vocab-size", QWEN3_VOCAB), \
            (4096, 8192, 16384), 8192, (4096, 8192)
        sft = ("--batch", "1", "--steps", "10", "--packing", "--bf16", "--activation-checkpointing")
        dpo = ("--batch", "1", "--steps", "6", "--bf16", "--activation-checkpointing")
        # 2 prompts x 4 responses: a random model never stops early, so every response is max-tokens long
        # and one step is 4k/8k sequential decoding steps; one timed step, no warm-up, to fit the budget.
        dapo = ("--gen-prompts", "2", "--num-generations", "4", "--steps", "1", "--warmup-steps", "0", "--bf16",
                "--activation-checkpointing")
        ttt = ("--questions", "3", "--max-length", "4096", "--max-new-tokens", "128", "--threads", "8")
        evaluation = ("--items", "300", "--max-tokens", "32", "--batch-size", "100", "--baseline-items", "10")
        grading, caps = ("--seconds", "1"), {"sft": 75, "dpo": 75, "dapo": 200, "ttt": 120, "eval": 120, "grading": 60}
    mfu = ("--peak-tflops", str(peak_tflops)) if peak_tflops else ()
    runs = [
        Run("grading", "extract_choice vs rfind_boxed", "eval_extract_throughput.py", grading, caps["grading"]),
        Run("eval", "MedQA evaluate()", "eval_end_to_end.py", (*evaluation, *model, *cuda), caps["eval"]),
        Run("ttt", "TTT lora + full", "ttt_overhead.py",
            ("--shapes", model[1], *model[2:], "--encoder", "random-minilm", *ttt, *cuda), caps["ttt"]),
    ]
    for length in sft_lengths:
        argv = (*model, "--seq-len", str(length), *sft, *mfu, *cuda)
        runs.append(Run("sft", f"trl SFTTrainer {length}", "sft_throughput.py", ("--variant", "trl", *argv), caps["sft"]))
        runs.append(Run("sft", f"medreason {length}", "sft_throughput.py", ("--variant", "medreason", *argv),
                        caps["sft"], compare_to=f"trl SFTTrainer {length}",
                        ratio_keys=("tokens_per_s", "train_tokens_per_s", "peak_memory_gib")))
    argv = (*model, "--seq-len", str(dpo_length), *dpo, *cuda)
    runs.append(Run("dpo", f"live reference {dpo_length}", "dpo_reference_logprobs.py",
                    ("--variant", "live_reference", *argv), caps["dpo"]))
    runs.append(Run("dpo", f"precomputed reference {dpo_length}", "dpo_reference_logprobs.py",
                    ("--variant", "precomputed", *argv), caps["dpo"], compare_to=f"live reference {dpo_length}",
                    ratio_keys=("tokens_per_s", "peak_memory_gib")))
    for length in dapo_lengths:
        # One update per step on both sides (TRL's GRPOTrainer updates once per generation batch). Our log-prob
        # path is the one DAPOConfig selects by default (the row records padding_free and the micro-batch
        # budget); a fused log-prob option, once DAPOConfig has one, is passed to dapo_step_time.py here.
        argv = (*model, "--max-tokens", str(length), *dapo, "--mini-batch-size", "2", *cuda)
        runs.append(Run("dapo", f"trl GRPOTrainer(loss_type=dapo) {length}", "dapo_step_time.py",
                        ("--variant", "trl:2", *argv), caps["dapo"]))
        runs.append(Run("dapo", f"medreason DAPOTrainer {length}", "dapo_step_time.py",
                        ("--variant", "2:16384", *argv), caps["dapo"],
                        compare_to=f"trl GRPOTrainer(loss_type=dapo) {length}",
                        ratio_keys=("time/step", "time/generate", "time/train", "peak_memory_gib")))
    return runs
