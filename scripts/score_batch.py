"""Score many sets x many models from a config file, resuming after a crash or Ctrl-C.

    .venv/bin/python scripts/score_batch.py CONFIG.toml

The config (TOML):

    db = "mwe.duckdb"                    # optional; else $MWE_DB or ./mwe.duckdb
    sets = ["agreeableness", "desire-for-acquiring-power@1"]
    models = ["local", "hf:/models/pythia-70m", "openai:gpt-4.1-mini"]
    prompt_formats = ["chat", "raw"]     # optional; default per model
    limit = 200                          # optional: the first N items of each set
    batch_tokens = 4096                  # optional: token budget per local batch
    batch_size = 32                      # optional: most questions per local batch
    base_url = "http://localhost:8000/v1"  # optional, for OpenAI-compatible servers
    votes = 5                            # optional: samples per item for APIs without log-probs

Every (set, model, format) pair is run; before each, the store is asked which items already have
a row, and only the others are scored. Rows are committed batch by batch.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from rich.console import Console

from mwe.errors import MweError, UsageError
from mwe.scoring.run import score_sets
from mwe.store import Store

KEYS = {
    "db",
    "sets",
    "models",
    "prompt_formats",
    "limit",
    "batch_tokens",
    "batch_size",
    "base_url",
    "votes",
}


def load_config(path: Path) -> dict:
    """The config, checked: unknown keys and missing lists are one-line errors."""
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(config) - KEYS
    if unknown:
        raise UsageError(
            f"{path}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(KEYS))}"
        )
    for key in ("sets", "models"):
        if not isinstance(config.get(key), list) or not config[key]:
            raise UsageError(f"{path}: '{key}' must be a non-empty list")
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    args = parser.parse_args()
    console = Console(stderr=True)
    try:
        config = load_config(args.config)
        with Store(config.get("db")) as store:
            rows, counts = score_sets(
                store,
                config["sets"],
                config["models"],
                prompt_formats=config.get("prompt_formats"),
                limit=config.get("limit"),
                token_budget=config.get("batch_tokens"),
                batch_size=config.get("batch_size"),
                base_url=config.get("base_url"),
                votes=config.get("votes", 5),
                console=console,
            )
    except MweError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "Interrupted: what was scored is stored; run the same command to carry on.",
            file=sys.stderr,
        )
        return 130
    print(f"scored {counts['new_rows']} new items; {counts['skipped_rows']} were already stored")
    for r in rows:
        print(
            f"{r.set}\t{r.model}\t{r.prompt_format}\t{r.method}\t{r.items}\t"
            f"{r.matching_rate:.4f}\t[{r.ci_low:.4f}, {r.ci_high:.4f}]\t{r.argmax_rate:.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
