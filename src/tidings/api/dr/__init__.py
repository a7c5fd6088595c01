"""Seed 000: the Hyber/GMS "dr-v2" API, where clients query a message's delivery report."""
