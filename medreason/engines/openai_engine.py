"""Generation through an OpenAI-compatible HTTP server (``vllm serve``, SGLang, TGI, a hosted API).

Requests run concurrently with at most ``max_concurrency`` in flight per :meth:`OpenAIEngine.generate`
call, on one event loop and a few pooled ``httpx.AsyncClient`` s that the engine keeps for its
lifetime (:mod:`medreason.engines.http_loop`), so threads calling ``generate`` at once (the synthesis
runner, the judges) share connections instead of each building a client. 429s,
5xx errors, timeouts and dropped connections are retried with exponential back-off and full jitter
(``uniform(0, min(backoff_max, backoff_base * 2**attempt))``, or the server's ``Retry-After``);
other 4xx errors fail at once with the server's message. Chat prompts go to ``/chat/completions``,
text prompts to ``/completions`` (``endpoint="auto"``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import certifi
import httpx

from medreason.data.chat_templates import THINK_CLOSE, THINK_OPEN
from medreason.engines.base import Completion, GenerationEngine, Prompt, SamplingParams
from medreason.engines.http_loop import ClientShards, LoopThread
from medreason.utils.logging import get_logger

logger = get_logger(__name__)
# httpx logs every request at INFO: thousands of lines per judged benchmark; keep its warnings only
logging.getLogger("httpx").setLevel(max(logging.getLogger("httpx").level, logging.WARNING))

_RETRY_STATUS = {408, 409, 425, 429}
_ENDPOINTS = ("auto", "chat", "completions")


class OpenAIEngine(GenerationEngine):
    """A :class:`GenerationEngine` that calls an OpenAI-compatible server.

    Args:
        model: The served model name (``--served-model-name``; by default the hub id it was started with).
        base_url: The server's API root, e.g. ``http://127.0.0.1:8000/v1``.
        api_key: Bearer token; default ``$OPENAI_API_KEY`` or ``"EMPTY"`` (local servers ignore it).
        endpoint: ``"chat"``, ``"completions"`` or ``"auto"`` (chat for message prompts, completions for text).
        max_concurrency: Most requests in flight at once.
        timeout: Seconds allowed per request (long reasoning traces need minutes).
        max_retries: Retries per request after the first attempt.
        backoff_base: First back-off ceiling in seconds; doubles each retry.
        backoff_max: Largest back-off ceiling in seconds.
        extra_body: Extra fields sent with every request (e.g. ``{"chat_template_kwargs": {...}}``).

    A server that splits reasoning into ``reasoning_content`` (vLLM's reasoning parsers) gets it back
    as ``<think>…</think>`` before the answer, so grading sees the same layout as other engines.

    >>> engine = OpenAIEngine("Qwen/Qwen3-8B", base_url="http://127.0.0.1:8000/v1", max_concurrency=64)
    >>> engine.model_name
    'Qwen/Qwen3-8B'
    """

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key: str | None = None,
        endpoint: str = "auto",
        max_concurrency: int = 32,
        timeout: float = 600.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        extra_body: Mapping[str, Any] | None = None,
    ):
        if endpoint not in _ENDPOINTS:
            raise ValueError(
                f"OpenAIEngine endpoint must be one of {', '.join(_ENDPOINTS)}, got {endpoint!r}."
            )
        if max_concurrency < 1:
            raise ValueError(f"OpenAIEngine max_concurrency must be >= 1, got {max_concurrency}.")
        if max_retries < 0 or timeout <= 0:
            raise ValueError(
                f"OpenAIEngine needs max_retries >= 0 and timeout > 0, got {max_retries} and {timeout}."
            )
        self.model_name = str(model)
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY", "EMPTY")
        self.endpoint = endpoint
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.extra_body = dict(extra_body or {})
        self._loop = LoopThread(self._make_client, name=f"openai-{self.model_name}")

    def _make_client(self) -> ClientShards[httpx.AsyncClient]:
        # Called once per engine (on its loop thread): building clients and a TLS context costs ~50 ms
        # of CPU, which per request capped throughput at 64 in flight. Pools are not capped by
        # max_concurrency, because that bound is per generate() call and several threads may call.
        verify = ssl.create_default_context(cafile=certifi.where())
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=16)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        return ClientShards(
            lambda: httpx.AsyncClient(timeout=self.timeout, limits=limits, headers=headers, verify=verify),
            connections=max(64, self.max_concurrency),
        )

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        """Return ``sampling.n`` completions per prompt, in prompt order (requests run concurrently).

        Safe to call from several threads at once and from inside a running event loop (Jupyter):
        the requests run on the engine's own loop thread.
        """
        return self._loop.run(lambda client: self.agenerate(list(prompts), sampling, client))

    async def agenerate(
        self, prompts: Sequence[Prompt], sampling: SamplingParams, clients: ClientShards[httpx.AsyncClient]
    ) -> list[list[Completion]]:
        """The coroutine behind :meth:`generate`: the requests for ``prompts`` through ``clients``."""
        semaphore = asyncio.Semaphore(self.max_concurrency)

        async def one(prompt: Prompt) -> list[Completion]:
            async with semaphore, clients.lease() as client:
                return await self._request(client, prompt, sampling)

        return list(await asyncio.gather(*(one(prompt) for prompt in prompts)))

    def close(self) -> None:
        """Close the HTTP client and stop the engine's loop thread (a later call starts them again)."""
        self._loop.close()

    def _payload(self, prompt: Prompt, sampling: SamplingParams) -> tuple[str, dict[str, Any]]:
        chat = self.endpoint == "chat" or (self.endpoint == "auto" and not isinstance(prompt, str))
        if chat:
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
            path, body = "/chat/completions", {"messages": messages}
        else:
            if not isinstance(prompt, str):
                raise TypeError(
                    "OpenAIEngine(endpoint='completions') needs text prompts; use endpoint='auto' or 'chat' for messages."
                )
            path, body = "/completions", {"prompt": prompt}
        body.update(
            model=self.model_name,
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
        )
        if sampling.top_k != -1:
            body["top_k"] = sampling.top_k  # vLLM/SGLang extension
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        body.update(self.extra_body)
        return path, body

    async def _request(
        self, client: httpx.AsyncClient, prompt: Prompt, sampling: SamplingParams
    ) -> list[Completion]:
        path, body = self._payload(prompt, sampling)
        url = self.base_url + path
        attempt = 0
        while True:
            retry_after = None
            try:
                response = await client.post(url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 200:
                    return self._parse(response.json(), chat=path == "/chat/completions", url=url)
                problem = f"HTTP {response.status_code}: {response.text[:500]}"
                if response.status_code not in _RETRY_STATUS and response.status_code < 500:
                    raise RuntimeError(f"{url} rejected the request ({problem}).")
                retry_after = response.headers.get("retry-after")
            if attempt == self.max_retries:
                raise RuntimeError(
                    f"{url} failed after {self.max_retries + 1} attempts; last error: {problem}"
                )
            delay = random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))
            if retry_after is not None and retry_after.replace(".", "", 1).isdigit():
                delay = min(self.backoff_max, float(retry_after))
            logger.warning(
                "%s (attempt %d/%d); retrying in %.2fs.", problem, attempt + 1, self.max_retries + 1, delay
            )
            await asyncio.sleep(delay)
            attempt += 1

    @staticmethod
    def _parse(payload: dict[str, Any], chat: bool, url: str) -> list[Completion]:
        try:
            choices = sorted(payload["choices"], key=lambda choice: choice.get("index", 0))
            completions = []
            for choice in choices:
                if chat:
                    message = choice["message"]
                    text = message.get("content") or ""
                    reasoning = message.get("reasoning_content") or message.get("reasoning")
                    if reasoning:
                        text = f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{text}"
                else:
                    text = choice["text"]
                finish = "length" if choice.get("finish_reason") == "length" else "stop"
                completions.append(
                    Completion(text=text, token_ids=list(choice.get("token_ids") or []), finish_reason=finish)
                )
        except (KeyError, TypeError, AttributeError) as error:
            raise RuntimeError(
                f"{url} returned an unexpected response ({error!r}): {str(payload)[:300]}"
            ) from None
        return completions
