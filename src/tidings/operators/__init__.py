"""Operator accounts: the people who may open the web console (docs/console.md)."""
