"""The curation pipeline: load → steps → curated output, resumable at step granularity.

Every step writes into ``<output>/steps/NN_<name>/``: the ids of the records it kept (``kept.txt``),
the records it dropped with the reason (``dropped.jsonl``), any records it added (``records.jsonl``,
from ``load`` and ``mix``), rejected input lines (``rejects.jsonl``) and, last, ``done.json`` with its
counts and a fingerprint of its settings and of every step before it. A rerun skips each step whose
``done.json`` carries the same fingerprint and recomputes from the first one that changed or never
finished. ``manifest.json`` is written after the curated output, so its presence means the run completed.

>>> from medreason.curate.pipeline import CurationPipeline          # doctest: +SKIP
>>> CurationPipeline.from_config(cfg).run()                          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from medreason.curate.records import ON_ERROR, Rejects, TraceRecord
from medreason.curate.report import render_card
from medreason.curate.summary import StepSummary
from medreason.utils.logging import get_logger

logger = get_logger(__name__)

DONE = "done.json"
MANIFEST = "manifest.json"


class StepContext:
    """A step's view of the data and its output files.

    Args:
        name: Step name.
        directory: The step's output directory (created empty).
        shards: ``records.jsonl`` files of earlier steps, in order.
        kept: uids the previous step kept (``None`` before the first step).
        next_uid: First uid free for added records.
        rejects: Where malformed input lines go.
        cache_dir: Run-wide cache directory (embeddings, LLM votes).
        progress: Show progress bars.
    """

    def __init__(
        self,
        name: str,
        directory: Path,
        shards: list[Path],
        kept: set[int] | None,
        next_uid: int,
        rejects: Rejects,
        cache_dir: Path,
        progress: bool,
    ):
        self.name, self.directory, self.shards, self.previous = name, directory, list(shards), kept
        self.next_uid, self.rejects, self.cache_dir, self.progress_enabled = (
            next_uid,
            rejects,
            cache_dir,
            progress,
        )
        self.summary = StepSummary(name, "", input=len(kept) if kept is not None else 0)
        self._dropped: Counter[str] = Counter()
        self._sources: dict[str, Counter[str]] = {}
        self._kept_file = (directory / "kept.txt").open("w", encoding="utf-8")
        self._dropped_file = (directory / "dropped.jsonl").open("w", encoding="utf-8")
        self._records_file = None

    @property
    def total(self) -> int:
        """Records this step receives."""
        return self.summary.input

    def records(self) -> Iterator[TraceRecord]:
        """The records the previous step kept, in uid order (streamed from disk)."""
        return iter_records(self.shards, self.previous)

    def bar(self, total: int | None, unit: str = "rec", desc: str | None = None) -> tqdm:
        """A progress bar labelled with the step name."""
        return tqdm(
            total=total, desc=desc or self.name, unit=unit, disable=not self.progress_enabled, leave=False
        )

    def _count(self, record: TraceRecord, outcome: str) -> None:
        self._sources.setdefault(record.source, Counter())[outcome] += 1

    def keep(self, record: TraceRecord) -> None:
        """Pass ``record`` on to the next step."""
        self._kept_file.write(f"{record.uid}\n")
        self.summary.kept += 1
        self._count(record, "kept")

    def drop(self, record: TraceRecord, reason: str, detail: Any = None) -> None:
        """Drop ``record`` for ``reason`` (a short category; ``detail`` says more)."""
        row = {
            "uid": record.uid,
            "id": record.id,
            "source": record.source,
            "reason": reason,
            "detail": detail,
        }
        self._dropped_file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._dropped[reason] += 1
        self._count(record, "dropped")

    def add(self, record: TraceRecord) -> None:
        """Add a new record (its ``uid`` must be :attr:`next_uid`) and keep it."""
        if record.uid != self.next_uid:
            raise ValueError(f"step {self.name}: added record uid {record.uid}, expected {self.next_uid}.")
        if self._records_file is None:
            self._records_file = (self.directory / "records.jsonl").open("w", encoding="utf-8")
        self._records_file.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
        self.next_uid += 1
        self.summary.added += 1
        self.keep(record)

    def close(self) -> StepSummary:
        """Flush the step's files and return its summary (``done.json`` is the caller's to write)."""
        for handle in (self._kept_file, self._dropped_file, self._records_file):
            if handle is not None:
                handle.close()
        self.summary.dropped = dict(sorted(self._dropped.items()))
        self.summary.by_source = {source: dict(counts) for source, counts in sorted(self._sources.items())}
        self.summary.rejected = self.rejects.count
        return self.summary


class Step(Protocol):
    """One pipeline step: a name, the settings that key its resume fingerprint, and ``run``."""

    name: str

    def settings(self) -> Any:
        """JSON-ready settings; a change recomputes this step and every later one."""

    def run(self, context: StepContext) -> None:
        """Read ``context.records()`` and call ``keep``/``drop``/``add`` for each record."""


def iter_records(shards: list[Path], kept: set[int] | None) -> Iterator[TraceRecord]:
    """Stream the records of ``shards`` whose uid is in ``kept`` (all of them when ``kept`` is ``None``)."""
    for shard in shards:
        with shard.open(encoding="utf-8") as handle:
            for line in handle:
                record = TraceRecord.from_json(json.loads(line))
                if kept is None or record.uid in kept:
                    yield record


def _warn_if_emptied(summaries: list[StepSummary]) -> None:
    """Log one warning naming the step that left no records, when the last step kept none."""
    if not summaries or summaries[-1].kept > 0:
        return
    emptied = next(summary for summary in summaries if summary.kept == 0)
    if emptied.name == "load":
        logger.warning("Curation kept no records: step 'load' read none (%d malformed lines rejected, see "
                       "rejects.jsonl).", emptied.rejected)
    else:
        logger.warning("Curation kept no records: step %r dropped all %d it received %s; check its settings.",
                       emptied.name, emptied.input, emptied.dropped)


def _fingerprint(previous: str, step: Step) -> str:
    material = json.dumps([previous, step.name, step.settings()], sort_keys=True, default=str)
    return hashlib.sha1(material.encode("utf-8")).hexdigest()[:16]


def _read_kept(path: Path) -> set[int]:
    with path.open(encoding="utf-8") as handle:
        return {int(line) for line in handle if line.strip()}


class CurationPipeline:
    """Runs steps in order into ``output_dir``, skipping the ones a previous run finished.

    Args:
        steps: The steps, the first of which adds the input records (``load``).
        output_dir: Where step outputs, caches, ``curated.jsonl``, the card and the manifest go.
        on_error: ``"raise"`` on a malformed input record, or ``"skip"`` it into the step's rejects file.
        resume: Reuse finished steps whose fingerprint matches; ``False`` recomputes everything.
        progress: Show a progress bar per step.
        output_format: ``"fields"`` or ``"messages"`` (see :meth:`TraceRecord.to_output`).
        title: Title of the dataset card.
    """

    def __init__(
        self,
        steps: list[Step],
        output_dir: str | Path,
        *,
        on_error: str = "raise",
        resume: bool = True,
        progress: bool = True,
        output_format: str = "fields",
        title: str = "Curated reasoning dataset",
    ):
        names = [step.name for step in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"Pipeline step names must be unique, got {names}.")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {list(ON_ERROR)}, got {on_error!r}.")
        self.steps, self.output_dir = steps, Path(output_dir)
        self.on_error, self.resume, self.progress = on_error, resume, progress
        self.output_format, self.title = output_format, title
        self.cache_dir = self.output_dir / "cache"
        self.shards: list[Path] = []
        self._kept: set[int] | None = None

    def step_dir(self, index: int) -> Path:
        """Output directory of step ``index``."""
        return self.output_dir / "steps" / f"{index:02d}_{self.steps[index].name}"

    def run(self, until: str | None = None) -> list[StepSummary]:
        """Run (or resume) the steps up to and including ``until``; return their summaries.

        Without ``until`` every step runs and the curated output, card and manifest are written.

        Raises:
            ValueError: ``until`` names no step.
        """
        names = [step.name for step in self.steps]
        if until is not None and until not in names:
            raise ValueError(f"until={until!r} is not a step of this pipeline; steps: {names}.")
        last = names.index(until) if until is not None else len(self.steps) - 1
        (self.output_dir / MANIFEST).unlink(missing_ok=True)
        fingerprint, shards, kept, next_uid = "", [], None, 0
        summaries = []
        for index, step in enumerate(self.steps[: last + 1]):
            fingerprint = _fingerprint(fingerprint, step)
            directory = self.step_dir(index)
            summary = self._finished(directory, fingerprint)
            if summary is None:
                for stale in (self.output_dir / "steps").glob("*_*"):
                    if stale.name.split("_", 1)[0].isdigit() and int(stale.name.split("_", 1)[0]) >= index:
                        shutil.rmtree(stale)
                summary = self._run_step(step, directory, fingerprint, shards, kept, next_uid)
            else:
                logger.info("Step %s: finished earlier (kept %d), skipping", step.name, summary.kept)
            if (directory / "records.jsonl").is_file():
                shards.append(directory / "records.jsonl")
            next_uid += summary.added
            kept = _read_kept(directory / "kept.txt")
            summaries.append(summary)
        self.shards, self._kept = shards, kept
        _warn_if_emptied(summaries)
        if until is None:
            self._write_outputs(summaries)
        return summaries

    def _finished(self, directory: Path, fingerprint: str) -> StepSummary | None:
        done = directory / DONE
        if not self.resume or not done.is_file():
            return None
        summary = StepSummary(**json.loads(done.read_text()))
        return summary if summary.fingerprint == fingerprint else None

    def _run_step(
        self,
        step: Step,
        directory: Path,
        fingerprint: str,
        shards: list[Path],
        kept: set[int] | None,
        next_uid: int,
    ) -> StepSummary:
        directory.mkdir(parents=True, exist_ok=True)
        rejects = Rejects(self.on_error, directory / "rejects.jsonl" if self.on_error == "skip" else None)
        context = StepContext(
            step.name, directory, list(shards), kept, next_uid, rejects, self.cache_dir, self.progress
        )
        start = time.perf_counter()
        try:
            step.run(context)
        finally:
            summary = context.close()
        summary.fingerprint, summary.seconds = fingerprint, round(time.perf_counter() - start, 3)
        (directory / DONE).write_text(json.dumps(asdict(summary), indent=2))
        logger.info(
            "Step %s: %d in, %d kept, %d added, dropped %s, rejected %d (%.1fs)",
            step.name,
            summary.input,
            summary.kept,
            summary.added,
            summary.dropped or "none",
            summary.rejected,
            summary.seconds,
        )
        return summary

    def final_records(self) -> Iterator[TraceRecord]:
        """The records the last step of the latest :meth:`run` kept, in order."""
        return iter_records(self.shards, self._kept)

    def _write_outputs(self, summaries: list[StepSummary]) -> None:
        out = self.output_dir
        per_source: Counter[str] = Counter()
        with (out / "curated.jsonl").open("w", encoding="utf-8") as handle:
            for record in self.final_records():
                handle.write(json.dumps(record.to_output(self.output_format), ensure_ascii=False) + "\n")
                per_source[record.source] += 1
        rejects = sorted(out.glob("steps/*/rejects.jsonl"))
        with (out / "rejects.jsonl").open("w", encoding="utf-8") as handle:
            for path in rejects:
                handle.write(path.read_text(encoding="utf-8"))
        final = dict(sorted(per_source.items()))
        report = {"records": sum(final.values()), "by_source": final, "steps": [asdict(s) for s in summaries]}
        (out / "report.json").write_text(json.dumps(report, indent=2))
        (out / "dataset_card.md").write_text(render_card(self.title, summaries, final), encoding="utf-8")
        manifest = {
            "records": report["records"],
            "output_format": self.output_format,
            "files": ["curated.jsonl", "rejects.jsonl", "report.json", "dataset_card.md"],
            "steps": [{"name": s.name, "fingerprint": s.fingerprint} for s in summaries],
        }
        (out / MANIFEST).write_text(
            json.dumps(manifest, indent=2)
        )  # last: its presence means the run completed
        logger.info("Wrote %d curated records to %s", report["records"], out / "curated.jsonl")
