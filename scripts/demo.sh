#!/usr/bin/env bash
# The main job, end to end, on the public sample shipped in ../shared: import a persona set,
# show it, and export it as JSONL and as a Hugging Face dataset under generated_evals/.
set -euo pipefail
cd "$(dirname "$0")/.."
MWE=.venv/bin/mwe
DATA=${MWE_DEMO_DATA:-../shared/data/anthropic-evals/persona/agreeableness.jsonl}
export MWE_DB=${MWE_DB:-demo.duckdb}

$MWE import "$DATA" --name demo-agreeableness --license cc-by-4.0
$MWE show demo-agreeableness -n 3
$MWE export demo-agreeableness --format jsonl --force
$MWE export demo-agreeableness --format hf --force
$MWE list
