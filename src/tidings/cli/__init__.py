"""The `tidings` command: run the gateway and administer it."""
