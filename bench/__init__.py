"""Tidings' load benchmark: `python -m bench.run --database {sqlite,postgres}`.

See bench/README.md. Everything here talks only to 127.0.0.1 and bounds every loop in
count and time.
"""
