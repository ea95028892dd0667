"""RQ jobs. Workers import this module in each work horse."""

import time

from app.greeting import greet


def greet_job(name: str) -> str:
    return greet(name)


def slow_job(seconds: float, name: str = "slow") -> str:
    time.sleep(seconds)
    return greet(name)
