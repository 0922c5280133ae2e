"""Option models checked into one-line usage errors that name the command-line flag."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mwe.errors import UsageError

T = TypeVar("T", bound=BaseModel)


def validated(cls: type[T], values: dict[str, Any], flags: dict[str, str] | None = None) -> T:
    """``cls(**values)``, or a :class:`UsageError` about its first bad field, named by its
    flag: ``flags[field]``, else ``--field-name``."""
    try:
        return cls(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "options"
        flag = (flags or {}).get(field, "--" + field.replace("_", "-"))
        raise UsageError(f"{flag}: {error['msg']}") from None
