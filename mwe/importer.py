"""Import anthropics/evals JSONL files into the store as a new version."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from mwe import __version__
from mwe.errors import InputFileError
from mwe.items import Item, read_jsonl
from mwe.store import EvalSetInfo, Store, check_name, slugify


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    ``agreeableness``); importing under an existing name makes its next version.
    """
    files = [Path(p) for p in paths]
    if not files:
        raise InputFileError("no files given: pass one or more .jsonl files")
    items: list[Item] = []
    sources = []
    for path in files:
        records = list(read_jsonl(path))
        if not records:
            raise InputFileError(f"{path}: no records (the file is empty)")
        items.extend(records)
        sources.append(
            {"path": str(path.resolve()), "sha256": _file_sha256(path), "records": len(records)}
        )
    set_name = check_name(name) if name else slugify(files[0].name.removesuffix(".jsonl"))
    provenance = {"kind": "import", "sources": sources, "mwe_version": __version__}
    if license:
        provenance["license"] = license
    return store.create_version(
        set_name, items, provenance=provenance, description=description, run_kind="import"
    )
