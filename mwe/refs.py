"""Set names and references (``name``, ``name@N``): the rule every command and the store share.

Below the store and the environment checks, which both need it, so neither imports the other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from mwe.errors import InvalidNameError, NotFoundError

# Matched with fullmatch: `$` alone would also accept a name followed by a newline.
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
_VERSION_RE = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() accepts '١'


def slugify(text: str) -> str:
    """Turn a file stem or description into a valid set name."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug[:100] or "eval"


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid set name, else raise with a suggested fix."""
    if not _NAME_RE.fullmatch(name):
        raise InvalidNameError(
            f"invalid set name {name!r}: use lower-case letters, digits, '.', '_' and '-' "
            f"(for example {slugify(name)!r})"
        )
    return name


class _Versioned(Protocol):
    @property
    def version(self) -> int: ...


V = TypeVar("V", bound=_Versioned)


@dataclass(frozen=True)
class SetRef:
    """A parsed reference: a name and a version, or ``None`` for the latest."""

    name: str
    version: int | None

    @classmethod
    def parse(cls, ref: str) -> SetRef:
        """Parse ``name`` or ``name@N``."""
        name, sep, version = ref.partition("@")
        check_name(name)
        if not sep:
            return cls(name, None)
        if not _VERSION_RE.fullmatch(version) or int(version) < 1:
            raise InvalidNameError(
                f"invalid version in {ref!r}: write NAME@N with N a version number, e.g. {name}@1"
            )
        return cls(name, int(version))

    def pick(self, versions: Sequence[V], what: str | None = None) -> V:
        """The version this reference names among ``versions`` (oldest first, not empty): the
        last for a bare name. Sets, judges and rollout suites all pick so; ``what`` names the
        thing in the error (default: the name)."""
        if self.version is None:
            return versions[-1]
        for info in versions:
            if info.version == self.version:
                return info
        known = ", ".join(str(v.version) for v in versions)
        raise NotFoundError(
            f"{what or self.name} has no version {self.version} (versions: {known})"
        )
