"""The steps that prove the result: the code each container runs is the code on disk;
where it is not, one repair pass, then the verdict stands."""

from __future__ import annotations

import os

from cslaunch import act, bytecode, docker, pycs_inside, scan, verify, volumes
from cslaunch.containers import by_service, project_containers
from cslaunch.launch.checks import service_checks
from cslaunch.launch.run import Run
from cslaunch.ui import StepResult
from cslaunch.wait import Readiness, wait_ready


def start_proof(run: Run) -> None:
    """The proof reads files and pycs in the containers, in the background, and relies on
    the last proof for what did not move since. A no-op may take the containers detect read
    (and the looks asked again meanwhile, `ahead`)."""
    noop = run.plan.noop
    run.proving = run.pool.submit(
        verify.verify_stack,
        run.found,
        run.changes,
        run.compose,
        run.found.containers if noop else None,
        previous=run.last_proof,
        ahead=run.ahead if noop else None,
        listed=_listed(run) if noop else None,
    )


def _listed(run: Run) -> scan.Scan | None:
    """The bytecode under the Python roots as the launch's walk of every tree found it,
    when the bytecode step removed none and the walk entered every root as it is spelled:
    not listed again (0.07-0.1 s at 100k files). A root the walk did not enter (`..` in
    its path, behind a link, inside a pruned directory, another spelling on a file system
    that ignores case) is listed again: from the walk, it would look empty."""
    cleaned, cs = run.report.bytecode, run.changes
    if not cs.walked or cleaned is None or cleaned.files or cleaned.dirs:
        return None
    roots = [str(r) for r in run.found.roots.roots if r.is_dir()]
    if not all(os.path.normpath(r) == r and scan.enters(cs.scan.tops, r) for r in roots):
        return None
    listed = bytecode.under(cs.scan.bytecode, roots)
    unreadable = bytecode.under(cs.scan.unreadable, roots)
    return scan.Scan(cs.scan.started_ns, bytecode=listed, unreadable=unreadable, tops=roots)


def proving(run: Run) -> bool:
    return run.proving is not None and not run.failed


def collect_proof(run: Run, st: StepResult) -> None:
    assert run.proving is not None
    while True:
        try:
            run.report.verification = checked = run.proving.result(timeout=0.1)
            break
        except TimeoutError:
            if run.superseded():
                st.summary = "ended early: newer saves came in, the next launch proves them"
                return
    st.summary = verify.summary(checked)


def found_stale(run: Run) -> bool:
    return bool(run.report.verification and run.report.verification.stale)


def repair(run: Run, st: StepResult) -> None:
    """Something changed the code behind our back (a `docker cp`, a file written in the
    container, a stale pyc): the stale services are recreated once, then proved again."""
    checked = run.report.verification
    assert checked is not None  # found_stale
    names = sorted({v.service for v in checked.stale})
    verdicts, run.hidden = _recreate(run, checked, names)
    for v in verdicts:
        # Recreated, not left running: its state is the repair's.
        outcome = run.outcomes[v.service]
        outcome.action, outcome.state, outcome.detail = "repaired", v.state, v.reason
    for h in run.hidden:
        run.outcomes[h.service].detail += (
            f"; its anonymous volume at {h.target} hid the image's new code: renewed"
            if h.renew
            else f"; an anonymous volume at {h.target} hides the image's code"
        )
    run.report.verification = checked = verify.verify_stack(run.found, run.changes, run.compose)
    st.summary = f"recreated {', '.join(names)}; " + verify.summary(checked)


def _recreate(
    run: Run, checked: verify.Verification, names: list[str]
) -> tuple[list[Readiness], list[volumes.Hidden]]:
    """Remove stale bytecode the host holds for the stale services, then recreate them from
    their images (a recreated container drops whatever was written into it). Where an
    anonymous volume hides the image's code, it is renewed if it holds nothing else.
    Returns how ready each is after, and those volumes."""
    found, cs, compose = run.found, run.changes, run.compose
    host_pycs = [
        (host, "stale")
        for v in checked.stale
        for path, _ in v.problems
        if path.endswith((".pyc", ".pyo"))
        for host in [verify.host_path(found.stack.services[v.service], path)]
        if host is not None
    ]
    cleaned = bytecode.remove(host_pycs, roots=list(found.roots.roots))
    current = by_service(project_containers(compose))
    pycs_inside.remove(cleaned.skipped, found.stack, current)
    stale_paths = {v.service: [path for path, _ in v.problems] for v in checked.stale}
    hidden = volumes.find_hidden(found.stack.services, stale_paths, cs.files, cs.entries, current)
    renew = sorted(h.service for h in hidden if h.renew)
    act.stop_ahead(act.stop_plan(found.stack, run.project.config, current, names))
    for group, flags in (
        ([n for n in names if n not in renew], ()),
        (renew, ("--renew-anon-volumes",)),
    ):
        if group:
            docker.compose_step(
                compose,
                "up",
                "--detach",
                "--no-build",
                "--force-recreate",
                *flags,
                "--no-deps",
                *group,
                what="docker compose up --force-recreate",
            )
    ready = wait_ready(
        compose,
        [found.stack.services[n] for n in names],
        timeout=run.timeout,
        checks=service_checks(run),
    )
    return ready, hidden
