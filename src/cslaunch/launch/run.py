"""One launch in progress: what its steps have found and done so far, and what a step is."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from cslaunch import docker, jobs, proof, proofrun, verify, volumes
from cslaunch.changes import ChangeSet
from cslaunch.plan import Plan
from cslaunch.project import Project
from cslaunch.report import LaunchReport, ServiceOutcome, Step
from cslaunch.stack import Detected, LaunchOptions, Prepared
from cslaunch.ui import UI, StepResult
from cslaunch.wait import Readiness


@dataclass
class Run:
    """What a launch knows, filled in step by step. Fields without a default are set by the
    step that finds them (detect: `found`; changes: `changes`, `plan`) before any later step
    reads them."""

    project: Project
    options: LaunchOptions
    ui: UI
    pool: ThreadPoolExecutor  # work that runs alongside the steps
    prepared: Prepared | None = None  # detect and changes, done ahead by `watch`
    started: docker.Pending | None = None  # `docker compose config`, begun at start-up
    ahead: proofrun.Ahead | None = None  # the last proof's looks, asked again meanwhile
    # Whether files were saved since the launch read them (its change set) that it does not
    # serve (watch): they end its waiting steps, for the next launch to do with theirs.
    newer_saves: Callable[[ChangeSet], bool] | None = None
    # Told at once which containers the restart held back stopped (watch: so that a Ctrl-C
    # before the launch ends still starts them).
    on_held: Callable[[list[str]], None] | None = None
    report: LaunchReport = field(default_factory=lambda: LaunchReport("", "relaunch"))

    found: Detected = field(init=False)
    changes: ChangeSet = field(init=False)
    plan: Plan = field(init=False)
    outcomes: dict[str, ServiceOutcome] = field(default_factory=dict)
    running: bool = False  # some container of the stack ran when the launch began

    discovering: Future[jobs.Discovered] | None = None
    workers: jobs.Discovered | None = None
    interrupted: set[str] = field(default_factory=set)  # may have cut an RQ job short
    recovering: Future[jobs.RecoveryReport] | None = None
    proving: Future[verify.Verification] | None = None
    failed: list[Readiness] = field(default_factory=list)  # services that never got ready
    completed: list[str] = field(default_factory=list)  # services whose job was done (exit 0)
    last_proof: proof.Proof | None = None
    hidden: list[volumes.Hidden] = field(default_factory=list)  # anonymous volumes over code
    ended_early: bool = False  # newer saves ended its waiting steps

    @property
    def compose(self) -> docker.ComposeProject:
        return self.project.compose

    @property
    def timeout(self) -> float:
        return self.options.timeout or self.project.config.timeout

    @property
    def rq(self) -> jobs.RQSetup | None:
        """The stack's RQ setup: as found in Redis when the workers step asked, else as the
        command lines and the configuration say."""
        return jobs.setup_of(self.found, self.workers)

    def superseded(self) -> bool:
        """Newer saves came in: what is left to wait for or prove, the next launch does."""
        if not self.ended_early and self.newer_saves is not None and self.newer_saves(self.changes):
            self.ended_early = True
        return self.ended_early

    @contextmanager
    def step(self, name: str) -> Iterator[StepResult]:
        """A step on the screen and in the report, with its duration and summary."""
        with self.ui.step(name) as st:
            yield st
        self.report.steps.append(Step(name, st.seconds, st.summary))


def always(run: Run) -> bool:
    return True


@dataclass(frozen=True)
class LaunchStep:
    """One step of the launch: its name, when it applies, and what it does. `act` writes
    what it found into the run and a few words into the step's summary."""

    name: str
    act: Callable[[Run, StepResult], None]
    applies: Callable[[Run], bool] = always
    title: Callable[[Run], str] | None = None  # a name that depends on the run
    waits: bool = False  # only waits or checks: newer saves skip it (see Run.newer_saves)

    def shown_as(self, run: Run) -> str:
        return self.title(run) if self.title else self.name
