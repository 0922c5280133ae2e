"""mwe: model-written evaluations, from one line of description to a versioned eval set.

The public API is re-exported here: ``from mwe import Store, import_jsonl, export_set``.
"""

__version__ = "0.1.0"

from mwe.errors import MweError, UsageError
from mwe.export import export_set
from mwe.importer import import_jsonl
from mwe.items import Item
from mwe.store import EvalSetInfo, SetRef, Store

__all__ = [
    "EvalSetInfo",
    "Item",
    "MweError",
    "SetRef",
    "Store",
    "UsageError",
    "__version__",
    "export_set",
    "import_jsonl",
]
