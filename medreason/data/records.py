"""Training-record shapes and their conversion to TRL's prompt/completion format.

Supported shapes (``fmt``):

- ``messages``: chat ``{"messages": [{"role", "content"}, …]}``; the last message is the assistant
  answer and may carry its reasoning in ``reasoning_content`` (or ``reasoning``).
- ``question_cot_response``: ReasonMed / HuatuoGPT-o1 ``{"question", "cot", "response"}``.
- ``instruction_response``: FineMed ``{"instruction", "response"}`` (optional ``input`` is appended).
- ``prompt_completion``: already ``{"prompt", "completion"}`` (strings or message lists).

Every record becomes ``{"prompt": [messages…], "completion": [assistant message]}``, so TRL masks
the loss to the assistant answer whatever the tokenizer's chat template is. Reasoning is rendered as
``<think>…</think>`` before the answer (:func:`~medreason.data.chat_templates.format_reasoning`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medreason.data.chat_templates import ROLES, format_reasoning
from medreason.utils.jsonl import RecordError, describe_value

FORMATS = ("messages", "question_cot_response", "instruction_response", "prompt_completion")
TARGETS = ("think_response", "cot", "response")
"""What a ``question_cot_response`` record trains on: ReasonMed ``<think>{cot}</think>{response}``,
CoTMed ``{cot}`` or ResponseMed ``{response}`` (the three ReasonMed dataset variants)."""


def detect_format(record: Mapping[str, Any]) -> str | None:
    """Guess a record's shape from its keys; ``None`` when it matches none of :data:`FORMATS`."""
    if "messages" in record:
        return "messages"
    if "prompt" in record and "completion" in record:
        return "prompt_completion"
    if "question" in record and ("cot" in record or "response" in record):
        return "question_cot_response"
    if "instruction" in record and ("response" in record or "output" in record):
        return "instruction_response"
    return None


class RecordConverter:
    """Validates records of one shape and turns them into prompt/completion pairs.

    Args:
        fmt: One of :data:`FORMATS`, or ``"auto"`` to detect each record's shape.
        target: For ``question_cot_response`` records, one of :data:`TARGETS`.
        system_prompt: Optional system message prepended to every prompt.

    >>> converter = RecordConverter()
    >>> converter({"question": "TSH low, T4 high?", "cot": "Excess hormone.", "response": "Hyperthyroidism"},
    ...           source="demo.jsonl", position="line 1")["completion"][0]["content"]
    '<think>\\nExcess hormone.\\n</think>\\n\\nHyperthyroidism'
    """

    def __init__(self, fmt: str = "auto", target: str = "think_response", system_prompt: str | None = None):
        if fmt != "auto" and fmt not in FORMATS:
            raise ValueError(f"data.format={fmt!r} is not a known record format; choose 'auto' or one of {FORMATS}.")
        if target not in TARGETS:
            raise ValueError(f"data.target={target!r} is not a known target; choose one of {TARGETS}.")
        self.fmt, self.target, self.system_prompt = fmt, target, system_prompt

    def __call__(self, record: Mapping[str, Any], source: str, position: str) -> dict[str, list[dict[str, str]]]:
        """Convert one record; raise :class:`RecordError` naming ``source``, ``position`` and the field."""
        fmt = self.fmt if self.fmt != "auto" else detect_format(record)
        if fmt is None:
            raise RecordError(
                source, position, None,
                f"unrecognised record with keys {sorted(record)}; expected one of: 'messages'; 'prompt'+'completion'; "
                "'question'+'cot'/'response'; 'instruction'+'response'. Set data.column_map to rename columns.",
            )
        prompt, completion = getattr(self, f"_from_{fmt}")(record, _Where(source, position))
        if self.system_prompt and not any(message["role"] == "system" for message in prompt):
            prompt = [{"role": "system", "content": self.system_prompt}, *prompt]
        return {"prompt": prompt, "completion": completion}

    def _from_messages(self, record, where):
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            where.fail("messages", "must be a non-empty list of {'role', 'content'} messages.")
        clean = []
        for index, message in enumerate(messages):
            field = f"messages[{index}]"
            if not isinstance(message, Mapping):
                where.fail(field, f"must be a mapping with 'role' and 'content', got {type(message).__name__}.")
            if message.get("role") not in ROLES:
                where.fail(f"{field}.role", f"must be one of {ROLES}, got {message.get('role')!r}.")
            content = message.get("content")
            if not isinstance(content, str):
                where.fail(f"{field}.content", f"must be a string, got {type(content).__name__}.")
            clean.append(message)
        last = clean[-1]
        if last["role"] != "assistant":
            where.fail(f"messages[{len(clean) - 1}].role", "the last message must be the assistant's answer to train on.")
        reasoning = last.get("reasoning_content") or last.get("reasoning")
        answer = _required_text(last, "content", where, field=f"messages[{len(clean) - 1}].content")
        prompt = [{"role": message["role"], "content": message["content"]} for message in clean[:-1]]
        if not prompt:
            where.fail("messages", "needs at least one message before the assistant answer.")
        return prompt, [{"role": "assistant", "content": format_reasoning(reasoning, answer)}]

    def _from_prompt_completion(self, record, where):
        return _as_messages(record, "prompt", "user", where), _as_messages(record, "completion", "assistant", where)

    def _from_question_cot_response(self, record, where):
        question = _required_text(record, "question", where)
        if self.target == "think_response":
            content = format_reasoning(_required_text(record, "cot", where), _required_text(record, "response", where))
        else:
            content = _required_text(record, self.target, where)
        return [{"role": "user", "content": question}], [{"role": "assistant", "content": content}]

    def _from_instruction_response(self, record, where):
        instruction = _required_text(record, "instruction", where)
        extra = record.get("input")
        if isinstance(extra, str) and extra.strip():
            instruction = f"{instruction}\n\n{extra.strip()}"
        answer_field = "response" if "response" in record else "output"
        answer = _required_text(record, answer_field, where)
        return [{"role": "user", "content": instruction}], [{"role": "assistant", "content": answer}]


class _Where:
    """Where a record came from, for error messages."""

    def __init__(self, source: str, position: str):
        self.source, self.position = source, position

    def fail(self, field: str, problem: str):
        raise RecordError(self.source, self.position, field, problem)


def _required_text(record: Mapping[str, Any], key: str, where: _Where, field: str | None = None) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        where.fail(field or key, f"must be a non-empty string, got {describe_value(value)}.")
    return value


def _as_messages(record: Mapping[str, Any], key: str, role: str, where: _Where) -> list[dict[str, str]]:
    value = record.get(key)
    if isinstance(value, str) and value.strip():
        return [{"role": role, "content": value}]
    if isinstance(value, list) and value and all(
        isinstance(m, Mapping) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in value
    ):
        return [{"role": m["role"], "content": m["content"]} for m in value]
    where.fail(key, "must be a non-empty string or a list of {'role', 'content'} messages.")
