"""Preference (chosen/rejected) records for DPO, validated and turned into TRL's conversational format.

Accepted shape: a prompt under ``prompt``, ``question`` or ``instruction`` (a string or chat
messages), and ``chosen`` / ``rejected`` answers (strings or assistant messages). This is what the
synthesis pipelines write (FineMedLM-o1: long-form reasoning chosen over an ordinary answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medreason.data.chat_templates import ROLES
from medreason.utils.jsonl import RecordError, describe_value

_PROMPT_KEYS = ("prompt", "question", "instruction")


def to_preference_pair(record: Mapping[str, Any], source: str, position: str) -> dict[str, list[dict[str, str]]]:
    """Return ``{"prompt", "chosen", "rejected"}`` as message lists.

    Raises:
        RecordError: naming ``source``, ``position`` and the field, when the prompt or an answer is
            missing or empty, or when chosen and rejected are identical (DPO would learn nothing).

    >>> to_preference_pair({"question": "Q", "chosen": "A long answer", "rejected": "A"}, "pairs.jsonl", "line 1")
    {'prompt': [{'role': 'user', 'content': 'Q'}], 'chosen': [{'role': 'assistant', 'content': 'A long answer'}], 'rejected': [{'role': 'assistant', 'content': 'A'}]}
    """
    prompt_key = next((key for key in _PROMPT_KEYS if key in record), None)
    if prompt_key is None:
        raise RecordError(source, position, "prompt", f"missing; a preference record needs one of {_PROMPT_KEYS}.")
    pair = {
        "prompt": _messages(record[prompt_key], "user", source, position, prompt_key),
        "chosen": _messages(record.get("chosen"), "assistant", source, position, "chosen"),
        "rejected": _messages(record.get("rejected"), "assistant", source, position, "rejected"),
    }
    if _text(pair["chosen"]) == _text(pair["rejected"]):
        raise RecordError(
            source, position, "rejected",
            "identical to 'chosen'; a preference pair needs two different answers. Drop or fix this record.",
        )
    return pair


def _messages(value: Any, role: str, source: str, position: str, field: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        if value.strip():
            return [{"role": role, "content": value}]
    elif isinstance(value, list) and value and all(
        isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value
    ):
        role = next((m["role"] for m in value if m["role"] not in ROLES), None)
        if role is not None:
            raise RecordError(source, position, field, f"message role {role!r} is not one of {ROLES}.")
        if any(m["content"].strip() for m in value):
            return [{"role": m["role"], "content": m["content"]} for m in value]
    raise RecordError(source, position, field, f"must be a non-empty string or list of messages, got {describe_value(value)}.")


def _text(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"].strip() for m in messages)
