"""mwe: model-written evaluations, from one line of description to a versioned eval set.

The public API is re-exported here: ``from mwe import Store, import_jsonl, export_set,
generate_eval, score, run_judge_check``. Long work is async-first (``generate_eval_async``,
``score_async``, ``run_judge_check_async``), with sync wrappers that also work inside a running
event loop.
"""

from mwe._version import __version__
from mwe.errors import MweError, UsageError
from mwe.export.export import export_set
from mwe.export.importer import import_jsonl
from mwe.formats import ItemFormat, get_format
from mwe.items import Item
from mwe.progress import ProgressEvent
from mwe.store import EvalSetInfo, SetRef, Store

# The pipeline and the scorer pull in the model layer: import them only when asked for.
_LAZY = {
    "generate_eval": "mwe.generate.run",
    "generate_eval_async": "mwe.generate.run",
    "GenerateOptions": "mwe.generate.run",
    "GenerationResult": "mwe.generate.run",
    "ModelUsage": "mwe.generate.run",
    "run_judge_check": "mwe.judges.check",
    "run_judge_check_async": "mwe.judges.check",
    "plan_judge_check": "mwe.judges.check",
    "prepare_judge_check": "mwe.judges.check",
    "JudgeCheckOptions": "mwe.judges.check",
    "JudgeCheckReport": "mwe.judges.check",
    "PreparedCheck": "mwe.judges.check",
    "summarize_checks": "mwe.judges.check",
    "run_judge_checks": "mwe.judges.check",
    "plan_judge_checks": "mwe.judges.check",
    "ChecksSummary": "mwe.judges.check",
    "JudgeCheck": "mwe.judges.judge",
    "score": "mwe.scoring.run",
    "score_async": "mwe.scoring.run",
    "ScoreOptions": "mwe.scoring.run",
    "ScoreReport": "mwe.scoring.run",
    "compare": "mwe.scoring.compare",
    "Comparison": "mwe.scoring.compare",
    "PairResult": "mwe.scoring.compare",
    "stored_results": "mwe.scoring.summary",
    "StoredResults": "mwe.scoring.summary",
    "scaling_fit": "mwe.scoring.scaling",
    "ScalingFit": "mwe.scoring.scaling",
    "build_report": "mwe.report.report",
    "ReportFiles": "mwe.report.report",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mwe' has no attribute {name!r}")


__all__ = [
    "ChecksSummary",
    "Comparison",
    "EvalSetInfo",
    "GenerateOptions",
    "GenerationResult",
    "Item",
    "ItemFormat",
    "JudgeCheck",
    "JudgeCheckOptions",
    "JudgeCheckReport",
    "ModelUsage",
    "MweError",
    "PairResult",
    "PreparedCheck",
    "ProgressEvent",
    "ReportFiles",
    "ScalingFit",
    "ScoreOptions",
    "ScoreReport",
    "SetRef",
    "Store",
    "StoredResults",
    "UsageError",
    "__version__",
    "build_report",
    "compare",
    "export_set",
    "generate_eval",
    "generate_eval_async",
    "get_format",
    "import_jsonl",
    "plan_judge_check",
    "plan_judge_checks",
    "prepare_judge_check",
    "run_judge_check",
    "run_judge_check_async",
    "run_judge_checks",
    "scaling_fit",
    "score",
    "score_async",
    "stored_results",
    "summarize_checks",
]
