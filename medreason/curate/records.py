"""Reasoning-trace records: one prompt, one reasoning trace, one final answer.

Public reasoning corpora come in three shapes, all read by :func:`parse_trace`:

* HuatuoGPT/ReasonMed fields ``{question, cot, response}`` (``prompt`` or ``problem`` may replace
  ``question``);
* open-r1 style ``{prompt, response}`` (or ``generation``) whose response holds
  ``<think>…</think>`` followed by the answer (the opening ``<think>`` may be missing, as in
  R1 outputs whose chat template adds it);
* chat ``messages``: the last user turn is the prompt, the final assistant turn holds the answer and
  its reasoning, either in ``reasoning_content`` or inline as ``<think>…</think>``.

A generation is *complete* when its reasoning closes and a non-empty final answer follows it
(II-Medical card, "Filtering for Complete Generation"); a record that says
``finish_reason: "length"`` is never complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medreason.data.chat_templates import ROLES, THINK_CLOSE, THINK_OPEN, format_reasoning
from medreason.utils.jsonl import RecordError, describe_value, iter_jsonl_lines, parse_jsonl_line
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

PROMPT_KEYS = ("question", "prompt", "problem")
RESPONSE_KEYS = ("response", "generation")
OUTPUT_FORMATS = ("fields", "messages")
ON_ERROR = ("raise", "skip")


@dataclass
class TraceRecord:
    """A reasoning sample in the one shape every curation step reads.

    Args:
        uid: Position in the curation run (unique across all sources of one run).
        id: The record's own ``id`` (or ``"<source>:<line>"`` when it has none).
        source: Dataset name: the record's ``source`` field, else the input file's stem.
        prompt: The user prompt.
        reasoning: The reasoning trace, or ``None`` when the record has none.
        answer: The final answer that follows the reasoning (may be empty).
        complete: Whether the reasoning closed and a final answer followed it.
        extra: The input's other fields (``answer`` letter, ``options``, …), written back on output.
    """

    uid: int
    id: str
    source: str
    prompt: str
    reasoning: str | None
    answer: str
    complete: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def response(self) -> str:
        """Reasoning and answer as one text, in medreason's ``<think>`` layout."""
        return format_reasoning(self.reasoning, self.answer)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_json` reads back."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TraceRecord:
        """Rebuild a record written by :meth:`to_json`."""
        return cls(**data)

    def to_output(self, output_format: str = "fields") -> dict[str, Any]:
        """The record as the SFT trainer reads it.

        ``"fields"`` gives ``{id, source, question, cot, response, …extra}`` (HuatuoGPT shape);
        ``"messages"`` gives chat ``messages`` whose assistant turn carries ``reasoning_content``.

        Raises:
            ValueError: ``output_format`` is not one of :data:`OUTPUT_FORMATS`.
        """
        if output_format == "fields":
            return {
                **self.extra,
                "id": self.id,
                "source": self.source,
                "question": self.prompt,
                "cot": self.reasoning or "",
                "response": self.answer,
            }
        if output_format == "messages":
            assistant = {"role": "assistant", "content": self.answer}
            if self.reasoning:
                assistant["reasoning_content"] = self.reasoning
            messages = [{"role": "user", "content": self.prompt}, assistant]
            return {**self.extra, "id": self.id, "source": self.source, "messages": messages}
        raise ValueError(f"output_format must be one of {list(OUTPUT_FORMATS)}, got {output_format!r}.")


def split_think(text: str) -> tuple[str | None, str, bool]:
    """Split a response into ``(reasoning, answer, closed)`` at the ``</think>`` tag.

    >>> split_think("<think>\\nTSH is low.\\n</think>\\n\\nB")
    ('TSH is low.', 'B', True)
    >>> split_think("<think>TSH is low, so")
    ('TSH is low, so', '', False)
    """
    stripped = text.strip()
    if THINK_CLOSE in stripped:
        reasoning, answer = stripped.split(THINK_CLOSE, 1)
        return reasoning.replace(THINK_OPEN, "", 1).strip(), answer.strip(), True
    if stripped.startswith(THINK_OPEN):
        return stripped[len(THINK_OPEN) :].strip(), "", False
    return None, stripped, False


def _text_field(
    record: dict[str, Any], keys: tuple[str, ...], where: tuple[str, str]
) -> tuple[str, str] | None:
    for key in keys:
        if key in record:
            value = record[key]
            if not isinstance(value, str):
                raise RecordError(*where, key, f"must be a string, got {describe_value(value)}.")
            return key, value
    return None


def _from_messages(messages: Any, where: tuple[str, str]) -> tuple[str, str | None, str, bool]:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise RecordError(*where, "messages", "expected a list of {role, content} objects.")
    for index, message in enumerate(messages):
        if not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            raise RecordError(
                *where, f"messages[{index}]", "every message needs string 'role' and 'content'."
            )
        if message["role"] not in ROLES:
            raise RecordError(*where, f"messages[{index}].role", f"must be one of {ROLES}, got {message['role']!r}.")
    last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last_assistant is None:
        raise RecordError(*where, "messages", "no assistant message: a reasoning sample needs a response.")
    users = [m for m in messages[:last_assistant] if m["role"] == "user"]
    if not users:
        raise RecordError(*where, "messages", "no user message before the final assistant message.")
    reply = messages[last_assistant]
    if isinstance(reply.get("reasoning_content"), str) and reply["reasoning_content"].strip():
        answer = reply["content"].strip()
        return users[-1]["content"], reply["reasoning_content"].strip(), answer, bool(answer)
    reasoning, answer, closed = split_think(reply["content"])
    return users[-1]["content"], reasoning, answer, closed and bool(answer)


def parse_trace(record: dict[str, Any], *, uid: int, source: str, position: str) -> TraceRecord:
    """Read one input record of any supported shape into a :class:`TraceRecord`.

    Args:
        record: The decoded JSON object.
        uid: The record's position in the run.
        source: File path (used in errors and, by its stem, as the default source name).
        position: ``"line N"``; with ``source`` it locates the record in errors.

    Raises:
        RecordError: no prompt field, a field of the wrong type, or unusable ``messages``.
    """
    where = (source, position)
    if "messages" in record:
        prompt, reasoning, answer, complete = _from_messages(record["messages"], where)
        prompt_key, used = "messages", {"messages"}
    else:
        prompt_field = _text_field(record, PROMPT_KEYS, where)
        if prompt_field is None:
            raise RecordError(
                *where, PROMPT_KEYS[0], f"missing: a record needs a prompt in one of {list(PROMPT_KEYS)} or 'messages'."
            )
        response_field = _text_field(record, RESPONSE_KEYS, where)
        response = response_field[1] if response_field else ""
        cot_field = _text_field(record, ("cot",), where)
        if cot_field is not None:
            reasoning, answer = cot_field[1].strip() or None, response.strip()
            complete = reasoning is not None and bool(answer)
        else:
            reasoning, answer, closed = split_think(response)
            complete = closed and bool(answer)
        prompt_key, prompt = prompt_field
        used = {prompt_key, "cot", *(r for r in RESPONSE_KEYS if r in record)}
    if not prompt.strip():
        raise RecordError(*where, prompt_key, "the prompt is empty.")
    if record.get("finish_reason") == "length":
        complete = False
    name = record.get("source") if isinstance(record.get("source"), str) else _stem(source)
    record_id = str(record["id"]) if "id" in record else f"{name}:{position.split()[-1]}"
    extra = {k: v for k, v in record.items() if k not in used and k not in ("id", "source")}
    return TraceRecord(uid, record_id, name, prompt, reasoning, answer, complete, extra)


def _stem(path: str) -> str:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return name.split(".", 1)[0] or name


class Rejects:
    """What happens to malformed input records: raised (``on_error="raise"``) or written to a file.

    With ``on_error="skip"`` every bad record goes to ``path`` as
    ``{"file", "position", "field", "problem", "raw"}`` and is logged; nothing disappears silently.

    Args:
        on_error: ``"raise"`` or ``"skip"``.
        path: The rejects JSONL file (required when skipping).

    Raises:
        ValueError: an unknown ``on_error``, or ``"skip"`` without a ``path``.
    """

    def __init__(self, on_error: str, path: str | os.PathLike | None = None):
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {list(ON_ERROR)}, got {on_error!r}.")
        if on_error == "skip" and path is None:
            raise ValueError("on_error='skip' needs a rejects file path.")
        self.on_error = on_error
        self.path = Path(path) if path is not None else None
        self.count = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")

    def handle(self, error: RecordError, raw: str) -> None:
        """Raise ``error``, or record it in the rejects file."""
        if self.on_error == "raise" or self.path is None:
            raise error
        self.count += 1
        logger.warning("Skipping malformed record (%s); see %s", error, self.path)
        row = {
            "file": error.source,
            "position": error.position,
            "field": error.field,
            "problem": error.problem,
            "raw": raw.rstrip("\n"),
        }
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_traces(
    path: str | os.PathLike, rejects: Rejects, first_uid: int = 0
) -> Iterator[tuple[dict[str, Any], TraceRecord]]:
    """Yield ``(raw record, parsed record)`` for each good line of a JSONL file; bad lines go to ``rejects``.

    Parsed records get consecutive ``uid`` values from ``first_uid``. A line that is not UTF-8 or not
    JSON is a bad line like any other.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        RecordError: the file is empty, or a malformed line when ``rejects`` raises.
    """
    uid = first_uid
    for line_number, raw in iter_jsonl_lines(path):
        position = f"line {line_number}"
        try:
            record = parse_jsonl_line(raw, str(path), line_number)
            trace = parse_trace(record, uid=uid, source=str(path), position=position)
        except RecordError as error:
            rejects.handle(error, raw.decode("utf-8", errors="replace"))
        else:
            uid += 1
            yield record, trace
