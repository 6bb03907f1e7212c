"""``--executor ray``: the same jobs on a Ray cluster (or a local Ray started for the run).

One actor per (model, runtime) group holds the loaded model (``num_gpus=1`` where the group runs
on CUDA); a group's cases go to the actors of its model, at most ``workers`` actors at a time.
Each actor returns an ``Outcome`` with the ``CaseResult`` as JSON-able data; the driver stores it
in its own cache and renders the site exactly as a local build. An actor that dies has its case
retried once on a fresh actor, then reported as failed. Ctrl-C kills the actors; what finished
is already in the driver's cache, so a rerun resumes. The steps inside a case (attribution,
graph layer i of L, faithfulness sets) reach the driver through a small ``ProgressBox`` actor,
as the local workers' reach it through their queue."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from ..errors import ReportgenError
from .jobs import Outcome, Work
from .local import MAX_ATTEMPTS, OnOutcome, OnProgress, add_follow_ups, group_order
from .worker import CaseWorker, set_threads

RAY_VERSION = "2.60.0"  # the pinned `[ray]` extra


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ReportgenError(
            f"--executor ray needs Ray: pip install 'reportgen[ray]' (ray=={RAY_VERSION})"
        ) from None
    return ray


class ProgressBox:
    """The body of a Ray actor (no CPU) holding the step reports of the running cases until
    the driver collects them."""

    def __init__(self) -> None:
        self.events: list[tuple[int, tuple[Any, ...]]] = []

    def put(self, index: int, args: tuple[Any, ...]) -> None:
        self.events.append((index, args))

    def drain(self) -> list[tuple[int, tuple[Any, ...]]]:
        events, self.events = self.events, []
        return events


class CaseActor:
    """The body of a Ray actor: one worker, one model group; ``box`` (a ProgressBox actor)
    receives its step reports."""

    def __init__(self, threads: int | None, box: Any = None) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        set_threads(threads)
        self.worker = CaseWorker(name=f"ray-actor-{os.getpid()}")
        self.box = box

    def pid(self) -> int:
        return os.getpid()

    def run(self, job: Work) -> Outcome:
        box = self.box
        if box is None:
            return self.worker.run(job)
        sent: list[Any] = []
        outcome = self.worker.run(job, lambda *args: sent.append(box.put.remote(job.index, args)))
        # the reports are in the box before the outcome is back: the driver, draining the box
        # before it takes an outcome in, sees a case's steps before the case is done
        import_ray().get(sent)
        return outcome


@contextmanager
def ray_session(address: str | None) -> Iterator[bool]:
    """Connect to ``address`` (or start a local Ray) for the run; yields whether the cluster
    has GPUs (what ``auto`` means there). A Ray this process already runs is used and left up."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            check_ray_address(address)
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            where = f"--ray-address {address}" if address else "starting a local Ray"
            raise ReportgenError(f"{where}: cannot connect ({first})") from None
        started = True
    try:
        yield ray.cluster_resources().get("GPU", 0) > 0
    finally:
        if started:
            ray.shutdown()


#: seconds to wait for a Ray address to accept a connection
CONNECT_TIMEOUT_S = 10.0


def check_ray_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail in seconds, with one line, when nothing answers at ``address`` (HOST:PORT, or
    ``ray://HOST:PORT``): ``ray.init`` itself retries for minutes. ``auto`` and ``local`` are
    Ray's own words and are left to it."""
    import socket

    bare = address.removeprefix("ray://")
    if bare in ("auto", "local"):
        return
    host, sep, port_text = bare.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ReportgenError(
            f"--ray-address {address}: expected HOST:PORT (what `ray start --head` prints)"
        )
    try:
        socket.create_connection((host, int(port_text)), timeout=timeout).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise ReportgenError(
            f"--ray-address {address}: no Ray cluster answers there ({reason}); start one "
            "with `ray start --head` and give the address it prints, or drop --ray-address "
            "to start a local Ray"
        ) from None


def _cluster_lost(exc: BaseException) -> ReportgenError:
    """A Ray failure that is not one case's: a node, the head or a helper actor died."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return ReportgenError(
        f"the Ray cluster lost a process the run needs ({type(exc).__name__}: {first}); "
        "check the cluster with `ray status` (restart it with `ray stop` and `ray start "
        "--head` if a node is gone) and run the command again: finished cases are cached"
    )


def run_ray(
    jobs: list[Work],
    workers: int,
    on_outcome: OnOutcome,
    on_progress: OnProgress = lambda job, args: None,
    *,
    poll_s: float = 0.5,
) -> None:
    """Run ``jobs`` inside a ``ray_session``."""
    ray = import_ray()
    from ray.exceptions import RayError, RayTaskError

    try:
        _run_ray(ray, jobs, workers, on_outcome, on_progress, poll_s=poll_s)
    except RayTaskError:
        raise  # an error raised by our own code in an actor, not a lost process
    except RayError as exc:
        raise _cluster_lost(exc) from None


def _run_ray(
    ray: Any,
    jobs: list[Work],
    workers: int,
    on_outcome: OnOutcome,
    on_progress: OnProgress,
    *,
    poll_s: float,
) -> None:
    from ray.exceptions import RayActorError

    resources = ray.cluster_resources()
    cpus = max(1, int(resources.get("CPU", 1)))
    node_cpus = max(
        [int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")] or [1]
    )
    # never more actors than the cluster can place at once: a pending actor would hold a slot
    workers = min(workers, cpus)
    if any(r.device_type == "cuda" for job in jobs for r in job.runtimes.values()):
        workers = max(1, min(workers, int(resources.get("GPU", 0))))
    remote = ray.remote(CaseActor)
    box = ray.remote(ProgressBox).options(num_cpus=0).remote()
    known: dict[int, Work] = {}  # every job handed out, by index (for its late step reports)
    pending = deque(sorted(jobs, key=group_order(jobs)))
    actors: dict[Any, Any] = {}  # actor handle -> its group
    running: dict[Any, tuple[Any, Work]] = {}  # object ref -> (actor, job)

    def new_actor(group: Any) -> Any:
        cuda = group[1].device_type == "cuda"
        per_actor = 1 if cuda else max(1, min(cpus // workers, node_cpus))
        actor = remote.options(num_cpus=per_actor, num_gpus=1 if cuda else 0).remote(
            None if cuda else per_actor, box
        )
        actors[actor] = group
        return actor

    def give(actor: Any) -> bool:
        job = next((j for j in pending if j.group == actors[actor]), None)
        if job is None:
            return False
        pending.remove(job)
        running[actor.run.remote(job)] = (actor, job)
        known[job.index] = job
        return True

    def report_steps() -> None:
        for index, args in ray.get(box.drain.remote()):
            if index in known:
                on_progress(known[index], args)

    def retire(actor: Any) -> None:
        actors.pop(actor, None)
        ray.kill(actor)

    try:
        while pending or running:
            idle = [a for a in actors if a not in {a2 for a2, _ in running.values()}]
            for actor in idle:
                if give(actor):
                    continue
                group = actors[actor]
                others_wait = any(j.group != group for j in pending)
                if others_wait or not any(j.group == group for _, j in running.values()):
                    # its group is done: free the slot for another group (an actor whose
                    # group still runs stays: that work may bring follow-ups)
                    retire(actor)
            while len(actors) < workers and pending:
                demand = [j.group for j in pending]
                serving = list(actors.values())
                group = next((g for g in demand if serving.count(g) < demand.count(g)), None)
                if group is None:
                    break
                give(new_actor(group))
            ready, _ = ray.wait(list(running), num_returns=1, timeout=poll_s)
            report_steps()  # before the outcomes: a case's steps come before it is done
            for ref in ready:
                actor, job = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except RayActorError:
                    actors.pop(actor, None)
                    if job.attempt + 1 < MAX_ATTEMPTS:
                        pending.appendleft(replace(job, attempt=job.attempt + 1))
                        continue
                    outcome = Outcome(
                        job.index,
                        job.case_path,
                        error=f"the Ray worker died {MAX_ATTEMPTS} times running this case",
                        worker="ray",
                    )
                add_follow_ups(pending, on_outcome(outcome))
    finally:
        for actor in [*actors, box]:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 -- a cluster already gone: nothing left to end
                pass
