"""Side by side, end to end: Tidings and Kannel on one workload (issue 13).

`python -m bench.e2e --database sqlite|postgres` (see bench/README.md).
"""
