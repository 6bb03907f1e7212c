"""`--executor ray` on a local Ray started here (2 CPUs, no dashboard), shared by the tests of
this module: the same site as a local build, a killed worker's case retried, a case that always
fails reported while the others build."""

import os

import pytest
import test_runner
from test_runner import site_files, write_cases
from worker_faults import worker_faults

from reportgen.build import BuildReport, build, compute_results, render_site
from reportgen.cases import load_cases
from reportgen.runner import Execution
from reportgen.runner.worker import THREADS_ENV

ray = pytest.importorskip("ray")
model_dir = test_runner.model_dir  # the module fixtures, shared with the local-runner tests
reference = test_runner.reference


@pytest.fixture(scope="module")
def ray_faults(tmp_path_factory):
    """A local Ray for this module; its workers see the fault-injection folder (set before
    ray.init: workers inherit the environment Ray starts with)."""
    faults = tmp_path_factory.mktemp("ray-faults")
    saved = {name: os.environ.get(name) for name in (THREADS_ENV, "REPORTGEN_CACHE")}
    os.environ[THREADS_ENV] = "1"  # actors run one thread each, as the reference build
    # the actors' own cache, empty at the module's start: a test's REPORTGEN_CACHE, set after
    # ray.init, does not reach them (a graph they found cached would report no layers)
    os.environ["REPORTGEN_CACHE"] = str(tmp_path_factory.mktemp("ray-actor-cache"))
    with worker_faults(faults):
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield faults
        ray.shutdown()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_a_ray_build_is_the_local_build(model_dir, reference, ray_faults, tmp_path, monkeypatch):
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    cases = write_cases(tmp_path / "cases", model_dir)
    out = tmp_path / "site"
    report = BuildReport(out=out)
    events = []  # ("step", case, args) and ("done", case, ()) in the order they came
    results = compute_results(
        load_cases([cases])[0],
        use_cache=True,
        keep_going=False,
        command="reportgen build",
        report=report,
        execution=Execution(executor="ray", jobs=2),
        on_done=lambda case: events.append(("done", case.id, ())),
        on_progress=lambda case, args: events.append(("step", case.id, args)),
    )
    render_site(results, out, report.failures, pdf=False, single_file=False)
    assert report.built == ["case-a", "case-b", "case-c"] and not report.failures
    assert site_files(out) == reference
    # the steps inside each case came back from the actors, all before the case was done
    for case in ("case-a", "case-b", "case-c"):
        steps = [args for kind, c, args in events if c == case and kind == "step"]
        assert list(dict.fromkeys(a[0] for a in steps))[:4] == [
            "graph",  # its trace is the attribution's pass, read next
            "attribution",
            "interventions",
            "faithfulness",
        ]
        layers = [a[1:] for a in steps if a[0] == "graph"]
        assert layers[-1][0] == layers[-1][1] > 0  # graph layer L of L
        last_step = max(i for i, (kind, c, _) in enumerate(events) if c == case and kind == "step")
        assert events.index(("done", case, ())) > last_step
    # the driver stored every result: a rebuild computes nothing
    again = build([cases], out, pdf=False, progress=False, execution=Execution("ray", 2))
    assert again.cached == ["case-a", "case-b", "case-c"] and not again.built


def test_ray_retries_a_killed_worker_and_reports_what_always_fails(
    model_dir, ray_faults, tmp_path, monkeypatch
):
    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "cases"
    write_cases(root, model_dir, names=("a", "b"))
    write_cases(root / "more", model_dir, names=("c",), bad_segment=("c",))
    (root / "more" / "c.toml").rename(root / "more" / "bad.toml")
    (root / "more" / "bad.toml").write_text(
        (root / "more" / "bad.toml").read_text().replace("case-c", "case-bad")
    )
    (root / "dies.toml").write_text((root / "b.toml").read_text().replace("case-b", "case-dies"))
    (ray_faults / "a.toml.die-once").touch()
    (ray_faults / "dies.toml.die-always").touch()
    out = tmp_path / "site"
    report = build(
        [root],
        out,
        pdf=False,
        progress=False,
        keep_going=True,
        execution=Execution(executor="ray", jobs=2),
    )
    assert not (ray_faults / "a.toml.die-once").exists()  # a's first worker really died
    assert report.built == ["case-a", "case-b"]
    reasons = dict(report.failures)
    assert set(reasons) == {str(root / "dies.toml"), str(root / "more" / "bad.toml")}
    assert "died 2 times" in reasons[str(root / "dies.toml")]
    assert "exceeds the" in reasons[str(root / "more" / "bad.toml")]
    index = (out / "index.html").read_text()
    assert "case-a" in index and "case-b" in index and "dies.toml" in index
    assert (out / "cases" / "case-a" / "data.json").exists()
