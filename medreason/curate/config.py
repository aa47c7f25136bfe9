"""The settings of a curation run: ``python -m medreason.curate`` and a recipe's ``curate`` stage.

:class:`CurateConfig` holds every default; ``conf/curate.yaml`` sets only what the command line
needs (``input``/``output`` to fill in), and each step's section defaults to its settings class
(:class:`~medreason.curate.steps.DomainSettings`, :class:`~medreason.curate.decontaminate.DecontamConfig`,
:class:`~medreason.curate.mixing.MixSource`), whose defaults are the II-Medical card's values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medreason.curate.decontaminate import DecontamConfig
from medreason.curate.filters import CARD_FILTERS, build_filters
from medreason.curate.mixing import MixSource
from medreason.curate.records import ON_ERROR, OUTPUT_FORMATS
from medreason.curate.steps import DomainSettings, settings_from
from medreason.utils.config_errors import FieldError, check_field_types

COMMANDS = ("curate", "decontaminate")
STEP_NAMES = ("filter", "domain", "mix", "dedupe", "decontaminate")
DEDUPE_BY = ("prompt_response", "prompt")


@dataclass
class CurateConfig:
    """Settings of a curation run (see docs/curation.md).

    Args:
        command: ``curate`` runs ``steps`` into the ``output`` directory; ``decontaminate`` cleans one
            file into ``output`` (a ``.jsonl``).
        input: A JSONL file or a list of them; records as ``{question, cot, response}``,
            ``{prompt, response}`` or ``{messages}``.
        output: Output directory (``curate``) or file (``decontaminate``).
        benchmarks: Benchmark JSONL files, a directory of them, or a suite name.
        benchmark_data_dir: Where a suite's benchmark files live (default: ``$MEDREASON_EVAL_DATA``).
        builtin: ``"tiny"`` curates the built-in synthetic corpus (plus ``input``, if set) against the
            built-in benchmark instead of ``benchmarks`` (the ``tiny`` recipe's stage).
        steps: Pipeline steps after ``load``, in order, from ``filter, domain, mix, dedupe, decontaminate``.
        filters: Registered filters with their settings; ``None`` means the card's four.
        domain: :class:`~medreason.curate.steps.DomainSettings` fields.
        mix: Extra sources at fixed counts (:class:`~medreason.curate.mixing.MixSource` fields each).
        dedupe: ``{"by": "prompt_response"}`` (identical samples) or ``{"by": "prompt"}``.
        decontaminate: :class:`~medreason.curate.decontaminate.DecontamConfig` fields.
        on_error: ``raise`` stops at the first malformed record; ``skip`` writes it to ``rejects.jsonl``.
        resume: Reuse finished steps whose settings did not change.
        progress: Progress bars.
        seed: Seed of mixing and clustering.
        output_format: ``fields`` (``{id, source, question, cot, response}``) or ``messages``.
        title: Title of the dataset card.

    >>> CurateConfig(input="raw.jsonl", output="out/", steps=["filter", "dedup"])
    Traceback (most recent call last):
    ...
    medreason.utils.config_errors.FieldError: steps=['filter', 'dedup']: unknown step 'dedup'; valid steps: ['filter', 'domain', 'mix', 'dedupe', 'decontaminate'].
    """

    command: str = "curate"
    input: Any = None
    output: str | None = None
    benchmarks: Any = None
    benchmark_data_dir: str | None = None
    builtin: str | None = None
    steps: list[str] = field(default_factory=lambda: ["filter", "dedupe", "decontaminate"])
    filters: list[dict[str, Any]] | None = None
    domain: dict[str, Any] = field(default_factory=dict)
    mix: list[dict[str, Any]] = field(default_factory=list)
    dedupe: dict[str, Any] = field(default_factory=dict)
    decontaminate: dict[str, Any] = field(default_factory=dict)
    on_error: str = "raise"
    resume: bool = True
    progress: bool = True
    seed: int = 0
    output_format: str = "fields"
    title: str = "Curated reasoning dataset"

    def __post_init__(self) -> None:
        check_field_types(self)
        for name, value, valid in [("command", self.command, COMMANDS), ("on_error", self.on_error, ON_ERROR),
                                   ("output_format", self.output_format, OUTPUT_FORMATS),
                                   ("builtin", self.builtin, (None, "tiny"))]:
            if value not in valid:
                raise FieldError(name, value, f"must be one of {list(valid)}.")
        for step in self.steps:
            if step not in STEP_NAMES:
                raise FieldError("steps", self.steps, f"unknown step {step!r}; valid steps: {list(STEP_NAMES)}.")
        unknown = set(self.dedupe) - {"by"}
        if unknown or self.dedupe.get("by", DEDUPE_BY[0]) not in DEDUPE_BY:
            raise FieldError("dedupe", self.dedupe, f"takes one key, by, one of {list(DEDUPE_BY)}.")
        build_filters(self.filter_specs())
        self.domain_settings()
        self.mix_sources()
        self.decontam_config()

    def filter_specs(self) -> list[dict[str, Any]]:
        """The filters to build: ``filters``, or the card's four when it is ``None``."""
        return list(CARD_FILTERS if self.filters is None else self.filters)

    def domain_settings(self) -> DomainSettings:
        """The domain step's settings."""
        return _settings(DomainSettings, self.domain, "domain")

    def mix_sources(self) -> list[MixSource]:
        """The mix step's extra sources."""
        return [_settings(MixSource, source, f"mix[{i}]") for i, source in enumerate(self.mix)]

    def decontam_config(self) -> DecontamConfig:
        """The decontamination step's settings."""
        return _settings(DecontamConfig, self.decontaminate, "decontaminate")


def _settings(cls: type, data: dict[str, Any], where: str) -> Any:
    try:
        return settings_from(cls, data, where)
    except ValueError as error:
        raise FieldError(where, data, str(error)) from None
