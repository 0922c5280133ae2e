"""The generation pipeline: spec, generate, parse, dedupe, judge, select, store."""
