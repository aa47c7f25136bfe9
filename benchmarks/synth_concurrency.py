"""Requests per second of our OpenAI-compatible client against a loopback server with 200 ms latency, vs concurrency.

Every request goes the full production path: :class:`~medreason.synth.runner.SynthRunner` (cache
lookup, thread pool, append + flush of each answer to the JSONL cache, strict parsing) →
:class:`~medreason.engines.openai_engine.OpenAIEngine` (httpx) → :class:`~medreason.testing.openai_server.FakeLLMServer`
(started as a separate process on 127.0.0.1), which sleeps ``--latency`` seconds per request. The ideal is ``concurrency / latency`` requests/s
(320/s at 64 × 200 ms); the efficiency column is the measured share of it. The client's CPU time
per request (this process: client, runner and cache writes) is reported too: on a shared machine
it varies far less than the rates, and it is what caps the rate once the CPU is the bottleneck.

The baseline, measured in the same run against the same server, is a *bare* async httpx client:
one event loop, one ``httpx.AsyncClient``, ``concurrency`` requests in flight, nothing else. Our
client is measured three ways, each reported as a ratio to the bare client: *engine* (one
``OpenAIEngine.generate`` call for all prompts with ``max_concurrency=concurrency``: how the rubric
judge calls it), *per-request* (the synthesis runner with ``concurrency`` threads, ``batch_size=1``:
each answer is cached the moment it arrives) and *chunked* (``--workers`` runner threads each sending
``concurrency / workers`` prompts per engine call). All threads share the engine's one event loop and
connection pool (``medreason/engines/http_loop.py``).

    python benchmarks/synth_concurrency.py
    python benchmarks/synth_concurrency.py --concurrency 1 4 16 64 128 --latency 0.2 --rounds 6
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time

from medreason.engines import SamplingParams, build_engine
from medreason.synth.parsing import parse_text
from medreason.synth.runner import Call, Role, SynthRunner


def measure_bare(base_url: str, concurrency: int, requests: int) -> float:
    """Requests per second of a bare ``httpx.AsyncClient`` with ``concurrency`` requests in flight."""
    import httpx

    async def run() -> float:
        semaphore = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:

            async def one(i: int) -> None:
                body = {"model": "bench", "messages": [{"role": "user", "content": f"request {i}"}], "max_tokens": 16}
                async with semaphore:
                    response = await client.post(base_url + "/chat/completions", json=body)
                response.raise_for_status()
                response.json()

            started = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(requests)))
            return requests / (time.perf_counter() - started)

    return asyncio.run(run())


def measure_engine(base_url: str, concurrency: int, requests: int) -> float:
    """Requests per second of one ``OpenAIEngine.generate`` call over ``requests`` prompts."""
    with build_engine("openai", model="bench", base_url=base_url, timeout=30.0, max_concurrency=concurrency) as engine:
        prompts = [[{"role": "user", "content": f"request {i}"}] for i in range(requests)]
        engine.generate(prompts[:1], SamplingParams(max_tokens=16))  # the loop and client start once per engine
        started = time.perf_counter()
        engine.generate(prompts, SamplingParams(max_tokens=16))
        return requests / (time.perf_counter() - started)


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
    engine.close()
    if len(answered) != requests:
        raise RuntimeError(f"only {len(answered)} of {requests} requests succeeded: {runner.failures[:3]}")
    return requests / elapsed


MODES = ("bare-httpx", "engine", "per-request", "chunked")


def layout(mode: str, concurrency: int, workers: int) -> tuple[int, int]:
    """(threads, prompts per engine call) of ``mode`` at ``concurrency`` requests in flight."""
    if mode in ("bare-httpx", "engine"):
        return 1, concurrency
    threads = concurrency if mode == "per-request" else min(concurrency, workers)
    return threads, concurrency // threads


def measure_mode(mode: str, base_url: str, concurrency: int, workers: int, requests: int) -> float:
    """Requests per second of ``mode`` (one of :data:`MODES`)."""
    if mode == "bare-httpx":
        return measure_bare(base_url, concurrency, requests)
    if mode == "engine":
        return measure_engine(base_url, concurrency, requests)
    threads, batch_size = layout(mode, concurrency, workers)
    return measure(base_url, threads, batch_size, requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server waits per request")
    parser.add_argument("--rounds", type=int, default=4, help="requests per in-flight slot")
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        help="chunked mode: threads sending concurrency/workers prompts each",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per mode; the median is reported")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES, help="modes to measure (bare-httpx always runs)")
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
        for concurrency in args.concurrency:
            requests = args.rounds * concurrency
            ideal = concurrency / args.latency
            # modes alternate within each repeat, so a busy machine slows each alike; medians are reported
            modes = ["bare-httpx", *(mode for mode in args.modes if mode != "bare-httpx")]
            rates: dict[str, list[float]] = {mode: [] for mode in modes}
            cpu: dict[str, list[float]] = {mode: [] for mode in modes}
            for _ in range(args.repeats):
                for mode in modes:
                    cpu_started = time.process_time()
                    rates[mode].append(measure_mode(mode, base_url, concurrency, args.workers, requests))
                    cpu[mode].append((time.process_time() - cpu_started) / requests * 1000)
            bare = statistics.median(rates["bare-httpx"])
            for mode in modes:
                workers, batch_size = layout(mode, concurrency, args.workers)
                rate = statistics.median(rates[mode])
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
                        "vs_bare": round(rate / bare, 3),
                        "client_cpu_ms_per_request": round(statistics.median(cpu[mode]), 2),
                    }
                )
    finally:
        server.terminate()
        server.wait()
    print(
        f"{'mode':>12} {'in flight':>9} {'workers':>7} {'batch':>5} {'requests':>8} {'req/s':>8} {'ideal':>7} "
        f"{'eff.':>6} {'vs bare':>7} {'cpu ms/req':>10}"
    )
    for row in rows:
        print(
            f"{row['mode']:>12} {row['concurrency']:>9} {row['workers']:>7} {row['batch_size']:>5} "
            f"{row['requests']:>8} {row['requests_per_s']:>8} {row['ideal_per_s']:>7} {row['efficiency']:>6.1%} "
            f"{row['vs_bare']:>7.2f} {row['client_cpu_ms_per_request']:>10}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
