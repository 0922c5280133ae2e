"""The package works installed from its wheel, not only from this checkout: everything it reads
at run time ships inside ``mwe/``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from .conftest import REPO
from .test_generate import generate_args, scripted_server, write_examples


def run(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # the exit status is asserted by each caller
        [str(a) for a in args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        **kwargs,  # type: ignore[call-overload]
    )


def test_an_installed_wheel_generates_a_set(tmp_path: Path) -> None:
    # Build from a copy of the sources, so that the build leaves nothing in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    shutil.copytree(REPO / "mwe", src / "mwe", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "prompts", src / "prompts")
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(REPO / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    built = run(*pip, "wheel", src, "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist")
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("mwe-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for fmt in ("persona", "choice"):
        for template in ("understand.j2", "generate.j2", "judge.j2", "relevance.j2"):
            assert f"mwe/prompts/{fmt}/{template}" in names
    assert "mwe/prompts/topics.txt" in names and "mwe/py.typed" in names
    for page in ("review.html", "review.js", "review.css", "transcripts.html"):
        assert f"mwe/review/web/{page}" in names
    assert "mwe/report/templates/report.html.j2" in names
    for template in ("inspect_task.py.j2", "lm_eval_task.yaml.j2", "lm_eval_utils.py.j2"):
        assert f"mwe/export/templates/{template}" in names

    site = tmp_path / "site"
    installed = run(*pip, "install", "--no-deps", "--target", site, wheel)
    assert installed.returncode == 0, installed.stderr
    # The installed copy comes first on the path; the checkout is nowhere on it (cwd elsewhere).
    env = os.environ | {"PYTHONPATH": str(site), "OPENAI_API_KEY": "sk-test-key"}
    work = tmp_path / "work"
    work.mkdir()
    where = run(sys.executable, "-c", "import mwe; print(mwe.__file__)", env=env, cwd=work)
    assert where.stdout.strip() == str(site / "mwe" / "__init__.py"), where.stdout + where.stderr

    examples = write_examples(work / "examples.jsonl")
    with scripted_server() as server:
        args = generate_args(server, examples, "-n", "20", "--name", "from-wheel")
        made = run(sys.executable, "-m", "mwe", "--db", "w.duckdb", *args, env=env, cwd=work)
        assert made.returncode == 0, made.stdout + made.stderr
    shown = run(
        sys.executable,
        "-m",
        "mwe",
        "--db",
        "w.duckdb",
        "show",
        "from-wheel",
        "--json",
        env=env,
        cwd=work,
    )
    info = json.loads(shown.stdout)
    assert info["items"] > 0
    assert info["provenance"]["templates"]["folder"] == "mwe/prompts/persona"
    # The pages read their files from the installed package: the report renders, the review
    # app serves its script.
    report = run(
        sys.executable, "-m", "mwe", "--db", "w.duckdb", "report", "--out", "r", env=env, cwd=work
    )
    assert report.returncode == 0, report.stdout + report.stderr
    assert "from-wheel@1" in (work / "r" / "index.html").read_text(encoding="utf-8")
    serve = (
        "from starlette.testclient import TestClient; from mwe.review.server import *; "
        "from mwe.store import Store; s = Store('w.duckdb'); "
        "app = create_app(start_session(s, 'from-wheel', 'me', None, 0, 'w.duckdb')); "
        "c = TestClient(app, base_url='http://127.0.0.1'); "
        "print(c.get('/static/review.js').status_code, c.get('/').status_code)"
    )
    served = run(sys.executable, "-c", serve, env=env, cwd=work)
    assert served.stdout.split() == ["200", "200"], served.stdout + served.stderr
