"""Import eval files (anthropics/evals JSONL; Inverse Scaling Prize JSONL or CSV) into the store
as a new version."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mwe._version import __version__
from mwe.errors import InputFileError
from mwe.item_records import STDIN, parse_records, read_source
from mwe.items import Item
from mwe.store import EvalSetInfo, Store, check_name, slugify


def read_sources(paths: Sequence[str | Path]) -> tuple[list[Item], list[dict[str, Any]]]:
    """The items of every file, and each file's provenance (path, sha256, records).

    Each file is read once, so the hash is of exactly what was parsed, even for standard input
    (``-``) or a pipe.
    """
    if not paths:
        raise InputFileError("no files given: pass one or more .jsonl files, or - for stdin")
    items: list[Item] = []
    sources = []
    for path in paths:
        shown = "<stdin>" if str(path) == STDIN else str(path)
        try:
            data = read_source(path)
            records = parse_records(data, shown)
        except MemoryError:  # one huge line or cell, held as bytes and as text at once
            raise InputFileError(
                f"{shown}: too large to read into memory; split it into smaller files"
            ) from None
        if not records:
            raise InputFileError(f"{shown}: no records (the file is empty)")
        items.extend(records)
        sources.append(
            {
                "path": _source_path(path),
                "sha256": hashlib.sha256(data).hexdigest(),
                "records": len(records),
            }
        )
    return items, sources


def _source_path(path: str | Path) -> str:
    if str(path) == STDIN:
        return "<stdin>"
    path = Path(path)
    # A pipe or device (/dev/stdin) resolves to /proc/PID/fd/pipe:[...], which names nothing.
    return str(path.resolve()) if path.is_file() else str(path.absolute())


def import_jsonl(
    store: Store,
    paths: Sequence[str | Path],
    *,
    name: str | None = None,
    description: str | None = None,
    license: str | None = None,
) -> EvalSetInfo:
    """Read anthropics/evals JSONL files into one new version and return it.

    Every file is read and validated before anything is written, so a bad line anywhere leaves
    the store unchanged. The name defaults to the first file's name (``agreeableness.jsonl`` ->
    ``agreeableness``); importing under an existing name makes its next version. ``-`` reads
    standard input, and then ``name`` is required.
    """
    if name is not None:
        check_name(name)
    elif paths and str(paths[0]) == STDIN:
        raise InputFileError("reading from standard input (-) needs --name")
    items, sources = read_sources(paths)
    stem = Path(paths[0]).name.removesuffix(".jsonl").removesuffix(".csv")
    set_name = name if name is not None else slugify(stem)
    provenance: dict[str, Any] = {"kind": "import", "sources": sources, "mwe_version": __version__}
    if license:
        provenance["license"] = license
    return store.create_version(
        set_name, items, provenance=provenance, description=description, run_kind="import"
    )
