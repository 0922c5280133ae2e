"""The errors mwe raises.

Two families, kept shallow: :class:`UsageError` means "you used it wrong" (bad input, an unknown
set, a locked database) and the CLI exits 2 with one line; :class:`ProviderError` means a model
provider failed. Library code raises; only the CLI turns an error into a message and an exit code.
Every message says what is wrong and, where it can, how to fix it.
"""

from __future__ import annotations


class MweError(Exception):
    """Base class of every error mwe raises on purpose."""

    exit_code = 1


class UsageError(MweError):
    """The input or the invocation is wrong; the user can fix it."""

    exit_code = 2


class InputFileError(UsageError):
    """A file to read is missing, unreadable or malformed."""


class RecordError(InputFileError):
    """One record of an input file is invalid; the message names the file and line."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"{path} line {line}: {problem}")


class NotFoundError(UsageError):
    """An eval set or version does not exist."""


class InvalidNameError(UsageError):
    """A set name or reference is not well formed."""


class ExportTargetError(UsageError):
    """The export folder cannot be used: a link, protected, or not writable."""


class ExportExistsError(ExportTargetError):
    """The export target exists and is not empty."""


class StoreError(UsageError):
    """The database file cannot be used (locked, not DuckDB, missing)."""


class StoreLockedError(StoreError):
    """Another process holds the database file."""


class NotADatabaseError(StoreError):
    """The file given as the database is not a DuckDB database."""


class NotAStoreError(StoreError):
    """The file is a DuckDB database, but not one that mwe made."""


class StoreDamagedError(StoreError):
    """The store file's bytes are damaged (truncated, or failing DuckDB's checksums)."""


class IntegrityError(MweError):
    """A stored version no longer matches its content hash."""


class ProviderError(MweError):
    """A model provider failed in a way retries could not fix."""
