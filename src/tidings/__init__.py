"""Tidings: an A2P messaging gateway."""

__version__ = "0.1.0"
