"""`make bench-db-cost`: what one message costs PostgreSQL (WAL, commits, row writes, statements)."""
