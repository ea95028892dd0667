"""How to stop a service for a restart without the 10 s stall.

A PID 1 that does not catch its stop signal (SIGTERM, or the service's stop_signal) never
reacts to it (the kernel drops default-action signals for PID 1 in a namespace), so Docker
waits the whole stop grace and then kills it. When a process below it handles the signal
(the worker under `sh -c "... && python worker.py"`) the signal goes there, as an init would
send it; when none does, waiting can only time out: kill at once. A process that catches the
signal (an RQ worker finishing its job, a server draining) gets it and its grace period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cslaunch import procs
from cslaunch.config import ServiceConfig
from cslaunch.model import Service

SIGTERM = procs.SIGTERM
DEFAULT_GRACE = 10.0  # Docker's own default stop timeout
WORKER_PATIENCE = 3.0  # seconds an RQ worker gets to exit on its own (policy requeue)
# An idle RQ worker's warm shutdown takes 0.1-0.2 s. About one in six hangs in its teardown
# (RQ 2.12 with redis-py 8.2, 7 of 40 measured): after it deregistered and logged
# "unsubscribing from channel", its pubsub thread is joined without a timeout while it waits
# out a 60 s read (rq/rq#1613). Nothing is left to lose then: it is killed. How often its
# logs are read while `docker stop` waits, in seconds.
HANG_LOOK_EVERY = 0.3

GRACEFUL, FORWARD, KILL, HELD = "graceful", "forward", "kill", "held"


@dataclass(frozen=True)
class StopMethod:
    kind: str  # graceful: `docker stop`; forward: the signal to the processes that handle
    #            it, then `docker stop`; kill: SIGKILL at once; held: stopped already,
    #            held back by the last launch (act.restart): only started
    grace: float  # seconds between the stop signal and SIGKILL (0 for kill)
    reason: str
    signal: int = SIGTERM  # the service's stop_signal
    targets: tuple[procs.Process, ...] = ()  # forward: where the signal goes
    # An RQ worker: its logs read this often while it stops, to kill it once it hangs in
    # its teardown (HANG_LOOK_EVERY).
    look_every: float | None = None


def decide(
    service: Service,
    config: ServiceConfig,
    seen: Sequence[procs.Process] | None,
    *,
    busy: str = "",
    policy: str = "requeue",
    worker: bool = False,
) -> StopMethod:
    """How to stop one container of `service`, from the processes `seen` in it (None: they
    could not be read) and, for an RQ `worker`, the job it is `busy` with."""
    signum = procs.signal_number(service.stop_signal)
    sig = procs.signal_name(signum)
    grace = config.grace if config.grace is not None else service.stop_grace
    if grace is None:
        grace = DEFAULT_GRACE
    look = None
    if worker and policy == "requeue" and config.grace is None and config.stop != GRACEFUL:
        # An idle worker's warm shutdown takes well under a second. One still running after
        # this took a job since Redis was read (or runs where Redis could not tell): its job
        # is requeued like a busy worker's, not waited for.
        grace = min(grace, WORKER_PATIENCE)
        look = HANG_LOOK_EVERY
    if config.stop == KILL:
        return StopMethod(KILL, 0.0, "configured: stop = kill", signum)
    if busy and policy == "requeue" and config.stop != GRACEFUL:
        # Its job runs the old code: waiting for it would hold the relaunch for the job's
        # length and still give an old-code result. Recovery puts it back at the front.
        return StopMethod(
            KILL, 0.0, f"RQ worker busy with job {busy}: interrupted, to run again", signum
        )

    def graceful(why: str) -> StopMethod:
        return StopMethod(GRACEFUL, grace, why, signum, look_every=look)

    if config.stop == GRACEFUL and not seen:
        return graceful("configured: stop = graceful")
    if service.init:
        return graceful(f"init: true forwards {sig}")
    first = procs.pid1(seen or ())
    if first is None:
        return graceful(f"PID 1's {sig} handling unknown")
    if first.catches(signum):
        return graceful(f"PID 1 handles {sig}")
    below = procs.handlers(seen or (), signum)
    if below:
        names = ", ".join(sorted({p.name for p in below}))
        return StopMethod(
            FORWARD,
            grace,
            f"{first.name} (PID 1) ignores {sig}; sent to {names} under it",
            signum,
            tuple(below),
            look,
        )
    if config.stop == GRACEFUL:
        return graceful("configured: stop = graceful")
    return StopMethod(KILL, 0.0, f"PID 1 ignores {sig} (would stall the full grace)", signum)
