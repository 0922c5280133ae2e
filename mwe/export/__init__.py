"""Sets in and out: JSONL import; export to JSONL, the Hub and the eval harnesses."""
