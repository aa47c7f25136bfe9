import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from medreason.testing.openai_server import send_json


def default_reply(body: dict[str, Any], index: int) -> str:
    return "<think>Considering each option.</think>\nThe answer is \\boxed{A}."


class FakeOpenAIServer(ThreadingHTTPServer):
    """A minimal OpenAI-compatible server on 127.0.0.1 with scripted failures, for tests.

    Attributes set by tests: ``failures`` (status codes or "sleep" for the first requests),
    ``reply(body, index) -> str``, ``reasoning`` (split <think> into reasoning_content),
    ``gate`` (hold each request until this many are in flight, or 0.5 s pass).
    """

    daemon_threads = True
    max_requests = 500  # a runaway client fails the test instead of looping forever

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.failures: list[int | str] = []
        self.reply: Callable[[dict[str, Any], int], str] = default_reply
        self.reasoning = False
        self.gate = 0
        self.sleep_seconds = 1.0
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.condition = threading.Condition()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAIServer

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        send_json(self, status, payload, headers)

    def do_POST(self) -> None:
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.condition:
            server.bodies.append((self.path, body))
            failure = server.failures.pop(0) if server.failures else None
            if len(server.bodies) > server.max_requests:
                failure = 400
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
            server.condition.notify_all()
            if server.gate:
                server.condition.wait_for(lambda: server.in_flight >= server.gate, timeout=0.5)
        try:
            if failure == "sleep":
                time.sleep(server.sleep_seconds)
            elif failure is not None:
                self._send(
                    failure,
                    {"error": {"message": f"scripted {failure}"}},
                    {"Retry-After": "0"} if failure == 429 else None,
                )
                return
            chat = self.path == "/v1/chat/completions"
            if not chat and self.path != "/v1/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            choices = []
            for index in range(body.get("n", 1)):
                text = server.reply(body, index)
                if chat:
                    message = {"role": "assistant", "content": text}
                    if server.reasoning and "</think>" in text:
                        thinking, answer = text.split("</think>", 1)
                        message = {
                            "role": "assistant",
                            "reasoning_content": thinking.replace("<think>", ""),
                            "content": answer,
                        }
                    choices.append({"index": index, "message": message, "finish_reason": "stop"})
                else:
                    choices.append({"index": index, "text": text, "finish_reason": "length"})
            self._send(
                200, {"object": "chat.completion" if chat else "text_completion", "choices": choices[::-1]}
            )
        finally:
            with server.condition:
                server.in_flight -= 1


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    """A fake OpenAI-compatible server on a free loopback port, shut down after the test."""
    server = FakeOpenAIServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
