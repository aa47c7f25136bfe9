"""How a multiple-choice item becomes a prompt, per the model cards.

II-Medical's cards ask to "explicitly request step-by-step reasoning and format the final answer
within \\boxed{}", with the instruction appended to the question; that is :data:`II_MEDICAL_INSTRUCTION`
and the default. Chat models get chat messages (the engine applies the tokenizer's template);
base models can take the same text as a raw prompt (``chat=False``).
"""

from __future__ import annotations

from dataclasses import dataclass

from medreason.data.chat_templates import Prompt
from medreason.tasks.mcq import EvalRecord

__all__ = ["II_MEDICAL_INSTRUCTION", "PromptTemplate", "format_question"]

II_MEDICAL_INSTRUCTION = "Please reason step-by-step, and put your final answer within \\boxed{}."
"""The II-Medical-8B card's recommended instruction (section VI, Usage Guidelines)."""


def format_question(record: EvalRecord) -> str:
    """The question followed by one ``A. text`` line per option.

    >>> print(format_question(EvalRecord("1", "Which gland?", {"A": "Thyroid", "B": "Adrenal"}, "A")))
    Which gland?
    A. Thyroid
    B. Adrenal
    """
    return record.question + "\n" + "\n".join(f"{key}. {text}" for key, text in record.options.items())


@dataclass(frozen=True)
class PromptTemplate:
    """Turns a record into a prompt.

    Args:
        instruction: Appended after the options, separated by a blank line; empty for none.
        system: An optional system message (chat prompts only).
        chat: Chat messages (the engine applies the chat template) or one raw text prompt.
    """

    instruction: str = II_MEDICAL_INSTRUCTION
    system: str | None = None
    chat: bool = True

    def __post_init__(self) -> None:
        if self.system is not None and not self.chat:
            raise ValueError(
                "PromptTemplate.system needs chat=True: raw text prompts have no system message."
            )

    def render(self, record: EvalRecord) -> Prompt:
        """The prompt for ``record``.

        >>> record = EvalRecord("1", "Which gland?", {"A": "Thyroid", "B": "Adrenal"}, "A")
        >>> PromptTemplate()(record)[0]["content"].splitlines()[-1]
        'Please reason step-by-step, and put your final answer within \\\\boxed{}.'
        """
        text = format_question(record) + (f"\n\n{self.instruction}" if self.instruction else "")
        if not self.chat:
            return text
        messages = [{"role": "system", "content": self.system}] if self.system else []
        return [*messages, {"role": "user", "content": text}]

    __call__ = render
