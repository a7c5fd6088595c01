"""Pushing status updates to clients' URLs, signed, in order, retried on their schedule."""
