"""The HTTP edge: one package per external contract, translating to the internal model."""
