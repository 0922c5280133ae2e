"""Dynamic evals: multi-turn rollouts (``mwe rollout``), red-teaming (``mwe redteam``)."""
