"""Chat templates that render reasoning as ``<think>…</think>`` before the answer.

Real Qwen tokenizers ship their own templates and are used as they are. A tokenizer without a
template (Llama-3.1-8B base in FineMedLM-o1, the tiny test tokenizer) gets :data:`CHATML_THINK`.
The ``{% generation %}`` markers let TRL build assistant-token masks for multi-turn data; single-turn
records are trained as prompt/completion pairs, which need no markers. :data:`Prompt` is the shape of
a prompt everywhere: raw text or the chat messages a template renders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations: importing transformers costs seconds
    from transformers import PreTrainedTokenizerBase

Message = dict[str, str]
ROLES = ("system", "user", "assistant", "tool")
"""The roles a chat message may have."""
Prompt = str | list[Message]
"""A raw text prompt (sent as is) or chat messages (the engine applies the chat template)."""

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

CHATML_THINK = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}"
    "{%- if message.get('reasoning_content') %}"
    "{{- '<think>\\n' + message['reasoning_content'] + '\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{{- message['content'] + '<|im_end|>' }}"
    "{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
"""ChatML with ``<think>`` reasoning, the layout of Qwen2.5/Qwen3 chat models."""

CHATML_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", THINK_OPEN, THINK_CLOSE)


def format_reasoning(reasoning: str | None, answer: str) -> str:
    """Join a reasoning trace and an answer the way every medreason template renders them.

    >>> format_reasoning("Low TSH means hyperthyroidism.", "B")
    '<think>\\nLow TSH means hyperthyroidism.\\n</think>\\n\\nB'
    """
    if not reasoning:
        return answer
    return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{answer.strip()}"


def ensure_chat_template(tokenizer: PreTrainedTokenizerBase, template: str | None = None) -> None:
    """Give ``tokenizer`` a chat template: ``template`` if set, else keep its own, else ChatML-think."""
    if template is not None:
        tokenizer.chat_template = template
    elif tokenizer.chat_template is None:
        tokenizer.chat_template = CHATML_THINK
