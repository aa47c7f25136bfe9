"""The published hyper-parameters of each model card: one table per recipe, the only place tests state them.

Keys are attribute paths on the objects a dry run builds (``validate_run_config``): a training stage's
trainer config, an eval stage's ``EvalConfig``; ``curriculum.X`` is the SFT stage's curriculum entry
(``config.stages[0].X``); ``model.X`` is the run's model block.
"""

# II-Medical-7B-Preview card, "For RL stage we setup training with"; the 8B card states the same pipeline.
II_MEDICAL_RL = {
    "max_prompt_length": 2048, "max_completion_length": 12288, "overlong_buffer_length": 4096,
    "overlong_penalty_factor": 1.0, "clip_ratio_low": 0.2, "clip_ratio_high": 0.28, "train_prompt_batch_size": 512,
    "gen_prompt_batch_size": 1536, "mini_batch_size": 32, "num_generations": 16, "temperature": 1.0, "top_p": 1.0,
    "top_k": -1, "learning_rate": 1e-6, "warmup_steps": 10, "weight_decay": 0.1, "loss_agg_mode": "token-mean",
    "max_grad_norm": 1.0, "entropy_coeff": 0.0, "kl_coef": 0.0, "dynamic_sampling": True, "rollout_backend": "vllm",
    "rewards": ["mcq_accuracy", "overlong"],
}
# II-Medical cards: "Recommended Sampling Parameters: temperature = 0.6, top_p = 0.9".
CARD_SAMPLING = {"sampling.temperature": 0.6, "sampling.top_p": 0.9, "engine.backend": "vllm"}
FINEMED_SFT = {"max_length": 1024, "warmup_steps": 0.1, "lr_scheduler_type": "cosine", "weight_decay": 0.01,
               "bf16": True, "optim": "adamw_torch", "curriculum.eval_fraction": 0.1}

CARDS = {
    "ii_medical_8b": {
        "model": {"name_or_path": "Qwen/Qwen3-8B"},
        "sft": {"max_length": 16378, "global_batch_size": 128, "learning_rate": 5e-5, "num_train_epochs": 8},
        "dapo": II_MEDICAL_RL,
        "eval": {"suite": "ii_medical", **CARD_SAMPLING},
    },
    "ii_medical_7b_preview": {
        "model": {"name_or_path": "Qwen/Qwen2.5-7B-Instruct"},
        "sft": {"max_length": 16378, "global_batch_size": 128, "learning_rate": 5e-5, "num_train_epochs": 4},
        "dapo": II_MEDICAL_RL,
        "eval": {"suite": "ii_medical", **CARD_SAMPLING},
    },
    "reasonmed_7b": {
        "model": {"name_or_path": "Qwen/Qwen2.5-7B"},
        "sft": {"num_train_epochs": 3, "data_format": "question_cot_response", "data_target": "think_response"},
        "eval": {"suite": "reasonmed", **CARD_SAMPLING},
    },
    "finemedlm_o1": {
        "model": {"name_or_path": "meta-llama/Llama-3.1-8B", "config_overrides.attention_dropout": 0.1},
        "sft_all": {**FINEMED_SFT, "learning_rate": 3e-5, "num_train_epochs": 2, "global_batch_size": 256,
                    "curriculum.max_samples": 200000, "curriculum.filter": None},
        "sft_internal_medicine": {**FINEMED_SFT, "learning_rate": 5e-6, "num_train_epochs": 2, "global_batch_size": 128,
                                  "curriculum.max_samples": 36000,
                                  "curriculum.filter": {"department": "Internal Medicine"}},
        "sft_endocrinology": {**FINEMED_SFT, "learning_rate": 5e-6, "num_train_epochs": 1, "global_batch_size": 128,
                              "curriculum.max_samples": 11000, "curriculum.filter": {"subdepartment": "Endocrinology"}},
        "o1_sft": {"learning_rate": 5e-7, "num_train_epochs": 2, "global_batch_size": 64, "max_length": 8192,
                   "curriculum.max_samples": 17000},
        "dpo": {"beta": 0.1, "num_train_epochs": 1, "learning_rate": 5e-7, "global_batch_size": 64, "max_length": 8192},
        "eval": {"suite": "finemedlm", **CARD_SAMPLING},
        # Test-time training (section 3.3) with the o1 SFT stage's hyper-parameters.
        "eval_ttt": {"suite": "finemedlm", "engine.backend": "transformers", "ttt.k": 1, "ttt.mode": "full",
                     "ttt.encoder": "BAAI/bge-large-en-v1.5", "ttt.learning_rate": 5e-7, "ttt.epochs": 2,
                     "ttt.max_length": 8192, "ttt.weight_decay": 0.01},
    },
}
