"""Prompt templates: Jinja files shipped in ``medreason/synth/templates/`` or supplied by the user.

A template is named by its file name (``finemed_score.j2``, looked up among the shipped ones) or by a
path to your own file; pipeline configs map each step to one (``templates.score=/my/score.j2``).
Undefined variables are errors, so a swapped template that misspells ``{{ instruction }}`` fails on
the first prompt instead of sending a blank.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from medreason.data.chat_templates import Message
from medreason.utils.jsonl import decode_utf8

__all__ = ["TEMPLATE_DIR", "PromptTemplate", "load_template"]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


class PromptTemplate:
    """A loaded Jinja template that renders chat prompts.

    Args:
        source: The template text.
        name: Where it came from (shown in errors and kept in the manifest).

    >>> PromptTemplate("Q: {{ question }}", "inline").messages(question="Why?")
    [{'role': 'user', 'content': 'Q: Why?'}]
    """

    def __init__(self, source: str, name: str):
        self.name = name
        self.source = source
        self.fingerprint = hashlib.sha256(source.encode()).hexdigest()[:12]
        environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
        try:
            self._template = environment.from_string(source)
        except jinja2.TemplateSyntaxError as error:
            raise ValueError(
                f"{name}, line {error.lineno}: invalid Jinja template ({error.message})."
            ) from None

    def render(self, **variables: Any) -> str:
        """The prompt text.

        Raises:
            ValueError: the template uses a variable that was not passed.
        """
        try:
            return self._template.render(**variables).strip()
        except jinja2.UndefinedError as error:
            raise ValueError(
                f"{self.name}: {error.message}; this step passes {sorted(variables)} to its template."
            ) from None

    def messages(self, **variables: Any) -> list[Message]:
        """The prompt as one user message (the engine applies the model's chat template)."""
        return [{"role": "user", "content": self.render(**variables)}]


@lru_cache(maxsize=64)
def load_template(spec: str) -> PromptTemplate:
    """Load a shipped template by file name, or any template file by path.

    Raises:
        FileNotFoundError: neither a file at ``spec`` nor a shipped template of that name exists.
        RecordError: the file is not UTF-8 (naming the line).
    """
    path = Path(spec).expanduser()
    if not path.is_file():
        path = TEMPLATE_DIR / spec
    if not path.is_file():
        shipped = ", ".join(sorted(p.name for p in TEMPLATE_DIR.glob("*.j2")))
        raise FileNotFoundError(
            f"Prompt template {spec!r} not found: pass a path to a Jinja file or one of the shipped "
            f"templates ({shipped})."
        )
    return PromptTemplate(decode_utf8(path.read_bytes(), str(path)), str(path))
