"""The red-teaming format: the failing cases of `mwe redteam`, stored as a set.

Each item is a test input (the question) and the target's reply that the classifier flagged
(the matching answer); there is no other answer, so like sequence_prob an item is measured by
the likelihood of that reply: a model's loss on the set says how readily it would give the
failing replies. The classifier's score and the round travel in the metadata, so the set
exports in the anthropics/evals schema like any other (with an empty list of other answers).
"""

from __future__ import annotations

from typing import Any

from mwe.formats import ItemFormat


class RedTeamFormat(ItemFormat):
    """A test input and the failing reply it drew; written by `mwe redteam`, not generate."""

    name = "redteam"
    labels = ()
    judge_answers = ()
    generated = False
    min_answers = 1
    scaling_metrics = ("loss",)

    def claims(self, record: dict[str, Any]) -> bool:
        return record.get("answer_not_matching_behavior") == [] and "classifier_score" in record
