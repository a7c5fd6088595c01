"""Opt-outs: numbers a client may no longer send to (STOP keywords, the API, the CLI)."""
