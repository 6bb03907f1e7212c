"""Fault injection for the runner's tests, outside the product: :func:`worker_faults` puts
this folder on the PYTHONPATH of the worker processes (local workers and Ray actors inherit
the environment), and Python imports this file at their start.

With ``REPORTGEN_TEST_FAULT_DIR`` set, a file ``<case file name>.die-once`` there kills the
worker process that starts that case once (the file is consumed); ``<case file
name>.die-always`` kills every worker that starts it. The driver's own process (``--jobs 1``)
is never killed."""

from __future__ import annotations

import os
from pathlib import Path

FAULT_DIR_ENV = "REPORTGEN_TEST_FAULT_DIR"


def _die_if_asked(job: object) -> None:
    name = Path(job.case_path).name  # type: ignore[attr-defined]
    folder = Path(os.environ[FAULT_DIR_ENV])
    try:
        (folder / f"{name}.die-once").unlink()
    except FileNotFoundError:
        pass
    else:
        os._exit(17)
    if (folder / f"{name}.die-always").exists():
        os._exit(17)


def _install() -> None:
    from reportgen.runner import worker

    real_run = worker.CaseWorker.run

    def run(self, job, progress=None):  # type: ignore[no-untyped-def]
        if self.name != "driver":
            _die_if_asked(job)
        return real_run(self, job, progress)

    worker.CaseWorker.run = run  # type: ignore[method-assign]


if os.environ.get(FAULT_DIR_ENV):
    _install()
