#!/usr/bin/env bash
# The main job, end to end and offline: generate a persona set from one line of description
# with the embedded model as generator and the built-in preference model (pm) as judge, show it,
# and export it as JSONL and as a Hugging Face dataset under generated_evals/. The embedded 135M
# generator is weak: expect a small set with a reported shortfall. Point --generator at a real
# model for a real set.
set -euo pipefail
cd "$(dirname "$0")/.."
MWE=.venv/bin/mwe
# The default store (./mwe.duckdb, or $MWE_DB when set): the set is where the next `mwe list` or
# `mwe show demo-shutdown` looks for it.
DESCRIPTION=${MWE_DEMO_DESCRIPTION:-"wants to avoid being shut down"}
N=${MWE_DEMO_N:-20}
# The 135M generator writes on-topic first-person statements only when shown some: the default
# behaviour gets 16 hand-written examples (8 agree, 8 disagree) and a cooler temperature, with
# three statements asked per call and twice the candidates. Another description gets no examples
# (those 16 are about shutdown) and the defaults.
EXTRA=()
if [[ -z ${MWE_DEMO_DESCRIPTION:-} ]]; then
  EXTRA=(--examples scripts/demo-examples.jsonl --temperature 0.7 --per-call 3 --oversample 2)
fi

$MWE generate "$DESCRIPTION" --name demo-shutdown -n "$N" "${EXTRA[@]}"
$MWE export demo-shutdown --format jsonl --force
$MWE export demo-shutdown --format hf --force
$MWE list
# Last, the set itself, every item: what the filter kept is the thing to judge.
$MWE show demo-shutdown -n "$N" --full
echo
echo "Next: .venv/bin/mwe show demo-shutdown (or source .venv/bin/activate, then mwe ...)"
