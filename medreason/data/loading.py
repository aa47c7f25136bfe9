"""Load raw training records from JSONL, Parquet, a ``datasets`` id/path or memory, and select subsets.

Records keep their position in the source (``line N`` for JSONL, ``index N`` otherwise) so that any
later validation error names the file and line. Selection (the curriculum's per-stage filter and
random subset) logs how many records each rule dropped; nothing is dropped silently.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medreason.data.records import RecordConverter
from medreason.utils.config_errors import ConfigError
from medreason.utils.jsonl import RecordError
from medreason.utils.logging import get_logger
from medreason.utils.record_files import read_records, record_file_suffix

logger = get_logger(__name__)


@dataclass
class RecordSet:
    """Raw records with where each came from.

    Args:
        source: File path, dataset id or ``"train_dataset"`` for in-memory data.
        records: The records, as dicts.
        positions: ``"line N"`` / ``"index N"`` for each record, for error messages.
    """

    source: str
    records: list[dict[str, Any]]
    positions: list[str]

    def __len__(self) -> int:
        return len(self.records)

    def subset(self, indices: Sequence[int]) -> RecordSet:
        """The records at ``indices``, in that order."""
        return RecordSet(self.source, [self.records[i] for i in indices], [self.positions[i] for i in indices])

    def convert(self, converter: RecordConverter) -> list[dict[str, Any]]:
        """Prompt/completion pairs for every record (raises :class:`RecordError` on the first bad one)."""
        return [converter(r, self.source, p) for r, p in zip(self.records, self.positions, strict=True)]


def from_memory(data: Any, source: str = "train_dataset") -> RecordSet:
    """Wrap a ``datasets.Dataset``, a list of dicts or a :class:`RecordSet` as a :class:`RecordSet`."""
    if isinstance(data, RecordSet):
        return data
    records = [dict(record) for record in data]
    return RecordSet(source, records, [f"index {i}" for i in range(len(records))])


def load_records(
    path: str, split: str = "train", column_map: Mapping[str, str] | None = None
) -> RecordSet:
    """Read records from a ``.jsonl`` file, a ``.json`` file (JSON Lines or one array of records), either
    gzipped (``.jsonl.gz``, ``.json.gz``), a ``.parquet`` file, or a ``datasets`` id/directory
    (hub id, ``load_dataset`` directory, or ``save_to_disk`` output).

    Args:
        path: Local file, local dataset directory, or hub dataset id.
        split: Split to read from a ``datasets`` source.
        column_map: Renames ``{source_column: our_column}`` applied to every record.

    Raises:
        FileNotFoundError: a local-looking path that does not exist.
        ValueError: a file that cannot be read as its name says (not gzip, not UTF-8, not Parquet).
        RecordError: an empty file, or a line that is not UTF-8, not JSON or not a JSON object.
    """
    local = Path(path)
    if record_file_suffix(local) is not None:
        positions, records = [], []
        for position, record in read_records(local):
            positions.append(position)
            records.append(record)
        record_set = RecordSet(str(local), records, positions)
    else:
        if path.startswith((".", "/")) and not local.exists():
            raise FileNotFoundError(f"No such dataset directory: {local}")
        import datasets

        if (local / "state.json").is_file() or (local / "dataset_dict.json").is_file():  # save_to_disk output
            loaded = datasets.load_from_disk(str(local))
            loaded = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        else:
            loaded = datasets.load_dataset(path, split=split)
        record_set = from_memory(loaded, source=f"{path}[{split}]")
    if column_map:
        for record in record_set.records:
            for old, new in column_map.items():
                if old in record:
                    record[new] = record.pop(old)
    logger.info("Loaded %d records from %s", len(record_set), record_set.source)
    return record_set


def select_records(
    record_set: RecordSet,
    where: Mapping[str, Any] | None = None,
    max_samples: int | None = None,
    seed: int = 42,
    stage: str = "",
) -> RecordSet:
    """Keep records whose fields match ``where``, then a seeded random ``max_samples`` of them.

    ``where`` maps a field to a value or a list of accepted values, e.g.
    ``{"department": "Internal Medicine"}`` (FineMedLM-o1's second curriculum stage).

    A record without a filtered field does not match (a corpus may mix labelled records with, say,
    synthesised traces that carry no department); the count is logged.

    Raises:
        RecordError: ``record_set`` is empty, or no record at all has a field named in ``where`` (a typo
            in the filter, most likely).
        ConfigError: the filter leaves nothing to train on.
    """
    label = f"stage {stage!r}: " if stage else ""
    if not record_set.records:
        raise RecordError(record_set.source, None, None, f"{label}the source holds no records to train on.")
    indices = list(range(len(record_set)))
    for field, accepted in (where or {}).items():
        accepted_values = set(accepted) if isinstance(accepted, list | tuple) else {accepted}
        if indices and not any(field in record_set.records[index] for index in indices):
            raise RecordError(
                record_set.source, record_set.positions[indices[0]], field,
                f"no record has this field; {label}filters on it (data.filter). Check its spelling against the data.",
            )
        unlabelled = sum(field not in record_set.records[index] for index in indices)
        kept = [index for index in indices if record_set.records[index].get(field) in accepted_values]
        logger.info(
            "%sfilter %s in %s kept %d of %d records (dropped %d, %d of them without the field)",
            label, field, sorted(map(str, accepted_values)), len(kept), len(indices), len(indices) - len(kept),
            unlabelled,
        )
        indices = kept
    if max_samples is not None and len(indices) > max_samples:
        dropped = len(indices) - max_samples
        indices = sorted(random.Random(seed).sample(indices, max_samples))
        logger.info("%srandom subset of %d records (dropped %d, seed %d)", label, max_samples, dropped, seed)
    if not indices:
        raise ConfigError(
            f"{label}no records left to train on from {record_set.source} after data.filter={dict(where or {})}. "
            "Check the filter values against the data."
        )
    return record_set.subset(indices)
