"""`make bench`: replay vs peers, live latency, API, cluster and memory scenarios.

Run with `python -m bench [--quick]`; results go to `bench/results/latest.json` and
`bench/results/*.png`. See docs/performance.md.
"""
