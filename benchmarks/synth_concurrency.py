"""Requests per second of the synthesis runner against a loopback server with 200 ms latency, vs concurrency.

Every request goes the full production path: :class:`~medreason.synth.runner.SynthRunner` (cache
lookup, thread pool, append + flush of each answer to the JSONL cache, strict parsing) →
:class:`~medreason.engines.openai_engine.OpenAIEngine` (httpx) → :class:`~medreason.testing.openai_server.FakeLLMServer`
(started as a separate process on 127.0.0.1), which sleeps ``--latency`` seconds per request. The ideal is ``concurrency / latency`` requests/s
(320/s at 64 × 200 ms); the efficiency column is the measured share of it.

Two ways to keep ``concurrency`` requests in flight are measured: *per-request* (``concurrency``
threads, ``batch_size=1``: each answer is cached the moment it arrives) and *chunked* (``--workers``
threads each sending ``concurrency / workers`` prompts per engine call). Each
``OpenAIEngine.generate`` call builds an httpx client, reusing the engine's one TLS context.

    python benchmarks/synth_concurrency.py
    python benchmarks/synth_concurrency.py --concurrency 1 4 16 64 128 --latency 0.2 --rounds 6
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

from medreason.engines import SamplingParams, build_engine
from medreason.synth.parsing import parse_text
from medreason.synth.runner import Call, Role, SynthRunner


def measure(base_url: str, workers: int, batch_size: int, requests: int) -> float:
    """Requests per second for ``requests`` fresh (uncached) calls, ``workers × batch_size`` in flight."""
    engine = build_engine(
        "openai", model="bench", base_url=base_url, timeout=30.0, max_concurrency=batch_size
    )
    role = Role.for_engine(
        "bench", engine, "openai", SamplingParams(max_tokens=16), concurrency=workers, batch_size=batch_size
    )
    calls = [Call(str(i), [{"role": "user", "content": f"request {i}"}]) for i in range(requests)]
    with tempfile.TemporaryDirectory() as output:
        runner = SynthRunner(output, progress=False)
        started = time.perf_counter()
        answered = runner.run("bench", role, calls, lambda completions, call: parse_text(completions[0]))
        elapsed = time.perf_counter() - started
    if len(answered) != requests:
        raise RuntimeError(f"only {len(answered)} of {requests} requests succeeded: {runner.failures[:3]}")
    return requests / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server waits per request")
    parser.add_argument("--rounds", type=int, default=4, help="requests per in-flight slot")
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        help="chunked mode: threads sending concurrency/workers prompts each",
    )
    args = parser.parse_args()

    rows = []
    # the server runs in its own process, so its request handling does not compete for this one's GIL
    server = subprocess.Popen(
        [sys.executable, "-m", "medreason.testing.openai_server", "--latency", str(args.latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = server.stdout.readline().strip()
        for mode in ("per-request", "chunked"):
            for concurrency in args.concurrency:
                workers = concurrency if mode == "per-request" else min(concurrency, args.workers)
                batch_size = concurrency // workers
                requests = args.rounds * concurrency
                rate = measure(base_url, workers, batch_size, requests)
                ideal = concurrency / args.latency
                rows.append(
                    {
                        "mode": mode,
                        "concurrency": concurrency,
                        "workers": workers,
                        "batch_size": batch_size,
                        "requests": requests,
                        "requests_per_s": round(rate, 1),
                        "ideal_per_s": round(ideal, 1),
                        "efficiency": round(rate / ideal, 3),
                    }
                )
    finally:
        server.terminate()
        server.wait()
    print(
        f"{'mode':>12} {'in flight':>9} {'workers':>7} {'batch':>5} {'requests':>8} {'req/s':>8} {'ideal':>7} {'eff.':>6}"
    )
    for row in rows:
        print(
            f"{row['mode']:>12} {row['concurrency']:>9} {row['workers']:>7} {row['batch_size']:>5} "
            f"{row['requests']:>8} {row['requests_per_s']:>8} {row['ideal_per_s']:>7} {row['efficiency']:>6.1%}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
