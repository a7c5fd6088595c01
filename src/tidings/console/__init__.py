"""The operator web console under /console (docs/console.md)."""
