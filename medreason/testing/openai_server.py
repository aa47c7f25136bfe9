"""A scriptable OpenAI-compatible server on the loopback address, for tests, benchmarks and dry runs.

It answers ``/v1/chat/completions`` and ``/v1/completions`` with whatever a ``responder`` function
returns for the request (deterministic per prompt if the function is), and can inject faults: an
HTTP status (429, 500, …) or a delay longer than the client's timeout. Every request is recorded, so
tests can count calls per prompt; ``latency`` delays every answer (the concurrency benchmark uses
200 ms); ``hold_after`` lets that many requests through and parks the rest until :meth:`FakeLLMServer.release`.

>>> with FakeLLMServer(lambda body, index: "pong") as server:
...     from medreason.engines import SamplingParams, build_engine
...     engine = build_engine("openai", model="fake", base_url=server.base_url)
...     engine.generate(["ping"], SamplingParams())[0][0].text
'pong'
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeLLMServer", "Fault", "prompt_of"]


@dataclass(frozen=True)
class Fault:
    """An injected failure: wait ``delay`` seconds, then answer HTTP ``status`` (``Retry-After: 0`` on 429).

    ``Fault(delay=5)`` is a hung request: a client with a shorter timeout gives up before the 504.
    """

    status: int = 504
    delay: float = 0.0


Responder = Callable[[dict[str, Any], int], "str | Fault"]


def prompt_of(body: dict[str, Any]) -> str:
    """The prompt text of a request body (the last message of a chat request)."""
    if "messages" in body:
        return str(body["messages"][-1]["content"])
    return str(body.get("prompt", ""))


class FakeLLMServer(ThreadingHTTPServer):
    """An OpenAI-compatible server on ``127.0.0.1`` and a free port, run in a background thread.

    Args:
        responder: ``(request body, choice index) -> answer text | Fault``; called once per choice
            (``n`` per request); a :class:`Fault` for choice 0 fails the whole request.
        latency: Seconds every request waits before it is answered.
        max_requests: Requests answered before the server refuses with HTTP 400 (stops runaway clients).
        hold_after: Let this many requests through, then park every later one until :meth:`release`.
    """

    daemon_threads = True
    request_queue_size = 256

    def __init__(
        self,
        responder: Responder,
        latency: float = 0.0,
        max_requests: int = 10_000,
        hold_after: int | None = None,
    ):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.responder = responder
        self.latency = latency
        self.max_requests = max_requests
        self.hold_after = hold_after
        self.requests: list[dict[str, Any]] = []
        self.answered = 0
        self.held = 0
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The API root to give an engine, ``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def release(self) -> None:
        """Let parked requests (and all later ones) through."""
        self.hold_after = None
        self._released.set()

    def __enter__(self) -> FakeLLMServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def send_json(
    handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    """Answer the request ``handler`` serves with ``payload`` as JSON (for test servers)."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


class _Handler(BaseHTTPRequestHandler):
    server: FakeLLMServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        send_json(self, status, payload, headers)

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server._lock:
            server.requests.append(body)
            refused = len(server.requests) > server.max_requests
            hold = server.hold_after is not None and len(server.requests) > server.hold_after
            server.held += hold
        if hold:
            server._released.wait()
        if refused:
            self._send(400, {"error": {"message": "FakeLLMServer.max_requests exceeded"}})
            return
        if server.latency:
            time.sleep(server.latency)
        chat = self.path.endswith("/chat/completions")
        if not chat and not self.path.endswith("/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        answers = [server.responder(body, index) for index in range(int(body.get("n", 1)))]
        if isinstance(answers[0], Fault):
            fault = answers[0]
            time.sleep(fault.delay)
            headers = {"Retry-After": "0"} if fault.status == 429 else None
            try:
                self._send(fault.status, {"error": {"message": f"scripted {fault.status}"}}, headers)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                pass
            return
        choices = []
        for index, text in enumerate(answers):
            text = text if isinstance(text, str) else ""
            if chat:
                choices.append(
                    {
                        "index": index,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                )
            else:
                choices.append({"index": index, "text": text, "finish_reason": "stop"})
        try:
            self._send(200, {"object": "chat.completion" if chat else "text_completion", "choices": choices})
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            return
        with server._lock:
            server.answered += 1


def main(argv: list[str] | None = None) -> None:
    """``python -m medreason.testing.openai_server [--latency S] [--reply TEXT]``: serve until killed.

    Prints the base URL on its first line, e.g. for a benchmark run in a separate process (so the
    server's request handling does not share the client's interpreter lock).
    """
    import argparse

    parser = argparse.ArgumentParser(description="A loopback OpenAI-compatible server with a fixed answer.")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds every request waits")
    parser.add_argument("--reply", default="ok", help="the answer text of every request")
    args = parser.parse_args(argv)
    reply = args.reply
    with FakeLLMServer(lambda body, index: reply, latency=args.latency, max_requests=10**9) as server:
        print(server.base_url, flush=True)  # noqa: T201 - the command's output is the URL
        threading.Event().wait()


if __name__ == "__main__":
    main()
