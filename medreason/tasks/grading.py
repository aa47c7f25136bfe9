"""Extract the chosen option of a multiple-choice question from a free-text response.

Evaluation and the RL accuracy reward both call :func:`extract_choice`, so a response is graded the
same way everywhere. The rules, in order (docs/evaluation.md, "How grading works", has examples):

1. **Reasoning is excluded** where an answer follows it: only the text after the last ``</think>``
   is graded, unless nothing follows it (then the reasoning itself is graded). An unclosed
   ``<think>`` (a truncated response) is graded as a whole.
2. **A** ``\\boxed{}`` **answer is final**: the last box that names an option decides, whatever prose
   follows it. Inside the box: a letter (``\\boxed{\\text{C}}``), an option's text, or the right-hand
   side of ``x = B``. A box cut off at the very end of a truncated response (``\\boxed{B``) counts.
3. **Answer cues**, searched from the end; the last one that names an option wins. Cues: "The answer
   is (B)", "**Answer: D**", "Final answer: c", "The correct option is C", "答案是C", "答案：B",
   "正确答案D"; and in the concluding statement (the last line) "Option C is correct" or "B is
   preferred". After a cue comes an option's text, a letter, or, after a colon ("Answer: Based on
   the guidelines, C is preferred."), the option the rest of that sentence names.
4. **A final answer naming two options is wrong** (``\\boxed{A, C}``, "The answer is B or D",
   "asthma or croup"): :func:`extract_choice` returns ``None``.
5. **Without a cue, the concluding statement** (the last non-empty line) decides: a bare letter
   (``B``, ``(B)``, ``**B.**``, ``B. text``), else the option it names last, by text or as "option C"
   or "(C)": "It could be asthma, but the stridor means croup." is croup.
6. Otherwise there is **no answer** (``None``).

How options are recognised:

* **Option texts** match word for word, ignoring case, spacing (line breaks included), punctuation
  and markdown/TeX markup; the longest matching text wins, and an option's text beats its reading as
  a letter: "A viral infection" names that option, not option A.
* **A letter counts only when it stands alone**: ``C``, ``(C)``, ``C.``, ``C:``, ``C)``, ``**C**``,
  or before a linking word ("C because ...", "C is preferred"); never as the first word of a phrase
  ("A viral infection", "B cells", "I think"). Lower-case letters count only where they cannot be the
  article "a" or a word: in brackets, or followed by punctuation or the end of the line.
* **Negated mentions** ("not croup", "rather than asthma", "preferred over COPD", "option B is
  incorrect") name nothing.

Responses are long reasoning with the answer at the end, so every search starts there: the boxes
with ``str.rfind``, the cues in windows that grow from the end of the text, and the option texts
only in a sentence or the last line. The module never raises on a string input.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator, Mapping
from functools import cached_property, lru_cache

__all__ = ["extract_choice", "grade"]

_THINK_CLOSE, _THINK_OPEN, _BOX = "</think>", "<think>", "\\boxed"
# \boxed{...} with one level of nested braces (\boxed{\text{C}}); the opening alone, for a box cut off.
_BOXED = re.compile(r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
_BOX_OPEN = re.compile(r"\\boxed\s*\{")
# "answer is", "Answer:", "final answer -", "correct option is", "**Answer**:", "best choice would be",
# 答案是, 答案：, (正确)答案为.
_CUE = re.compile(
    r"(?:answer|correct\s+(?:option|choice)|best\s+(?:option|choice))(?:\s*\*\*|\s*__)?"
    r"(?:\s+(?:is|would\s+be|should\s+be|will\s+be|must\s+be)\b\s*[:=]?|\s*[:=]|\s+[-–—])"
    r"|答案\s*(?:是|为|应为|：|:)?",
    re.IGNORECASE,
)
_ANCHORS = ("answer", "correct", "best", "答案")  # a cue starts with one of these, lower-cased
_ANCHOR_CASES = tuple(
    dict.fromkeys(form for word in _ANCHORS for form in (word, word.capitalize(), word.upper()))
)
_FIRST_WINDOW = 1024  # characters; each further window is twice as long
_CONCLUSION_CHARS = 600  # the concluding statement: at most this much of the last line
_FRAGMENT_SLACK = 200  # characters read after a cue beyond the longest option text

# What may precede the letter after a cue: markdown, TeX wrappers, "option"/"choice", "answer:".
_LEAD = re.compile(
    r"(?:\s|\*|_|\$|\\\(|\\\[|\\text(?:bf)?\{|\\mathrm\{|\\mathbf\{|(?:therefore|thus|clearly)\b,?"
    r"|(?:option|choice|letter)\b\s*:?|(?:final\s+)?answer\s*[:：=]|选项|选)*",
    re.IGNORECASE,
)
# One option letter, maybe in brackets, not followed by more of a word ("B12", "Both", "D-dimer").
_LETTER = re.compile(r"([(\[]?)\s*([A-Za-z])\s*([)\]]?)(?![A-Za-z0-9'’-])")
# After an upper-case letter: the end of the line, punctuation, CJK text, or a linking word.
_ALONE = re.compile(
    r"[ \t]*(?:$|\n|[^\w\s]|[\u3000-\u9fff\uff00-\uffef])"
    r"|[ \t]+(?:because|since|as|given|due|which|and|or|but|is|was|would|here)\b",
    re.IGNORECASE,
)
# After a lower-case letter: punctuation or the end, so "a" in "a benign tumour" is not option A.
_LOWER_ALONE = re.compile(r"[ \t]*(?:$|\n|[.,;:!?)\]*}$。，；：！？])")
# A further letter joined by a connector: "A and C", "B/D", "A, C", "(A) or (C)".
_MORE = re.compile(
    r"\s*(?:,|/|&|\+|\band\b|\bor\b|\band/or\b)\s*(?:option\s+|choice\s+)?[(\[]?\s*([A-Za-z])\s*[)\]]?(?![A-Za-z0-9'’-])",
    re.IGNORECASE,
)
# Two mentions joined into one answer: "asthma or croup", "asthma, croup", "either A or C".
_JOIN = re.compile(r"[\s*_]*(?:,|/|&|\+|\band/or\b|\band\b|\bor\b|\bvs\.?|\bversus\b)[\s*_]*", re.IGNORECASE)
# The three regexes marking a letter open with a character class, which the regex engine scans for fast.
_NOT_RIGHT = r"(?!\s+(?:is|was)\s+(?:not|incorrect|wrong|unlikely|less)\b)"
# "Option C is correct.", "B is preferred over A", "(D) is the best answer because ...": a letter named by
# what follows it, where that ends the clause ("Option A is correct only in adults" names nothing).
_POSTFIX_CUE = re.compile(
    r"([A-Z])(?<![^\W_][A-Z])(?![\w'’-])[)\]]?(?:\*\*)?"
    r"\s+(?i:is|would\s+be)\s+(?i:the\s+)?(?i:most\s+)?(?i:correct|right|best|preferred)\b"
    r"(?:\s+(?i:answer|option|choice|one))?"
    r"(?=[ \t*]*(?:$|\n|[.!?,;:)。！？，；])|\s+(?i:because|since|as|given|here|over|to)\b)"
)
_POSTFIX_WORDS = ("correct", "right", "best", "prefer")  # a line holding none of these has no postfix cue
# "option C", "choice (C)": a letter marked as an option.
_OPTION_LETTER = re.compile(
    rf"[oOcC](?<![^\W_][oOcC])(?i:ption|hoice)\s+[(\[]?([A-Z])(?![\w'’-])[)\]]?{_NOT_RIGHT}"
)
_BRACKETED = re.compile(rf"\(([A-Z])\){_NOT_RIGHT}")  # "(C)"
# A mention right after these words is negated: "not croup", "rather than asthma", "over COPD".
_NEGATION = re.compile(
    r"(?:\bnot|n't|\bthan|\binstead\s+of|\bover|\bexcept|\bexclude|\bexcluding)[\s*_]*"
    r"(?:option\s+|choice\s+)?[(\[]?$",
    re.IGNORECASE,
)
# A fragment that is one upper-case letter and markup: "B", "(B)", "**B.**", "\\text{B}".
_LONE = re.compile(r"[\s*_$(\[{]*(?:\\text(?:bf)?\{)?\s*([A-Z])\s*[)\]}.:*_$\s]*\Z")
_SENTENCE_END = re.compile(r"[.!?。！？](?=\s|$)|\n\s*\n")
_WORD = re.compile(r"\\[A-Za-z]+|([^\W_]+)")  # a word; TeX commands (\text, \mathrm) are skipped
_TWO = object()  # a final answer naming two different options


def _words(text: str, limit: int | None = None, start: int = 0) -> list[tuple[str, int, int]]:
    """``(lower-cased word, start, end)`` for the words of ``text[start:]``, at most ``limit`` of them."""
    found = []
    for match in _WORD.finditer(text, start):
        if match.group(1) is not None:
            found.append((match.group(1).lower(), match.start(), match.end()))
            if len(found) == limit:
                break
    return found


@lru_cache(maxsize=4096)
def _option_texts(items: tuple[tuple[Hashable, str], ...]) -> tuple[tuple[tuple[str, ...], Hashable], ...]:
    """``(words, key)`` of every option with a text, longest first.

    Cached: evaluation and RL grade every question many times.
    """
    texts = [(tuple(word for word, _, _ in _words(text)), key) for key, text in items]
    return tuple(sorted((item for item in texts if item[0]), key=lambda item: -len(item[0])))


class _Choices:
    """A question's options, with their letters and words computed when first needed."""

    def __init__(self, options: Mapping[str, str]):
        self.options = options

    @cached_property
    def letters(self) -> dict[str, Hashable]:
        return {str(key).upper(): key for key in self.options if len(str(key)) == 1}

    @cached_property
    def texts(self) -> tuple[tuple[tuple[str, ...], Hashable], ...]:
        return _option_texts(tuple((key, str(text)) for key, text in self.options.items()))

    @cached_property
    def fragment_chars(self) -> int:
        """How much text after a cue can hold an answer: the longest option text and some slack."""
        return max((len(str(text)) for text in self.options.values()), default=0) + _FRAGMENT_SLACK

    def letter(self, letter: str) -> Hashable | None:
        """The key of option ``letter`` (either case), or None."""
        return letter if letter in self.options else self.letters.get(letter.upper())

    def text_at_start(self, fragment: str, start: int = 0) -> tuple[Hashable, int] | None:
        """The option whose words open ``fragment[start:]`` (the longest), and where they end in it."""
        if not self.texts:
            return None
        words = _words(fragment, len(self.texts[0][0]), start)
        for option_words, key in self.texts:
            count = len(option_words)
            if count <= len(words) and all(words[i][0] == word for i, word in enumerate(option_words)):
                return key, words[count - 1][2]
        return None


def _letter_at(fragment: str, start: int, choices: _Choices) -> object | None:
    """The option letter standing alone at ``fragment[start:]`` (or :data:`_TWO`), else None."""
    match = _LETTER.match(fragment, start)
    if match is None:
        return None
    opened, letter, closed = match.groups()
    key = choices.letter(letter)
    alone = _ALONE if letter.isupper() else _LOWER_ALONE
    if key is None or not (opened or closed or alone.match(fragment, match.end())):
        return None
    chosen, position = {key}, match.end()
    while more := _MORE.match(fragment, position):
        other = choices.letter(more.group(1))
        if other is None:
            break
        chosen.add(other)
        position = more.end()
    return key if len(chosen) == 1 else _TWO


def _joined_to_another(fragment: str, key: Hashable, end: int, choices: _Choices) -> bool:
    """Whether the option text ending at ``end`` is joined to a different option ("asthma or croup")."""
    join = _JOIN.match(fragment, end)
    if join is None or join.end() == end:
        return False
    rest = fragment[join.end() :]
    other = choices.text_at_start(rest)
    other_key = other[0] if other is not None else _letter_at(rest, 0, choices)
    return other_key is not None and other_key != key


@lru_cache(maxsize=4096)
def _text_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    """An option text's words in running text: any case, separated by anything that is not a word."""
    separator = r"(?:[\W_]|\\[A-Za-z]+(?![A-Za-z]))+"  # punctuation, spacing, markdown, TeX commands
    return re.compile(rf"(?<![^\W_]){separator.join(map(re.escape, words))}(?![^\W_])", re.IGNORECASE)


def _text_mentions(segment: str, lower: str, choices: _Choices) -> list[tuple[int, int, Hashable]]:
    """``(end, start, key)`` of each option text in ``segment`` (``lower`` is it lower-cased)."""
    mentions = []
    for option_words, key in choices.texts:
        if not all(word in lower for word in option_words):  # most segments name no option at all
            continue
        pattern = _text_pattern(option_words)
        if len(lower) != len(segment):  # lower-casing changed the length ("İ"): positions differ, scan
            mentions.extend((m.end(), m.start(), key) for m in pattern.finditer(segment))
            continue
        at = lower.find(option_words[0])
        while at != -1:
            if match := pattern.match(segment, at):
                mentions.append((match.end(), match.start(), key))
            at = lower.find(option_words[0], at + 1)
    return mentions


def _marked_letters(segment: str, lower: str) -> Iterator[re.Match[str]]:
    """Letters marked as options in ``segment``: "C is preferred", "option C", "(C)" (group 1)."""
    if any(word in lower for word in _POSTFIX_WORDS):
        yield from _POSTFIX_CUE.finditer(segment)
    if "option" in lower or "choice" in lower:
        yield from _OPTION_LETTER.finditer(segment)
    if "(" in segment:
        yield from _BRACKETED.finditer(segment)


def _mentioned(segment: str, choices: _Choices) -> object | None:
    """The option ``segment`` names last, by its text or as a marked letter; :data:`_TWO` when that
    mention is joined to a different option; negated mentions are skipped."""
    lower = segment.lower()
    mentions = _text_mentions(segment, lower, choices)
    for match in _marked_letters(segment, lower):
        key = choices.letter(match.group(1))
        if key is not None:
            mentions.append((match.end(), match.start(), key))
    mentions = [m for m in mentions if not _NEGATION.search(segment, max(0, m[1] - 30), m[1])]
    if not mentions:
        return None
    end, start, key = max(mentions, key=lambda m: (m[0], -m[1]))
    for other_end, _, other_key in mentions:
        if other_key != key and other_end <= start and _JOIN.fullmatch(segment, other_end, start):
            return _TWO
    return key


def _parse(fragment: str, choices: _Choices, sentence: bool) -> object | None:
    """What ``fragment`` (the text after a cue, or a box's content) names: an option key, :data:`_TWO`
    or None. With ``sentence``, a fragment that opens with neither a text nor a letter is read up to
    the end of its sentence."""
    lone = _LONE.match(fragment)
    if lone is not None:  # a letter alone is that letter, whatever the option texts say
        return choices.letter(lone.group(1))
    start = _LEAD.match(fragment).end()  # past markup and words such as "option:"
    found = choices.text_at_start(fragment) or choices.text_at_start(fragment, start)
    if found is not None:
        key, end = found
        return _TWO if _joined_to_another(fragment, key, end, choices) else key
    letter = _letter_at(fragment, start, choices)
    if letter is not None or not sentence:
        return letter
    end = _SENTENCE_END.search(fragment, start)
    return _mentioned(fragment[start : end.end() if end else len(fragment)], choices)


def _box_at(text: str, at: int, end: int, choices: _Choices) -> object | None:
    """What the ``\\boxed`` at ``text[at]`` names; a box left open counts only at the very end."""
    match = _BOXED.match(text, at, end)
    if match is not None:
        content = match.group(1)
    else:
        opening = _BOX_OPEN.match(text, at, end)
        if opening is None or text.find(_BOX, opening.end(), end) != -1:
            return None
        content = text[opening.end() : end].strip()
        if "\n" in content:
            return None  # an unclosed box followed by more text, not a truncated answer
    if "=" in content:  # \boxed{x = B}: the right-hand side
        named = _parse(content.rpartition("=")[2], choices, sentence=True)
        if named is not None:
            return named
    return _parse(content, choices, sentence=True)


def _last_box(text: str, start: int, end: int, position: int, choices: _Choices) -> object | None:
    """What the last box in ``text[start:end]`` that names something names, looking back from ``position``."""
    while position >= start:
        named = _box_at(text, position, end, choices)
        if named is not None:
            return named
        position = text.rfind(_BOX, start, position)
    return None


def _cues(text: str, start: int, end: int) -> Iterator[re.Match[str]]:
    """Answer cues in ``text[start:end]``, last first, searched in windows growing from the end.

    The words a cue starts with are found with ``str.rfind``: in the lower-cased window when it is
    ASCII, else (lower-casing non-ASCII text is slow) as written, in lower, title and upper case.
    """
    window_end, size = end, _FIRST_WINDOW
    while window_end > start:
        window_start = max(start, window_end - size)
        window = text[window_start : min(end, window_end + 8)]  # a cue starting inside may run past it
        inside, found = window_end - window_start, []
        ascii_window = window.isascii()
        if ascii_window:
            window = window.lower()
        for anchor in _ANCHORS if ascii_window else _ANCHOR_CASES:
            position = window.rfind(anchor, 0, inside + len(anchor) - 1)
            while position != -1:
                found.append(window_start + position)
                position = window.rfind(anchor, 0, position + len(anchor) - 1)
        for position in sorted(found, reverse=True):
            match = _CUE.match(text, position, end)
            if match is not None:
                yield match
        window_end, size = window_start, size * 2


def _space(text: str, start: int, end: int) -> int:
    """The last space or line break in ``text[start:end]``, or -1."""
    return max(text.rfind(" ", start, end), text.rfind("\n", start, end))


def _after_cue(text: str, cue: re.Match[str], end: int, choices: _Choices) -> object | None:
    stop = min(end, cue.end() + choices.fragment_chars)
    if stop < end and _space(text, cue.end(), stop) > cue.end():
        stop = _space(text, cue.end(), stop)  # never cut a word: the "a" of a cut "answer" is no option A
    fragment = text[cue.end() : stop]
    if fragment.lstrip(" *:$\n").startswith(_BOX):
        return None  # "The answer is \boxed{C}": the box decides (rule 2)
    return _parse(fragment, choices, sentence=cue.group().rstrip(" *_").endswith((":", "：")))


def _content_end(text: str, start: int, end: int) -> int:
    """Where ``text[start:end]`` ends without its trailing whitespace (no copy of a long text)."""
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def _conclusion(text: str, start: int, end: int) -> tuple[int, int]:
    """Where the concluding statement lies: the last non-empty line, at most its last characters."""
    end = _content_end(text, start, end)
    line_start = max(text.rfind("\n", start, end) + 1, start)
    if end - line_start > _CONCLUSION_CHARS:  # a long last line: its end, from a word boundary on
        line_start = max(text.find(" ", end - _CONCLUSION_CHARS, end) + 1, end - _CONCLUSION_CHARS)
    return line_start, end


def _answer_cue(text: str, start: int, end: int, choices: _Choices) -> object | None:
    """Rule 3: the last cue that names something; a postfix cue counts in the concluding statement."""
    line_start, line_end = _conclusion(text, start, end)
    postfix = None
    line = text[line_start:line_end].lower()
    for match in (
        _POSTFIX_CUE.finditer(text, line_start, line_end) if any(w in line for w in _POSTFIX_WORDS) else ()
    ):
        key = choices.letter(match.group(1))
        if key is not None and not _NEGATION.search(text, max(line_start, match.start() - 30), match.start()):
            postfix = (match.start(), key)
    for cue in _cues(text, start, end):
        if postfix is not None and cue.start() < postfix[0]:
            break
        named = _after_cue(text, cue, end, choices)
        if named is not None:
            return named
    return None if postfix is None else postfix[1]


def _concluding_statement(text: str, start: int, end: int, choices: _Choices) -> object | None:
    """Rule 5: a bare letter on the last line, or the option the last line names last."""
    line_start, line_end = _conclusion(text, start, end)
    line = text[line_start:line_end].strip(" *_#>`")
    match = _LETTER.match(line)
    if match is not None and match.group(2).isupper():  # a lone lower-case "a" is not an answer
        key = choices.letter(match.group(2))
        tail = line[match.end() :]
        if key is not None and (not tail.strip(" .,;:!?\"'*") or tail[:1] in ".:)"):
            return key
    return _mentioned(line, choices)


def _graded_span(text: str) -> tuple[int, int]:
    """Rule 1: ``(start, end)`` of the part of ``text`` that is graded."""
    close = text.rfind(_THINK_CLOSE)
    if close == -1:
        return 0, len(text)
    after = close + len(_THINK_CLOSE)
    if _content_end(text, after, len(text)) > after:
        return after, len(text)
    opening = text.rfind(_THINK_OPEN, 0, close)
    return (0 if opening == -1 else opening + len(_THINK_OPEN)), close


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
    >>> extract_choice("Answer: Given the barking cough, C is preferred.", options)
    'C'
    >>> extract_choice("It could be asthma, but the stridor means croup.", options)
    'C'
    >>> extract_choice("The answer is A or C.", options) is None
    True
    """
    if not isinstance(text, str) or not text or not options:
        return None
    choices = _Choices(options)
    tail = max(0, len(text) - _FIRST_WINDOW)
    named, last_box = None, text.rfind(_BOX, tail)
    if last_box != -1 and text.find(_THINK_CLOSE, last_box) == -1:
        # No </think> follows the last box, so it is graded (rule 1) and rule 2 starts with it.
        named = _box_at(text, last_box, len(text), choices)
    if named is None:
        start, end = _graded_span(text)
        if last_box == -1 and start < tail:  # no box at the end: look for one before it
            last_box = text.rfind(_BOX, start, min(end, tail + len(_BOX) - 1))
        if last_box >= start:
            named = _last_box(text, start, end, last_box, choices)
        if named is None:
            named = _answer_cue(text, start, end, choices)
        if named is None:
            named = _concluding_statement(text, start, end, choices)
    return None if named is _TWO else named  # type: ignore[return-value]


def grade(text: str, options: Mapping[str, str], answer: str) -> bool:
    """Whether ``text`` chooses exactly the option ``answer``.

    >>> grade("The answer is (B).", {"A": "yes", "B": "no"}, "B")
    True
    """
    return extract_choice(text, options) == answer
