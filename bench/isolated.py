"""Run a scenario in a fresh interpreter, so its peak RSS and metrics are its own."""

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def run_isolated(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    # spawn, not fork: a forked child would inherit the parent's RSS high-water mark and
    # the prometheus registry's counts.
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()
