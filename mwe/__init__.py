"""mwe: model-written evaluations, from one line of description to a versioned eval set.

The public API is re-exported here: ``from mwe import Store, import_jsonl, export_set, generate_eval``.
"""

from mwe._version import __version__
from mwe.errors import MweError, UsageError
from mwe.export import export_set
from mwe.importer import import_jsonl
from mwe.items import Item
from mwe.store import EvalSetInfo, SetRef, Store


def __getattr__(name: str) -> object:
    # The generation pipeline pulls in the model layer; import it only when asked for.
    if name in ("generate_eval", "GenerationResult"):
        from mwe.pipeline import run

        return getattr(run, name)
    raise AttributeError(f"module 'mwe' has no attribute {name!r}")


__all__ = [
    "EvalSetInfo",
    "GenerationResult",
    "Item",
    "MweError",
    "SetRef",
    "Store",
    "UsageError",
    "__version__",
    "export_set",
    "generate_eval",
    "import_jsonl",
]
