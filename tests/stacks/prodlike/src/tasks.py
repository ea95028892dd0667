"""RQ jobs. A work horse imports this module for each job, so a result shows which code ran."""

import time

from src.greeting import greet


def greet_job(name: str) -> str:
    return greet(name)


def slow_job(seconds: float, name: str = "slow") -> str:
    time.sleep(seconds)
    return greet(name)
