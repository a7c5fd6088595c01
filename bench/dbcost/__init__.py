"""`make bench-db-cost`: what one message costs PostgreSQL, per stage (bench/dbcost/run.py)."""
