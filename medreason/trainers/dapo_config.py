"""Configuration of :class:`~medreason.trainers.DAPOTrainer`, with the II-Medical-7B-Preview card as reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

from medreason.eval.in_training import BenchmarkEvalArguments
from medreason.trainers.config_checks import check_training_config, reject_ignored_fields
from medreason.trainers.dapo_loss import LOSS_AGG_MODES
from medreason.trainers.peft_adapters import peft_settings
from medreason.utils.config_errors import FieldError

ROLLOUT_BACKENDS = ("transformers", "vllm", "vllm_server")

USED_TRAINING_ARGUMENTS = (
    "output_dir", "learning_rate", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "warmup_steps",
    "lr_scheduler_type", "lr_scheduler_kwargs", "max_grad_norm", "max_steps", "num_train_epochs", "seed",
    "logging_steps", "save_steps", "save_total_limit", "report_to", "run_name", "activation_checkpointing",
    "gradient_checkpointing", "bf16", "use_cpu", "eval_steps",
    # set by launchers, read by accelerate from the environment
    "local_rank",
    # gloo for DeepSpeed and FSDP on CPU; use_configured_state for FSDP on CPU (medreason.utils.launch)
    "ddp_backend", "accelerator_config",
)
"""The ``TrainingArguments`` fields :class:`DAPOTrainer` reads; setting any other one is an error."""

IGNORED_FIELD_HINTS = {
    "per_device_train_batch_size": "DAPO batches prompt groups: set train_prompt_batch_size, mini_batch_size and "
    "micro_batch_token_budget",
    "per_device_eval_batch_size": "evaluate with an eval stage after the dapo stage",
    "gradient_accumulation_steps": "accumulation follows from mini_batch_size and micro_batch_token_budget",
    "optim": "DAPO always uses torch AdamW; tune adam_beta1, adam_beta2, adam_epsilon and weight_decay",
    "eval_strategy": "evaluate with an eval stage after the dapo stage",
    "push_to_hub": "push the stage's final/ directory after the run",
    "use_liger_kernel": "DAPO computes its own log-probs and does not patch the model",
    "fp16": "use bf16=true (fp16 loss scaling is not implemented)",
    "deepspeed": "launch with an accelerate config (accelerate/zero3_8gpu.yaml) instead",
    "fsdp": "launch with an accelerate config (accelerate/fsdp2_8gpu.yaml) instead",
    "fsdp_config": "launch with an accelerate config (accelerate/fsdp2_8gpu.yaml) instead",
}


@dataclass
class DAPOConfig(BenchmarkEvalArguments, TrainingArguments):
    r"""Settings of a DAPO run. Defaults not marked otherwise are the II-Medical-7B-Preview card's RL stage.

    Subclasses :class:`transformers.TrainingArguments` (the base of every TRL config) rather than
    ``trl.GRPOConfig``: :class:`DAPOTrainer` runs its own loop, and most of GRPOConfig's ~100 fields
    (``steps_per_generation``, vLLM importance-sampling correction, ...) would be silently ignored.
    From TrainingArguments the trainer uses ``output_dir``, ``learning_rate``, ``weight_decay``,
    ``adam_beta1/2``, ``adam_epsilon``, ``warmup_steps``, ``lr_scheduler_type``, ``max_grad_norm``,
    ``max_steps``, ``num_train_epochs``, ``seed``, ``logging_steps``, ``save_steps``, ``save_total_limit``,
    ``report_to``, ``run_name``, ``activation_checkpointing`` (on by default), ``bf16`` and ``use_cpu``. Batch sizes come
    from the fields below, not from ``per_device_train_batch_size``/``gradient_accumulation_steps``.

    One *training step* = generate until ``train_prompt_batch_size`` prompt groups with reward variance are
    collected, then ``train_prompt_batch_size / mini_batch_size`` optimizer updates on them (card: 512 / 32 =
    16 updates of 32 × 16 = 512 responses), each update accumulated over micro-batches of at most
    ``micro_batch_token_budget`` padded tokens. The LR schedule (and warm-up) advances once per training
    step, as in verl.

    Parameters:
        > Generation (card: vLLM rollout, temperature 1.0, top-p 1.0, top-k -1)

        max_prompt_length (`int`, defaults to `2048`): Prompts with more tokens are dropped from the data (with a warning).
        max_completion_length (`int`, defaults to `12288`): Most tokens per response ("max response length").
        num_generations (`int`, defaults to `16`): Responses sampled per prompt (the group size ``G``).
        temperature (`float`, defaults to `1.0`), top_p (`float`, defaults to `1.0`), top_k (`int`, defaults to `-1`):
            Sampling settings; log-probs for the loss use the same temperature.
        rollout_backend (`str`, defaults to `"transformers"`): ``"transformers"`` (``generate`` on the live
            policy; CPU and tests), ``"vllm"`` (colocated :class:`~medreason.engines.vllm_engine.VLLMEngine`
            per rank; weights pushed after every step) or ``"vllm_server"`` (a separate server, below).
            Used by the ``dapo`` recipe stage.
        transformers_generation_batch_size (`int`, defaults to `64`): Sequences per ``generate`` call of the
            transformers engine.
        vllm_tensor_parallel_size (`int`, defaults to `1`), vllm_gpu_memory_utilization (`float`, defaults to `0.3`):
            Colocated vLLM settings; the share of GPU memory left to training is ``1 - utilization``.
        vllm_server_base_url (`str`), vllm_server_group_port (`int`), vllm_server_timeout (`float`): With
            ``rollout_backend="vllm_server"``: a ``trl vllm-serve`` server on other GPUs generates, and
            the main process streams the new weights to it after every step
            (:class:`~medreason.engines.vllm_server_engine.VLLMServerEngine`).
        vllm_sleep_mode (`bool`, defaults to `False`): Put colocated vLLM to sleep (weights offloaded, KV
            cache freed) while the policy trains, and wake it before the weight push; frees vLLM's share
            of GPU memory for the update (CUDA only).
        weight_sync_bucket_mb (`float`, defaults to `1024`): After every step the policy's weights reach the
            engine in buckets of at most this many MiB, each gathered on every rank (FSDP2) and loaded
            before the next: memory grows by one bucket, not by a copy of the model.

        > Batching and dynamic sampling

        train_prompt_batch_size (`int`, defaults to `512`): Prompt groups per training step, over all ranks.
        gen_prompt_batch_size (`int`, defaults to `1536`): Prompts per generation round, over all ranks.
        mini_batch_size (`int`, defaults to `32`): Prompt groups per optimizer update.
        dynamic_sampling (`bool`, defaults to `True`): Drop groups whose ``filter_groups_metric`` is constant.
        filter_groups_metric (`str`, defaults to `"reward"`): ``"reward"`` (the final weighted reward) or the
            name of one reward function, e.g. ``"mcq_accuracy"`` (the DAPO paper filters on accuracy).
        max_num_gen_batches (`int` or `None`, defaults to `10`): Generation rounds allowed per step before
            failing with :class:`~medreason.trainers.dynamic_sampling.DynamicSamplingError`; ``None`` (``null``)
            means no limit, which loops forever on data whose prompt groups never vary in reward.
        overlap_rewards (`bool`, defaults to `True`): Generate the next round while this round's rewards (judge
            requests) are in flight, whenever the next round is certain to be needed (the groups kept so far plus
            this whole round cannot fill the batch). Same rollouts, rewards and budgets as ``False``; only the
            waiting overlaps (:mod:`~medreason.trainers.reward_rounds`).
        micro_batch_token_budget (`int`, defaults to `28672`): Padded tokens (prompt + response; real tokens with
            ``padding_free``) per forward pass and device; bounds memory regardless of batch sizes (default:
            two full-length sequences).
        fused_logprobs (`bool`, defaults to `True`): Compute log-probs and entropy from the last hidden states and
            the LM head ``logprob_chunk_size`` positions at a time, recomputing each chunk in the backward pass
            (:mod:`medreason.utils.fused_logprobs`): no ``[tokens x vocab]`` logits. ``False``: the dense path.
        logprob_chunk_size (`int`, defaults to `1024`): Positions whose float32 logits exist at once.
        padding_free (`bool`, defaults to `False`): Pack each micro-batch's sequences back to back in one row,
            with no padding (``position_ids`` restart per sequence; transformers masks across them), so the
            budget counts real tokens only. Use it with ``attn_implementation: flash_attention_2`` (varlen
            kernels); with ``sdpa``/``eager`` transformers builds a dense block-diagonal mask per pass.

        > Loss (card: clip 0.2 / 0.28, token-mean, entropy coefficient 0)

        clip_ratio_low (`float`, defaults to `0.2`), clip_ratio_high (`float`, defaults to `0.28`): ``ε_low``, ``ε_high``.
        clip_ratio_c (`float` or `None`, defaults to `None`): Dual-clip constant (> 1, verl uses 3.0); off by default.
        loss_agg_mode (`str`, defaults to `"token-mean"`): One of ``token-mean``, ``seq-mean-token-mean``, ``seq-mean-token-sum``.
        kl_coef (`float`, defaults to `0.0`): Weight of a k3 KL penalty to the initial policy; DAPO uses none.
        entropy_coeff (`float`, defaults to `0.0`): Entropy bonus weight; entropy is logged either way.
        advantage_eps (`float`, defaults to `1e-6`): ``ε`` in ``(R - mean) / (std + ε)``.

        > Adapters

        peft (`dict` or `None`, defaults to `None`): Train a LoRA adapter (QLoRA with ``load_in_4bit``) instead of all
            weights, as the fields of :class:`~medreason.trainers.peft_adapters.PeftSettings`. Only the adapter is
            trained; with ``kl_coef > 0`` the reference is the base model with the adapter disabled (no second copy);
            vLLM engines get the merged weights after every step; ``final/`` holds the merged model and
            ``final/adapter`` the adapter.

        > Rewards (card: overlong buffer 4,096 with factor 1.0)

        rewards (`list[str]`, defaults to `["mcq_accuracy", "overlong"]`): Registered names or dotted paths.
        reward_weights (`list[float]` or `None`, defaults to `None`): One weight per reward; default all 1.0.
        reward_kwargs (`dict[str, dict]` or `None`, defaults to `None`): Settings of rewards that take some, by
            reward name, e.g. ``{"rubric_judge": {"judge": {"model": ..., "base_url": ...}, "cache_dir": ...}}``.
        overlong_buffer_length (`int`, defaults to `4096`): Soft overlong buffer ``L_cache`` used by the
            ``overlong`` reward; 0 turns shaping off (then drop ``overlong`` from ``rewards``).
        overlong_penalty_factor (`float`, defaults to `1.0`): Penalty at ``max_completion_length``.
        mask_truncated_completions (`bool`, defaults to `False`): Leave truncated responses out of the loss.
        truncation_warning_threshold (`float`, defaults to `0.1`): Warn when more responses than this are truncated.

        > Observing training

        log_completions_steps (`int`, defaults to `10`): Every this many steps write a sample of prompt groups
            (completions, per-reward scores, advantages, lengths) to ``completions/step-N.jsonl`` and the
            trackers (:mod:`~medreason.trainers.completions_log`); 0 turns it off.
        log_completions_groups (`int`, defaults to `4`): Prompt groups in that sample (bounds its size).
        eval_steps (`int`, *optional*): With ``eval_benchmarks``, evaluate them every this many steps through the
            rollout engine (:class:`~medreason.eval.in_training.BenchmarkEvalArguments`; main process).

    >>> config = DAPOConfig(output_dir="/tmp/dapo", use_cpu=True, train_prompt_batch_size=4, gen_prompt_batch_size=8,
    ...                     mini_batch_size=2, num_generations=4)
    >>> config.train_prompt_batch_size // config.mini_batch_size   # optimizer updates per training step
    2
    """

    # Card values for fields TrainingArguments already has.
    learning_rate: float = field(default=1e-6, metadata={"help": "Peak AdamW learning rate (card: 1e-6)."})
    warmup_steps: float = field(default=10, metadata={"help": "Warm-up training steps (card: 10)."})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay, on all parameters as in verl (card: 0.1)."})
    lr_scheduler_type: str = field(
        default="constant_with_warmup", metadata={"help": "LR schedule after warm-up (verl's default: constant)."}
    )
    logging_steps: float = field(default=1, metadata={"help": "Log metrics every this many training steps."})
    save_steps: float = field(default=20, metadata={"help": "Checkpoint every this many training steps."})
    activation_checkpointing: bool | None = field(
        default=True, metadata={"help": "Recompute activations in the backward pass (long responses)."}
    )

    max_prompt_length: int = field(default=2048, metadata={"help": "Longest prompt in tokens; longer ones are dropped."})
    max_completion_length: int = field(default=12288, metadata={"help": "Most tokens per response."})
    num_generations: int = field(default=16, metadata={"help": "Responses per prompt (group size)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass; 1.0 disables it."})
    top_k: int = field(default=-1, metadata={"help": "Top-k cut-off; -1 disables it."})
    rollout_backend: str = field(
        default="transformers", metadata={"help": "'transformers', 'vllm' (colocated) or 'vllm_server'."}
    )
    transformers_generation_batch_size: int = field(
        default=64, metadata={"help": "Sequences per generate() call of the transformers engine."}
    )
    vllm_tensor_parallel_size: int = field(default=1, metadata={"help": "Tensor parallel size of colocated vLLM."})
    vllm_gpu_memory_utilization: float = field(
        default=0.3, metadata={"help": "Share of GPU memory colocated vLLM may claim."}
    )
    vllm_sleep_mode: bool = field(
        default=False, metadata={"help": "Sleep colocated vLLM while the policy trains (CUDA only)."}
    )
    vllm_server_base_url: str = field(
        default="http://127.0.0.1:8000", metadata={"help": "Server mode: the trl vllm-serve server's root URL."}
    )
    vllm_server_group_port: int = field(default=51216, metadata={"help": "Server mode: NCCL weight-update port."})
    vllm_server_timeout: float = field(default=240.0, metadata={"help": "Server mode: seconds to wait for the server."})
    weight_sync_bucket_mb: float = field(
        default=1024.0, metadata={"help": "MiB of weights gathered and pushed to the rollout engine at a time."}
    )

    train_prompt_batch_size: int = field(default=512, metadata={"help": "Prompt groups per training step."})
    gen_prompt_batch_size: int = field(default=1536, metadata={"help": "Prompts per generation round."})
    mini_batch_size: int = field(default=32, metadata={"help": "Prompt groups per optimizer update."})
    dynamic_sampling: bool = field(default=True, metadata={"help": "Drop prompt groups without reward variance."})
    filter_groups_metric: str = field(
        default="reward", metadata={"help": "'reward' or a reward function's name to filter groups on."}
    )
    max_num_gen_batches: int | None = field(
        default=10, metadata={"help": "Generation rounds per step before failing (>= 1); null = no limit."}
    )
    overlap_rewards: bool = field(
        default=True, metadata={"help": "Generate a certainly-needed next round while this round's judge requests are out."}
    )
    micro_batch_token_budget: int = field(
        default=28672, metadata={"help": "Padded (padding_free: real) tokens per forward/backward micro-batch and device."}
    )
    fused_logprobs: bool = field(
        default=True,
        metadata={"help": "Log-probs and entropy from hidden states and LM head, logprob_chunk_size positions at a time, "
                          "recomputed in backward: no [tokens x vocab] logits (medreason.utils.fused_logprobs)."},
    )
    logprob_chunk_size: int = field(
        default=1024, metadata={"help": "Positions whose float32 logits exist at once (1024 x 152k vocab: 0.6 GB)."}
    )
    padding_free: bool = field(
        default=False, metadata={"help": "Pack micro-batches without padding (best with flash_attention_2)."}
    )

    clip_ratio_low: float = field(default=0.2, metadata={"help": "Lower clip range eps_low."})
    clip_ratio_high: float = field(default=0.28, metadata={"help": "Upper clip range eps_high (clip-higher)."})
    clip_ratio_c: float | None = field(default=None, metadata={"help": "Dual-clip constant (> 1) or None."})
    loss_agg_mode: str = field(default="token-mean", metadata={"help": f"One of {', '.join(LOSS_AGG_MODES)}."})
    kl_coef: float = field(default=0.0, metadata={"help": "k3 KL penalty weight against the initial policy."})
    entropy_coeff: float = field(default=0.0, metadata={"help": "Entropy bonus weight (entropy is always logged)."})
    advantage_eps: float = field(default=1e-6, metadata={"help": "Epsilon in the group-normalised advantage."})

    peft: dict[str, Any] | None = field(
        default=None,
        metadata={"help": "A LoRA/QLoRA adapter: {r, lora_alpha, lora_dropout, target_modules, use_dora, load_in_4bit} "
                          "(medreason.trainers.peft_adapters.PeftSettings); null trains all weights. The reference policy is then the base with the adapter off."},
    )
    rewards: list[str] = field(
        default_factory=lambda: ["mcq_accuracy", "overlong"],
        metadata={"help": "Reward names (see medreason.rewards.available_rewards()) or dotted paths."},
    )
    reward_weights: list[float] | None = field(default=None, metadata={"help": "One weight per reward (default 1.0)."})
    reward_kwargs: dict[str, dict[str, Any]] | None = field(
        default=None, metadata={"help": "Settings by reward name (judge rewards: judge, cache_dir, max_calls_per_step)."}
    )
    overlong_buffer_length: int = field(default=4096, metadata={"help": "Overlong buffer length; 0 disables shaping."})
    overlong_penalty_factor: float = field(default=1.0, metadata={"help": "Overlong penalty at max_completion_length."})
    mask_truncated_completions: bool = field(
        default=False, metadata={"help": "Exclude truncated responses from the loss."}
    )
    truncation_warning_threshold: float = field(
        default=0.1, metadata={"help": "Warn when the truncated fraction of responses exceeds this."}
    )
    log_completions_steps: int = field(
        default=10, metadata={"help": "Write a sample of completions every this many steps (0: never)."}
    )
    log_completions_groups: int = field(default=4, metadata={"help": "Prompt groups per completions sample."})

    def __post_init__(self) -> None:
        check_training_config(
            self,
            {"num_generations": 2, "train_prompt_batch_size": 1, "gen_prompt_batch_size": 1, "mini_batch_size": 1,
             "max_completion_length": 1, "max_prompt_length": 1, "micro_batch_token_budget": 1,
             "transformers_generation_batch_size": 1, "logprob_chunk_size": 1, "weight_sync_bucket_mb": 0,
             "temperature": 0, "log_completions_steps": 0, "log_completions_groups": 1},
            exclusive=("weight_sync_bucket_mb", "temperature"),
        )
        if self.max_num_gen_batches is not None and self.max_num_gen_batches < 1:
            raise FieldError(
                "max_num_gen_batches", self.max_num_gen_batches,
                "must be >= 1 (card: 10); null means no limit, which loops forever when no prompt group varies in reward.",
            )
        self.check_benchmark_eval()
        if self.eval_benchmarks and (self.eval_steps is None or self.eval_steps < 1 or self.eval_steps != int(self.eval_steps)):
            raise FieldError("eval_steps", self.eval_steps, "must be a whole number of training steps >= 1 with eval_benchmarks.")
        if self.best_checkpoint_benchmark is not None:
            raise FieldError("best_checkpoint_benchmark", self.best_checkpoint_benchmark,
                             "is not supported by DAPO (its final/ is the last step's policy); set it on SFT or DPO stages.")
        settings = peft_settings(self.peft)
        if settings is not None and settings.use_dora and self.rollout_backend != "transformers":
            raise FieldError("peft.use_dora", True, f"rollout_backend={self.rollout_backend!r} loads merged weights after "
                             "every step, and a DoRA adapter does not merge as W + BA: set use_dora=false, or "
                             "rollout_backend=transformers.")
        reject_ignored_fields(self, TrainingArguments, [*USED_TRAINING_ARGUMENTS, *_own_fields()], IGNORED_FIELD_HINTS)
        super().__post_init__()
        for name in ("save_steps", "logging_steps"):
            if getattr(self, name) < 1 or getattr(self, name) != int(getattr(self, name)):
                raise FieldError(name, getattr(self, name), "must be a whole number of training steps >= 1 for DAPO.")
        if self.rollout_backend not in ROLLOUT_BACKENDS:
            raise FieldError("rollout_backend", self.rollout_backend, f"must be one of {ROLLOUT_BACKENDS}.")
        if self.train_prompt_batch_size % self.mini_batch_size != 0:
            raise ValueError(
                f"train_prompt_batch_size ({self.train_prompt_batch_size}) must be a multiple of mini_batch_size "
                f"({self.mini_batch_size}): each optimizer update takes a full mini-batch of prompt groups."
            )
        if not self.dynamic_sampling and self.gen_prompt_batch_size < self.train_prompt_batch_size:
            raise ValueError(
                f"gen_prompt_batch_size ({self.gen_prompt_batch_size}) < train_prompt_batch_size "
                f"({self.train_prompt_batch_size}) with dynamic_sampling=False: set them equal, or enable dynamic sampling."
            )
        if self.loss_agg_mode not in LOSS_AGG_MODES:
            raise FieldError("loss_agg_mode", self.loss_agg_mode, f"must be one of {', '.join(LOSS_AGG_MODES)}.")
        if self.clip_ratio_c is not None and self.clip_ratio_c <= 1.0:
            raise FieldError("clip_ratio_c", self.clip_ratio_c, "must be > 1.0 (verl uses 3.0) or null.")
        if not 0 <= self.overlong_buffer_length < self.max_completion_length:
            raise ValueError(
                f"overlong_buffer_length ({self.overlong_buffer_length}) must be in [0, max_completion_length="
                f"{self.max_completion_length}); the card uses 4096 of 12288."
            )
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(
                f"reward_weights has {len(self.reward_weights)} entries for {len(self.rewards)} rewards {self.rewards}; "
                "give one weight per reward or leave reward_weights unset."
            )
        if not self.rewards:
            raise ValueError("rewards is empty: name at least one reward, e.g. rewards=['mcq_accuracy'].")
        unused = sorted(set(self.reward_kwargs or {}) - set(self.rewards))
        if unused:
            raise FieldError("reward_kwargs", unused, f"names rewards that are not in rewards={self.rewards}.")


def _own_fields() -> list[str]:
    """The fields :class:`DAPOConfig` adds or redefines (all of them are read)."""
    return [name for name in DAPOConfig.__annotations__]
