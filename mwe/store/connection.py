"""The store's connection to its DuckDB file: opening it, checking and upgrading its schema,
sessions and transactions, and turning DuckDB's errors into one-line ones.

This module owns no table (the schema is :mod:`mwe.store.migrations`'s, which records itself in
``_migrations``); every table module of the package runs its SQL through
:class:`StoreConnection`'s :meth:`~StoreConnection.session` and
:meth:`~StoreConnection.transaction`.

DuckDB lets one process at a time open a file read-write, and while it has the file no other
process may open it at all, not even read-only. So a store does not keep its file open: it
holds an in-memory DuckDB of its own for its whole life and attaches the file only for a
session (one read, one batch of writes, one transaction) and detaches it right after, which
releases the file for the next process. Model calls and other long work happen between
sessions, with the file closed, so ``mwe list`` or ``mwe results`` can read while ``mwe score``
writes. A session that finds the file in use retries for a while (``MWE_STORE_WAIT_S``,
default 30 s), then fails in one line that names the process holding it. Attaching costs about
3 ms on a warm file (opening a new DuckDB for each session would cost about 20 ms, most of it
DuckDB starting up), and a write session ~25 ms more for writing its changes into the file;
the writers batch their rows to keep that small. An in-memory store (``":memory:"``) and a
store whose :attr:`~StoreConnection.conn` was asked for (by code running its own SQL) keep
their connection until closed.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import duckdb
import pyarrow as pa
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from mwe import env
from mwe.errors import (
    NotADatabaseError,
    NotAStoreError,
    StoreDamagedError,
    StoreError,
    StoreLockedError,
)
from mwe.secrets import redact, redact_url
from mwe.store import migrations

logger = logging.getLogger(__name__)

DEFAULT_DB = "mwe.duckdb"
# First lines of DuckDB errors that mean the file's bytes are damaged, or cannot be written.
_DAMAGED = ("Corrupt database file", "Could not read enough bytes", "checksum", "Serialization")
_UNWRITABLE = ("read-only", "permission denied", "no space left", "could not write", "cannot open")
_LOCK_PID_RE = re.compile(r"PID (\d+)")
#: How long a session waits for a file another process is using, unless MWE_STORE_WAIT_S says.
DEFAULT_WAIT_S = 30.0
_ALIAS = "store"  # the attached file's name inside the store's own in-memory DuckDB


def default_db_path() -> Path:
    """The database path: ``$MWE_DB`` if set, else ``./mwe.duckdb``."""
    return env.get("MWE_DB") or Path(DEFAULT_DB)


class _Busy(Exception):
    """The file is held by another process (``pid``), or by another store of this one."""

    def __init__(self, pid: str | None) -> None:
        super().__init__(pid)
        self.pid = pid


def _check_path(path: Path, read_only: bool, create: bool) -> None:
    if not create and not path.exists():
        # DuckDB would make a new empty store here, and whatever is written next would land
        # in it instead of the one the caller opened before.
        raise StoreError(
            f"the store {path} is gone (moved or deleted while in use): point --db / MWE_DB at "
            "where it is now"
        )
    if read_only and not path.exists():
        raise StoreError(
            f"no database at {path}: import or generate a set first, or point --db / MWE_DB "
            "at an existing one"
        )
    if path.is_dir():
        raise NotADatabaseError(f"{path} is a directory; --db must name a DuckDB file")


def _attach(base: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> None:
    """Attach the file to ``base`` as its default database, turning DuckDB's errors into ones
    that say what to do (:class:`_Busy` where the file is in use, for the caller to retry)."""
    quoted = str(path).replace("'", "''")
    try:
        base.execute(f"ATTACH '{quoted}' AS {_ALIAS}" + (" (READ_ONLY)" if read_only else ""))
    except duckdb.IOException as exc:
        message = str(exc)
        if "Could not set lock" in message:
            pid = _LOCK_PID_RE.search(message)
            raise _Busy(pid.group(1) if pid else None) from None
        if "not a valid DuckDB database" in message:
            raise NotADatabaseError(
                f"{path} is not a DuckDB database; point --db / MWE_DB at a .duckdb file"
            ) from None
        raise store_failure(path, exc) from None
    except duckdb.Error as exc:
        if "Unique file handle conflict" in str(exc):  # another store of this process has it
            raise _Busy(str(os.getpid())) from None
        raise store_failure(path, exc) from None
    base.execute(f"USE {_ALIAS}")


def _detach(base: duckdb.DuckDBPyConnection) -> None:
    """Release the file (what was written is in it once this returns)."""
    base.execute("USE memory")
    base.execute(f"DETACH {_ALIAS}")


def holder(pid: str | None) -> str:
    """Who holds a store file: ``another process (PID n: `its command`)``, the command where
    the system tells (credentials masked)."""
    if pid is None:
        return "another process"
    if pid == str(os.getpid()):
        return f"another store of this process (PID {pid})"
    try:  # Linux; elsewhere the PID alone
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"another process (PID {pid})"
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    for k, arg in enumerate(args):  # `python -m mwe ...` or `.../bin/mwe ...`: as typed
        if arg == "-m" and args[k + 1 : k + 2] == ["mwe"]:
            args = ["mwe", *args[k + 2 :]]
            break
        if Path(arg).name == "mwe":
            args = ["mwe", *args[k + 1 :]]
            break
    else:  # another program: without the interpreter's and the script's folders
        if args and Path(args[0]).name.startswith("python") and len(args) > 1:
            args = args[1:]
        if args:
            args[0] = Path(args[0]).name
    command = redact(" ".join(redact_url(a) or a for a in args))
    command = "".join(c if c.isprintable() else "?" for c in command)
    if len(command) > 200:
        command = command[:199] + "…"
    return (
        f"another process (PID {pid}: `{command}`)" if command else f"another process (PID {pid})"
    )


def wait_seconds() -> float:
    """How long a session waits for a store file in use elsewhere (``MWE_STORE_WAIT_S``)."""
    value = env.get("MWE_STORE_WAIT_S")
    return DEFAULT_WAIT_S if value is None else float(value)


def store_failure(path: Path, exc: duckdb.Error) -> StoreError:
    """The one-line error for DuckDB failing on the store file ``path`` (damaged, unwritable,
    or anything else), in place of DuckDB's multi-line message."""
    text = str(exc).strip()
    detail = text.splitlines()[0] if text else type(exc).__name__
    if any(marker in detail for marker in _DAMAGED):
        return StoreDamagedError(
            f"{path} is damaged ({detail}); restore it from a backup, or point --db / MWE_DB "
            "at another store"
        )
    if isinstance(exc, duckdb.TransactionException) or any(
        marker in detail.lower() for marker in _UNWRITABLE
    ):
        return StoreError(
            f"cannot write to {path} ({detail}); make its folder writable and check the free "
            "space, or use another --db"
        )
    return StoreError(f"{path}: the database failed ({detail})")


def first(result: duckdb.DuckDBPyConnection) -> Any:
    """The first value of a query's one row (an aggregate, an INSERT ... RETURNING)."""
    row = result.fetchone()
    if row is None:  # pragma: no cover - these queries always give a row
        raise StoreError("the store gave no row where one was expected")
    return row[0]


def as_dicts(result: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """A query's rows as dicts keyed by its column names."""
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def insert_arrow(conn: duckdb.DuckDBPyConnection, rows: pa.Table, sql: str) -> None:
    """Run ``sql``, an ``INSERT ... SELECT ... FROM _rows``, over an Arrow table: one statement
    for many rows, where row-by-row inserts are ~100x slower."""
    conn.register("_rows", rows)
    try:
        conn.execute(sql)
    finally:
        conn.unregister("_rows")


class StoreConnection:
    """The connection every table module of the store works through.

    Open read-only for anything that only reads. The file is attached only for the length of
    a :meth:`session`, so other processes can use it in between (see the module's docstring).
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        create: bool = True,
    ):
        """Open the store at ``path`` (default: ``MWE_DB``, else the user's data folder).
        ``create=False`` refuses to make a new file where none is, for a caller that opened
        this store before and must not write into a fresh empty one if it was moved away."""
        self.path = Path(path) if path is not None else default_db_path()
        self.read_only = read_only
        self._memory = str(path) == ":memory:"
        # A file this store creates is removed again on close if nothing was stored in it.
        self._created = not read_only and not self._memory and not self.path.exists()
        self._lock = threading.RLock()  # one session at a time, whichever thread asks
        self._depth = 0  # sessions open (they nest: a transaction's reads are in it)
        self._attached = False
        self._pinned = self._memory  # keep the connection between sessions
        self._closed = False
        self.sessions = 0  # how many times the file was attached (for measuring)
        if not self._memory:
            _check_path(self.path, read_only, create)
        self._base = duckdb.connect(":memory:")
        if not self._memory:  # what spills to disk goes beside the file, as DuckDB's own does
            spill = str(self.path.with_name(self.path.name + ".tmp")).replace("'", "''")
            self._base.execute(f"SET temp_directory = '{spill}'")
        try:
            with self.session():
                self._check_schema()
        except BaseException as exc:
            self.close()
            if isinstance(exc, duckdb.Error):
                raise store_failure(self.path, exc) from None
            raise

    def _check_schema(self) -> None:
        # Only a write opens a store for upgrade, and never one that is not mwe's: a read
        # command on someone else's DuckDB file must leave it exactly as it was.
        tables = migrations.user_tables(self._base)
        if tables and "_migrations" not in tables:
            shown = ", ".join(tables[:3]) + (", ..." if len(tables) > 3 else "")
            raise NotAStoreError(
                f"{self.path} is a DuckDB database but not an mwe store (it holds {shown}); "
                "mwe leaves it alone: point --db / MWE_DB at an mwe store or a new file"
            )
        if not self.read_only:
            migrations.migrate(self._base)
        elif not tables:
            raise NotAStoreError(
                f"{self.path} is an empty DuckDB file, not an mwe store: import or generate a "
                "set into it first"
            )
        elif todo := migrations.pending(self._base):
            raise StoreError(
                f"{self.path} was written by an older mwe ({len(todo)} schema change(s) behind): "
                f"upgrade it with `mwe --db {self.path} migrate`"
            )

    def _attach_waiting(self) -> None:
        """Attach the file, retrying for a while when another process has it."""
        wait = wait_seconds()
        # Create the file only the first time: later, a file gone means it was moved away.
        _check_path(self.path, self.read_only, create=not self.sessions)

        def waiting(state: RetryCallState) -> None:
            if state.attempt_number == 1 and state.outcome is not None:
                busy = state.outcome.exception()
                pid = busy.pid if isinstance(busy, _Busy) else None
                logger.info("%s is in use by %s: waiting up to %g s", self.path, holder(pid), wait)

        retrying = Retrying(
            retry=retry_if_exception_type(_Busy),
            stop=stop_after_delay(wait),
            # Short waits first: another mwe holds the file for milliseconds at a time.
            wait=wait_random_exponential(multiplier=0.005, max=0.25),
            before_sleep=waiting,
            reraise=True,
        )
        try:
            retrying(_attach, self._base, self.path, self.read_only)
        except _Busy as busy:
            raise StoreLockedError(
                f"{self.path} is in use by {holder(busy.pid)}"
                + (f" and stayed so for {wait:g} s" if wait else "")
                + "; wait for it to finish, or use another database with --db "
                "(MWE_STORE_WAIT_S sets how long to wait)"
            ) from None
        self._attached = True
        self.sessions += 1

    def _release(self) -> None:
        if self._attached:
            self._attached = False
            _detach(self._base)

    @property
    def conn(self) -> duckdb.DuckDBPyConnection:
        """The connection, for code that runs its own SQL (the tests): from now on the store
        keeps the file open until :meth:`close`, as a held DuckDB connection would."""
        with self._lock:
            self._check_open()
            if not self._memory and not self._attached:
                self._attach_waiting()
            self._pinned = True
            return self._base

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self.path} was closed: open it again")

    @contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The connection with the file attached, for one read or one batch of writes; the
        file is released when the outermost session ends. Sessions nest, and a store takes
        them one at a time (a worker thread writing the call cache waits for the event loop's
        session to end). Wrap several reads in one session to read them from one state of the
        file at one attach."""
        with self._lock:
            self._check_open()
            if self._depth == 0 and not self._memory and not self._attached:
                self._attach_waiting()
            self._depth += 1
            try:
                yield self._base
            finally:
                self._depth -= 1
                if self._depth == 0 and not self._pinned:
                    self._release()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run a block in one transaction: all of it is written, or none of it."""
        with self.session() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close the connection; a file this store created and left empty is removed."""
        with self._lock:
            if self._closed:
                return
            try:
                # Never attached (it failed to): nothing was written, and the file is not ours.
                empty = self._created and self.sessions > 0 and self._holds_nothing()
            finally:
                self._closed = True
                try:
                    self._release()
                finally:
                    self._base.close()
            if empty:
                for leftover in (self.path, self.path.with_name(self.path.name + ".wal")):
                    leftover.unlink(missing_ok=True)
                self._created = False

    def _holds_nothing(self) -> bool:
        try:
            with self.session() as conn:
                tables = [t for t in migrations.user_tables(conn) if t != "_migrations"]
                return not any(
                    first(conn.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")'))
                    for table in tables
                )
        except (duckdb.Error, StoreError):
            return False  # cannot tell: keep the file

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
