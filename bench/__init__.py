"""`make bench`: the foundation benchmark (replay throughput and live latency).

Run with `python -m bench`; results go to `bench/results/latest.json`.
"""
