"""The build. Everything is configured in pyproject.toml but one step: the repository's
``prompts/`` (the one source of the Jinja templates) is copied into the wheel as
``mwe/prompts/``. A source checkout or an editable install reads ``prompts/`` in place."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROMPTS = Path(__file__).resolve().parent / "prompts"


class BuildPyWithPrompts(build_py):
    """``build_py``, then ``prompts/`` copied to ``<build>/mwe/prompts/``."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "mwe" / "prompts"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(PROMPTS, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithPrompts})
