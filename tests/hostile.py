"""Helpers for the hostile-input tests: a workspace of bad files around a real store, and a
snapshot of every byte in it, so a test can show that a refused command changed nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mwe.cli import cli
from mwe.generate.templates import PROMPTS_DIR

from .conftest import PERSONA

GOOD = PERSONA / "agreeableness.jsonl"
FIRST = GOOD.read_text(encoding="utf-8").splitlines()[0]
TEMPLATES = PROMPTS_DIR / "persona"


def tree(root: Path) -> dict[str, object]:
    """Every file and folder under ``root``: its mode, and a hash of a file's bytes."""
    seen: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        key = str(path.relative_to(root))
        if path.is_symlink():
            seen[key] = ("link", os.readlink(path))
        elif path.is_dir():
            seen[key] = ("dir", oct(info.st_mode))
        else:
            seen[key] = (oct(info.st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
    return seen


def record(**changes: object) -> str:
    """The first public agreeableness record as a JSON line, with ``changes`` applied."""
    data = json.loads(FIRST)
    data.update(changes)
    return json.dumps(data)


@dataclass
class Workspace:
    """A folder with a store holding ``agreeableness@1``, used as the working directory."""

    root: Path
    db: Path

    def mwe(self, *args: object, input: str | bytes | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(cli, ["--db", str(self.db), *map(str, args)], input=input)

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    def templates(self, name: str, extra: str | bytes = "", file: str = "understand.j2") -> Path:
        """A copy of the persona templates with ``extra`` appended to ``file``."""
        folder = self.root / name
        shutil.copytree(TEMPLATES, folder)
        path = folder / file
        if isinstance(extra, bytes):
            path.write_bytes(path.read_bytes() + extra)
        else:
            path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
        return folder


def one_line_error(result: Result, code: int, *fragments: str, progress: bool = False) -> str:
    """Check that ``result`` failed with ``code`` and one line on stderr holding ``fragments``
    (after the progress bars of the work done before it failed, with ``progress``)."""
    assert result.exit_code == code, (result.exit_code, result.output)
    message = result.stderr.strip()
    if progress:
        *bars, message = message.splitlines()
        assert all("━" in bar for bar in bars), bars
    assert message.startswith("Error: "), message
    assert "\n" not in message, message
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in message, message
    return message


@contextmanager
def tmpfs(mount: Path, size: str | None = None) -> Iterator[Path]:
    """``mount``, a new tmpfs of ``size`` (e.g. ``"64k"``: a disk that fills up), unmounted
    after (skips the test where mounting needs a root it does not have)."""
    mount.mkdir()
    options = ["-o", f"size={size}"] if size else []
    if subprocess.run(
        ["mount", "-t", "tmpfs", *options, "tmpfs", str(mount)], check=False, capture_output=True
    ).returncode:
        pytest.skip("needs root to mount a tmpfs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@contextmanager
def read_only_mount(mount: Path) -> Iterator[Workspace]:
    """A workspace in ``mount``, a tmpfs holding a store with ``agreeableness@1`` that is
    remounted read-only."""
    with tmpfs(mount):
        ws = Workspace(mount, mount / "store.duckdb")
        assert ws.mwe("import", GOOD).exit_code == 0
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield ws
