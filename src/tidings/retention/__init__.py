"""Retention: message history past `TIDINGS_RETENTION_DAYS` goes, whole weeks at a time on
PostgreSQL (docs/architecture.md, "Partitions and retention")."""
