"""Extract the chosen option of a multiple-choice question from a free-text response.

Evaluation and the RL accuracy reward both call :func:`extract_choice`, so a response is graded the
same way everywhere. The rules, in order:

1. Reasoning is excluded where an answer follows it: only the text after the last ``</think>`` is
   graded, unless nothing follows it (then the reasoning itself is graded). An unclosed ``<think>``
   (a truncated response) is graded as a whole.
2. Answer markers are searched from the end of the text (answers sit at the end of long
   reasoning): ``\\boxed{C}``, ``\\boxed{\\text{C}}``,
   ``The answer is (B)``, ``**Answer: D**``, ``Final answer: c``, ``The correct option is C``.
   The last marker that names something wins (a model that changes its mind is graded on its last
   word). What follows a marker may be a letter, lower-case included, or an option's text.
3. A final answer naming two different options (``\\boxed{A, C}``, ``The answer is B or D``) is wrong:
   :func:`extract_choice` returns ``None``.
4. Without any marker, a last line that is just a letter (``B``, ``(B)``, ``**B.**``, ``B. text``)
   or exactly an option's text is taken as the answer.
5. Otherwise there is no answer (``None``).

Lower-case letters count only where they cannot be the article "a" or a word: in ``\\boxed{}``, in
parentheses, or followed by punctuation or the end of the line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["extract_choice", "grade"]

_THINK_CLOSE = "</think>"
_THINK_OPEN = "<think>"

# \boxed{...} with one level of nested braces (\boxed{\text{C}}).
_BOXED = r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}"
# "answer is", "Answer:", "final answer -", "correct option is", "**Answer**:", "best choice would be".
_PHRASE = (
    r"(?:answer|correct\s+(?:option|choice)|best\s+(?:option|choice))"
    r"(?:\s*\*\*|\s*__)?"
    r"(?:\s+(?:is|would\s+be|should\s+be|will\s+be|must\s+be)\b\s*[:=]?|\s*[:=]|\s+[-–—])"
)
_MARKER = re.compile(f"{_BOXED}|({_PHRASE})", re.IGNORECASE)
_ANCHORS = ("\\boxed", "answer", "correct", "best")  # the words a marker starts with, lower case

# What may precede the letter after a marker: markdown, TeX wrappers, "option"/"choice".
_LEAD = re.compile(
    r"(?:\s|\*|_|\$|\\\(|\\\[|\\text(?:bf)?\{|\\mathrm\{|\\textbf\{|(?:therefore|thus|clearly)\b,?"
    r"|(?:option|choice|letter)\b\s*:?)*",
    re.IGNORECASE,
)
# One option letter, maybe in brackets, not followed by more of a word ("B12", "Both").
_LETTER = re.compile(r"([(\[]?)\s*([A-Za-z])\s*([)\]]?)(?![A-Za-z0-9'’-])")
# A further letter joined by a connector: "A and C", "B/D", "A, C", "(A) or (C)".
_MORE = re.compile(
    r"\s*(?:,|/|&|\+|\band\b|\bor\b|\band/or\b)\s*(?:option\s+|choice\s+)?[(\[]?\s*([A-Za-z])\s*[)\]]?(?![A-Za-z0-9'’-])",
    re.IGNORECASE,
)
# After a lower-case letter: punctuation or end, so "a" in "a benign tumour" is not read as option A.
_LOWER_OK = re.compile(r"\s*(?:$|[.,;:!?)\]*}$])")
_NORMALIZE_DROP = re.compile(r"[*_`$\\{}]|\\text|\\mathrm")
_SPACES = re.compile(r"\s+")
_TRAILING = " .,;:!?\"'"

_TWO = "two"  # a final answer naming two different options


def _normalize(text: str) -> str:
    return _SPACES.sub(" ", _NORMALIZE_DROP.sub("", text)).strip(_TRAILING).lower()


def _match_option_text(fragment: str, options: Mapping[str, str]) -> str | None:
    """The letter whose option text ``fragment`` starts with (longest option text first)."""
    normalized = _normalize(fragment)
    if not normalized:
        return None
    best, best_length = None, 0
    for letter, option in options.items():
        option_text = _normalize(str(option))
        if option_text and len(option_text) > best_length and normalized.startswith(option_text):
            rest = normalized[len(option_text) : len(option_text) + 1]
            if not rest or not rest.isalnum():
                best, best_length = letter, len(option_text)
    return best


def _parse_answer(fragment: str, options: Mapping[str, str], letters: Mapping[str, str]) -> str | None:
    """Parse what follows an answer marker: an option letter, :data:`_TWO`, an option text, or None."""
    raw, fragment = fragment, fragment[_LEAD.match(fragment).end() :]
    match = _LETTER.match(fragment)
    if match is not None:
        opened, letter, closed = match.groups()
        key = letters.get(letter.upper())
        if key is not None and (
            letter.isupper() or opened or closed or _LOWER_OK.match(fragment, match.end())
        ):
            chosen = {key}
            position = match.end()
            while more := _MORE.match(fragment, position):
                other = letters.get(more.group(1).upper())
                if other is None:
                    break
                chosen.add(other)
                position = more.end()
            return key if len(chosen) == 1 else _TWO
    # An option text may itself start with a word the lead skips ("Option 1 is safe").
    return _match_option_text(fragment, options) or _match_option_text(raw, options)


def _marker_starts(text: str) -> list[int]:
    """Where a marker may start, last first: occurrences of its leading word, found with ``str.find``.

    Scanning for a few literals in C and trying the marker regex only there is several times faster
    than a case-insensitive regex scan of a 15k-character response.
    """
    lower = text.lower()
    if len(lower) != len(text):  # a few characters change length when lower-cased: scan with the regex
        return [match.start() for match in reversed(list(_MARKER.finditer(text)))]
    starts = []
    for anchor in _ANCHORS:
        position = lower.find(anchor)
        while position != -1:
            starts.append(position)
            position = lower.find(anchor, position + 1)
    return sorted(starts, reverse=True)


def _search_markers(text: str, options: Mapping[str, str], letters: Mapping[str, str]) -> str | None:
    """The answer named by the last marker in ``text`` that names one, or None."""
    for start in _marker_starts(text):
        match = _MARKER.match(text, start)
        if match is None:
            continue
        if match.group(1) is not None:
            parsed = _parse_answer(match.group(1), options, letters)
        else:
            line_end = text.find("\n", match.end())
            fragment = text[match.end() : line_end if line_end != -1 else len(text)]
            if fragment.lstrip(" *:$").startswith("\\boxed"):
                continue  # "The answer is \boxed{C}": the boxed marker after it decides
            parsed = _parse_answer(fragment, options, letters)
        if parsed is not None:
            return parsed
    return None


def _last_line_answer(text: str, options: Mapping[str, str], letters: Mapping[str, str]) -> str | None:
    """A bare letter or option text on the last non-empty line (no marker anywhere)."""
    stripped = text.rstrip()
    line = stripped[stripped.rfind("\n") + 1 :].strip(" *_#>`")
    if not line:
        return None
    match = _LETTER.match(line)
    if match is not None:
        key = letters.get(match.group(2))  # upper case only: a lone "a" is not an answer
        tail = line[match.end() :]
        if key is not None and (not tail.strip(_TRAILING + "*") or tail[:1] in ".:)"):
            return key
    normalized = _normalize(line)
    return next((key for key, option in options.items() if _normalize(str(option)) == normalized), None)


def extract_choice(text: str, options: Mapping[str, str]) -> str | None:
    """Return the option key chosen in ``text``, or ``None`` when it names no option or two.

    Args:
        text: A model response, with or without ``<think>…</think>`` reasoning.
        options: The question's options, ``{"A": "Hypertension", "B": ...}``.

    Never raises on a string input; see the module docstring for the rules.

    >>> options = {"A": "Asthma", "B": "COPD", "C": "Croup"}
    >>> extract_choice("<think>Maybe A.</think>The answer is \\\\boxed{C}.", options)
    'C'
    >>> extract_choice("**Answer: b**", options)
    'B'
    >>> extract_choice("Final answer: Croup", options)
    'C'
    >>> extract_choice("The answer is A or C.", options) is None
    True
    """
    if not isinstance(text, str) or not text or not options:
        return None
    letters = {str(key).upper(): key for key in options if len(str(key)) == 1}
    close = text.rfind(_THINK_CLOSE)
    if close != -1:
        after = text[close + len(_THINK_CLOSE) :]
        text = after if after.strip() else text[:close].replace(_THINK_OPEN, "")
    parsed = _search_markers(text, options, letters)
    if parsed is None:
        parsed = _last_line_answer(text, options, letters)
    return None if parsed == _TWO else parsed


def grade(text: str, options: Mapping[str, str], answer: str) -> bool:
    """Whether ``text`` chooses exactly the option ``answer``.

    >>> grade("The answer is (B).", {"A": "yes", "B": "no"}, "B")
    True
    """
    return extract_choice(text, options) == answer
