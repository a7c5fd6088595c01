"""Storage plumbing shared by every domain package: engine, sessions, column types."""
