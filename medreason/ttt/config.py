"""Settings of test-time training (TTT): what to retrieve, how to adapt, where to cache embeddings."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field

from medreason.data.records import FORMATS

MODES = ("full", "lora")


@dataclass(frozen=True)
class TTTConfig:
    """How :class:`~medreason.ttt.TestTimeTrainer` retrieves, adapts and restores per question.

    The defaults are the FineMedLM-o1 card (arXiv:2501.09213, section 3.3): retrieve the single most
    similar long-form reasoning instance with bge-large-en-v1.5 and train on it "using the same
    hyperparameters as FineMedLM-o1", i.e. its o1 SFT stage: AdamW, learning rate 5e-7, 2 epochs,
    weight decay 0.01, max length 8192 (``recipes/finemedlm_o1.yaml``, ``stages.o1_sft``).

    > Parameters that control retrieval

    Args:
        k: Nearest corpus examples to train on per question (card: 1).
        min_similarity: Cosine floor; neighbours below it are dropped, and a question with none left
            is answered without adaptation. ``None`` keeps the ``k`` nearest whatever their score.
        encoder: sentence-transformers model id or path (card: ``BAAI/bge-large-en-v1.5``). It also
            keys the embedding cache, so it must name the encoder object when one is passed in.
        encoder_device: Device of the encoder; default sentence-transformers' choice.
        embedding_cache_dir: Folder for corpus embeddings, keyed by encoder and corpus fingerprint
            (computed once, reused across runs); ``None`` keeps them in memory only.
        use_faiss: Search with faiss' exact ``IndexFlatIP`` instead of a torch matmul (needs
            ``faiss-cpu``/``faiss-gpu``); worth it only for corpora of millions of rows.

    > Parameters that control adaptation

    Args:
        mode: ``"full"`` (the paper: every parameter trains, then is restored from an in-place
            snapshot) or ``"lora"`` (a fresh LoRA adapter per question, removed with ``unload()``).
        learning_rate: AdamW learning rate of full mode (card: 5e-7, the o1 SFT stage's).
        lora_learning_rate: AdamW learning rate of LoRA mode. LoRA's B matrix starts at zero, so
            5e-7 would leave the adapter at almost nothing; 1e-4 is the usual LoRA SFT rate.
        epochs: Passes over the retrieved example(s) (card: 2).
        steps: Optimizer steps per question; overrides ``epochs`` when set (cycles the examples).
        batch_size: Retrieved examples per optimizer step (with ``k=1`` every step sees the one example).
        max_length: Tokens of prompt + answer kept per example, the rest cut from the right (card: 8192).
        weight_decay: AdamW decoupled weight decay (card: 0.01).
        max_grad_norm: Gradient-norm clip (HF Trainer's default 1.0); ``None`` disables it.
        lora_rank: LoRA rank ``r``.
        lora_alpha: LoRA scaling numerator (scale = alpha / rank); 2 x rank is the usual choice.
        lora_dropout: Dropout on the LoRA input.
        lora_target_modules: Module names to adapt, or ``"all-linear"`` (every linear layer but the head).
        seed: Seeds each LoRA adapter's initialisation, so every question's adapter starts the same.

    > Parameters that control data and generation

    Args:
        record_format: Shape of the corpus records (see :data:`medreason.data.records.FORMATS`) or ``"auto"``.
        generation_batch_size: Prompts per ``generate`` call of the inner transformers engine.

    >>> TTTConfig().learning_rate, TTTConfig().k, TTTConfig().epochs, TTTConfig().max_length
    (5e-07, 1, 2, 8192)
    >>> TTTConfig(mode="qlora")
    Traceback (most recent call last):
    ...
    ValueError: TTTConfig.mode='qlora' is not a TTT mode; choose one of ('full', 'lora').
    """

    k: int = field(default=1, metadata={"help": "Nearest corpus examples per question (card: 1)."})
    min_similarity: float | None = field(default=None, metadata={"help": "Cosine floor for neighbours."})
    encoder: str = field(
        default="BAAI/bge-large-en-v1.5", metadata={"help": "sentence-transformers id/path."}
    )
    encoder_device: str | None = field(default=None, metadata={"help": "Device of the encoder."})
    embedding_cache_dir: str | None = field(
        default="~/.cache/medreason/ttt", metadata={"help": "Corpus embedding cache; None: memory only."}
    )
    use_faiss: bool = field(default=False, metadata={"help": "Exact search with faiss IndexFlatIP."})
    mode: str = field(default="full", metadata={"help": "'full' (the paper) or 'lora'."})
    learning_rate: float = field(default=5e-7, metadata={"help": "Full-mode AdamW LR (card: 5e-7)."})
    lora_learning_rate: float = field(default=1e-4, metadata={"help": "LoRA-mode AdamW LR."})
    epochs: int = field(default=2, metadata={"help": "Passes over the retrieved example(s) (card: 2)."})
    steps: int | None = field(default=None, metadata={"help": "Optimizer steps; overrides epochs."})
    batch_size: int = field(default=1, metadata={"help": "Retrieved examples per optimizer step."})
    max_length: int = field(default=8192, metadata={"help": "Tokens per example (card: 8192)."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay (card: 0.01)."})
    max_grad_norm: float | None = field(default=1.0, metadata={"help": "Gradient clip; None disables."})
    lora_rank: int = field(default=16, metadata={"help": "LoRA rank r."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale alpha / r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: str | tuple[str, ...] = field(
        default="all-linear", metadata={"help": "Modules to adapt, or 'all-linear'."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of each LoRA adapter's initialisation."})
    record_format: str = field(default="auto", metadata={"help": "Corpus record shape or 'auto'."})
    generation_batch_size: int = field(default=8, metadata={"help": "Prompts per generate call."})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"TTTConfig.mode={self.mode!r} is not a TTT mode; choose one of {MODES}.")
        if self.record_format != "auto" and self.record_format not in FORMATS:
            raise ValueError(
                f"TTTConfig.record_format={self.record_format!r} is not a record format; "
                f"choose 'auto' or one of {FORMATS}."
            )
        values = asdict(self)
        for name in ("k", "epochs", "batch_size", "max_length", "lora_rank", "generation_batch_size"):
            if values[name] < 1:
                raise ValueError(f"TTTConfig.{name} must be >= 1, got {values[name]}.")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"TTTConfig.steps must be >= 1 or None (use epochs), got {self.steps}.")
        for name in ("learning_rate", "lora_learning_rate"):
            if values[name] <= 0:
                raise ValueError(f"TTTConfig.{name} must be > 0, got {values[name]}.")
        if self.min_similarity is not None and not -1 <= self.min_similarity <= 1:
            raise ValueError(
                f"TTTConfig.min_similarity={self.min_similarity} is not a cosine similarity; use a value "
                "in [-1, 1] or None for no floor."
            )
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ValueError(f"TTTConfig.max_grad_norm must be > 0 or None, got {self.max_grad_norm}.")
        object.__setattr__(self, "encoder", os.fspath(self.encoder))  # a Path from get_model_path() works too
        if not isinstance(self.lora_target_modules, str):  # Hydra passes ListConfig/list
            object.__setattr__(self, "lora_target_modules", tuple(self.lora_target_modules))

    @property
    def active_learning_rate(self) -> float:
        """The learning rate of the configured mode."""
        return self.learning_rate if self.mode == "full" else self.lora_learning_rate

    def fingerprint(self) -> str:
        """A short hash of everything that changes what TTT generates (it keys evaluation caches).

        >>> TTTConfig().fingerprint() == TTTConfig(generation_batch_size=2).fingerprint()
        True
        """
        relevant = {
            key: value
            for key, value in asdict(self).items()
            if key not in ("encoder_device", "embedding_cache_dir", "use_faiss", "generation_batch_size")
        }
        return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:10]
