"""The launch pipeline: detect -> changes -> (frontend build) -> bytecode -> pull -> build
-> workers -> restart -> wait -> (proxies, jobs, redis) -> verify -> (repair) -> report.

`pipeline.STEPS` lists the steps in order; each lives in the module of its phase: `before`
(nothing stopped yet), `restart`, `ready`, `prove`. `run.Run` carries what they find.
"""

from cslaunch.launch.pipeline import launch

__all__ = ["launch"]
