"""Items as records: an item's form in its format's public schema, its content hash, and the
JSONL and CSV files that hold them.

What record an item is written as (the anthropics/evals schema, the Inverse Scaling Prize's
``prompt``/``classes``/``answer_index``) is up to its format
(:meth:`mwe.formats.ItemFormat.from_record`, :meth:`~mwe.formats.ItemFormat.to_record`), so this
module sits above both the item (:mod:`mwe.items`) and the format registry (:mod:`mwe.formats`);
neither of those imports it.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from mwe.errors import InputFileError, RecordError
from mwe.formats import REGISTRY, RecordInvalid, detect_format, get_format
from mwe.items import Item, canonical_json


def _format_names() -> str:
    """The registered formats, for an error that lists them."""
    return " or ".join(repr(name) for name in REGISTRY)


def check_format(value: str) -> str:
    """``value`` if it names a registered item format, else a validation error listing them."""
    if value not in REGISTRY:
        raise PydanticCustomError("format", "Input should be {names}", {"names": _format_names()})
    return value


def check_item(item: Item) -> Item:
    """``item`` if its format is registered and it has the answers that format needs, else
    :class:`RecordInvalid`: what a record's import checks, for items built in code."""
    if item.format not in REGISTRY:
        raise RecordInvalid(f"unknown item format {item.format!r}: use {_format_names()}")
    get_format(item.format).check_answers(item)
    return item


def item_from_record(record: dict[str, Any]) -> Item:
    """The item of an imported record, in whichever registered format claims it (an
    anthropics/evals record by default); unknown fields go to ``metadata``."""
    return get_format(detect_format(record)).from_record(record)


def to_record(item: Item) -> dict[str, Any]:
    """The record in the item's format's public schema (anthropics/evals: schema fields in the
    public order, then metadata)."""
    return get_format(item.format).to_record(item)


def item_hash(item: Item) -> str:
    """A hash of the item's content (its record), independent of key order; two equal items
    share it."""
    return hashlib.sha256(canonical_json(to_record(item)).encode()).hexdigest()


def _describe_validation_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    if not error["loc"]:  # a check of the whole record
        return str(error["msg"])
    field = ".".join(str(p) for p in error["loc"])
    if error["type"] == "missing":
        return f"missing required field '{field}'"
    return f"field '{field}': {error['msg']}"


STDIN = "-"  # the path that means standard input


def read_source(path: str | Path) -> bytes:
    """The bytes of ``path``, read once (``-`` is standard input), or :class:`InputFileError`
    for a file that is missing or cannot be read."""
    if str(path) == STDIN:
        return sys.stdin.buffer.read()
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory, expected a .jsonl file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc.strerror})") from exc


def read_jsonl(path: str | Path) -> list[Item]:
    """The items of an anthropics/evals JSONL file (``-`` for standard input).

    Raises :class:`InputFileError` for a missing or unreadable file and :class:`RecordError`,
    naming the line, for malformed JSON or an invalid record. Blank lines are skipped.
    """
    return parse_jsonl(read_source(path), "<stdin>" if str(path) == STDIN else str(path))


def decode_text(data: bytes, source: str) -> str:
    """``data`` as UTF-8 text (a byte order mark at the start allowed), or a one-line
    :class:`InputFileError` naming ``source``."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{source}: not UTF-8 text ({exc.reason})") from None


def parse_records(data: bytes, source: str) -> list[Item]:
    """The items of a file's ``data``: CSV where ``source`` ends in ``.csv`` (the Inverse
    Scaling Prize's files), else JSONL."""
    if source.lower().endswith(".csv"):
        return parse_csv(data, source)
    return parse_jsonl(data, source)


# A cell starting with one of these is a formula to a spreadsheet (CSV injection): mwe's CSV
# puts a ' before it, as spreadsheet tools do for text, and reading a CSV takes it off again.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# The fields whose cell is always the text itself, in every CSV.
_TEXT_FIELDS = frozenset(
    {"question", "statement", "answer_matching_behavior", "prompt", "completion"}
)
# The fields that hold text or a list of texts: a cell of another JSON value stays text.
_TEXT_OR_LIST_FIELDS = frozenset({"answer_not_matching_behavior", "classes"})


def _quote_formula(cell: str) -> str:
    if cell.startswith(_FORMULA_START) or (cell[:1] == "'" and cell[1:2] in (*_FORMULA_START, "'")):
        return "'" + cell
    return cell


def _unquote_formula(cell: str) -> str:
    if cell[:1] == "'" and cell[1:2] in (*_FORMULA_START, "'"):
        return cell[1:]
    return cell


def _from_cell(key: str, cell: str) -> Any:
    """The value a CSV cell holds: text for a text field; else a JSON value (a number, true,
    null, a quoted string, an object) or a list literal (the prize's ``[' Yes', ' No']``), and
    the text itself where the cell is neither."""
    if key in _TEXT_FIELDS:
        return cell
    try:
        value = json.loads(cell, parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        value = cell
        if cell.lstrip().startswith("["):
            try:
                value = ast.literal_eval(cell)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                pass
    if key in _TEXT_OR_LIST_FIELDS and not isinstance(value, str | list):
        return cell  # " 5" is an answer, not the number 5
    return value


def _to_cell(key: str, value: Any) -> str:
    """The CSV cell of ``value``, read back by :func:`_from_cell` as the same value."""
    if isinstance(value, str):
        # Text is written as it is unless it would read back as something else ("2", "null",
        # an empty cell): then as a JSON string.
        same = value != "" and _from_cell(key, value) == value
        return value if same or key in _TEXT_FIELDS else json.dumps(value, ensure_ascii=False)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return repr(value)  # the prize's style: [' Yes', ' No']
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` with their endings, one at a time (no second copy of a large
    file in memory; only "\n" ends a line, as in a CSV file)."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end == -1 else end + 1
        yield text[start:end]
        start = end


def parse_csv(data: bytes, source: str) -> list[Item]:
    """The items of CSV ``data`` with a header row. As the Inverse Scaling Prize wrote its
    tasks every cell is text, a list-valued field (``classes``) a Python or JSON list literal,
    e.g. ``[' Yes', ' No']``; a cell of another field that is a JSON value (``0.9``, ``3``,
    ``true``) is read as that value, so that a CSV mwe wrote reads back as the same items. An
    empty cell is a missing field; a ' before a formula's first character is taken off."""
    text = decode_text(data, source)
    try:
        reader = csv.reader(_lines(text))
        header = [_unquote_formula(name) for name in next(reader, [])]
        if repeated := [name for name, n in Counter(header).items() if n > 1]:
            raise InputFileError(
                f"{source} line 1: the column {repeated[0]!r} is there twice; rename or remove "
                "one of them"
            )
        # A record's line is where it ends (a quoted cell may hold line breaks).
        rows = [(reader.line_num, cells) for cells in reader if cells]
    except csv.Error as exc:
        raise InputFileError(f"{source}: not valid CSV ({exc})") from None
    items = []
    for number, cells in rows:
        if len(cells) > len(header):
            raise RecordError(source, number, "more cells than the header has columns")
        # The prize's files begin with the row index pandas writes (a column named "" or
        # "Unnamed: 0"): a row number, not a field of the item.
        record = {
            key: _from_cell(key, _unquote_formula(cell))
            for key, cell in zip(header, cells, strict=False)
            if cell != "" and not _index_column(key)
        }
        if "classes" in record and not isinstance(record["classes"], list):
            raise RecordError(
                source, number, "field 'classes': not a list literal like [' Yes', ' No']"
            )
        items.append(_record_item(source, number, record))
    return items


def _index_column(name: str) -> bool:
    """Whether a CSV header names the unnamed index column pandas writes."""
    return not name.strip() or re.fullmatch(r"Unnamed: \d+", name.strip()) is not None


def write_csv(items: list[Item], path: Path) -> None:
    """Write items as CSV in the Inverse Scaling Prize's style: one column per record field in
    the first record's order, list values as Python literals (``[' Yes', ' No']``), other
    values that are not text as JSON; :func:`parse_csv` reads it back as the same items. A
    cell a spreadsheet would run as a formula starts with a '."""
    records = [to_record(item) for item in items]
    columns = list(dict.fromkeys(k for record in records for k in record))
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([_quote_formula(name) for name in columns])
        for record in records:
            writer.writerow(
                [_quote_formula(_to_cell(k, record[k])) if k in record else "" for k in columns]
            )


def parse_jsonl(data: bytes, source: str) -> list[Item]:
    """The items of JSONL ``data`` read from ``source`` (named in errors); a UTF-8 byte order
    mark at the start is allowed."""
    text = decode_text(data, source)
    return [
        _parse_line(source, number, line)
        # split("\n"), not splitlines(): U+2028 and friends are valid inside JSON strings.
        for number, line in enumerate(text.split("\n"), start=1)
        if line.strip()
    ]


class _NotFinite(ValueError):
    """A JSON number too large for a float (``1e400``), or NaN/Infinity, which JSON lacks."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


def _no_constant(text: str) -> float:
    raise _NotFinite(text)


def _parse_line(path: str, number: int, line: str) -> Item:
    try:
        record = json.loads(line, parse_float=_finite, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise RecordError(path, number, f"not valid JSON ({exc.msg} at column {exc.colno})")
    except _NotFinite as exc:
        raise RecordError(
            path, number, f"the number {exc} is not finite; JSON numbers must be finite"
        ) from None
    except RecursionError:
        raise RecordError(path, number, "the JSON is nested too deeply") from None
    if not isinstance(record, dict):
        raise RecordError(path, number, "expected a JSON object")
    return _record_item(path, number, record)


def _record_item(path: str, number: int, record: dict[str, Any]) -> Item:
    name = detect_format(record)
    fmt = get_format(name)
    missing = [field for field in fmt.required if field not in record]
    if missing and not any(field in record for field in fmt.required):
        # No format claimed the record and it has none of the fallback's fields either: say
        # which formats were tried and what each needs, not just the fallback's first field.
        needs: dict[tuple[str, ...], list[str]] = {}
        for other in REGISTRY:
            needs.setdefault(get_format(other).required, []).append(other)
        tried = "; ".join(
            f"{' / '.join(names)} need{'s' if len(names) == 1 else ''} {', '.join(fields)}"
            for fields, names in needs.items()
        )
        fields = ", ".join(repr(k) for k in record) or "none"
        raise RecordError(path, number, f"matches no item format (fields {fields}): {tried}")
    if missing:
        raise RecordError(path, number, f"missing required field '{missing[0]}'")
    try:
        return fmt.from_record(record)
    except ValidationError as exc:
        raise RecordError(path, number, _describe_validation_error(exc)) from None
    except RecordInvalid as exc:
        raise RecordError(path, number, str(exc)) from None


def write_jsonl(items: list[Item], path: Path) -> None:
    """Write items as JSONL in their formats' public schemas (anthropics/evals, or the Inverse
    Scaling Prize's), one record a line, in the public files' style."""
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            # allow_nan=False: NaN and Infinity are not JSON, and strict parsers reject them.
            handle.write(json.dumps(to_record(item), allow_nan=False) + "\n")
