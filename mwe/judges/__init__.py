"""The judges: LM and preference-model judges, the preference model and its training."""
