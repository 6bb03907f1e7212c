"""`explore` and `serve` answer only their own page (issue 31, item 1): a forged Host is a 403,
a cross-site or token-less or non-JSON request to the explorer's API is a one-line 403 that
writes nothing, `serve` never leaves its site (symlinks included), and the explorer's folder
lives in the cache and is gone after exit (also after a killed run)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tiny_models import save_tiny_llama

from reportgen.models import load_model

fastapi_testclient = pytest.importorskip("fastapi.testclient")

PORT = 8766
BASE = f"http://127.0.0.1:{PORT}"
CONFIG = {"prompt": "the capital of france is", "target": "paris", "contrast": "lyon"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-web"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    """The session's cache (conftest sets it per test; a module's app is made before that)."""
    path = tmp_path_factory.getbasetemp() / "reportgen-cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REPORTGEN_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def app_env(model_dir: str, tmp_path_factory: pytest.TempPathFactory, cache):
    from reportgen.explore import create_app

    cases = tmp_path_factory.mktemp("web-cases")
    app = create_app(load_model(model_dir), model=model_dir, cases_dir=cases, port=PORT)
    client = fastapi_testclient.TestClient(app, base_url=BASE)
    yield client, app, cases
    app.state.explorer.close()


def one_line_403(response, *words: str) -> str:
    assert response.status_code == 403, (response.status_code, response.text)
    message = response.json()["error"]
    assert "\n" not in message and len(message) < 300, message
    for word in words:
        assert word in message, message
    return message


def good_headers(app) -> dict[str, str]:
    return {"X-Reportgen-Token": app.state.token, "Content-Type": "application/json"}


@pytest.mark.parametrize(
    "host", ["evil.example", f"evil.example:{PORT}", "127.0.0.1:1", "localhost", "[::1]:8766", ""]
)
def test_a_forged_host_is_refused_on_every_route(app_env, host) -> None:
    client, app, cases = app_env
    headers = {**good_headers(app), "Host": host}
    for method, url in (
        ("GET", "/"),
        ("GET", "/view/abc/"),
        ("GET", "/api/progress"),
        ("POST", "/api/save"),
        ("POST", "/api/predict"),
        ("POST", "/api/intervene"),
    ):
        body = {**CONFIG, "id": "rebound"} if method == "POST" else None
        response = client.request(method, url, json=body, headers=headers)
        one_line_403(response, "forbidden", f"127.0.0.1:{PORT}")
        assert "token" not in response.text.lower() or app.state.token not in response.text
    assert not (cases / "rebound.toml").exists()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"Origin": "http://evil.example"}, "another page"),
        ({"Origin": "null"}, "another page"),
        ({"Origin": f"http://127.0.0.1:{PORT + 1}"}, "another page"),  # same site, other port
        ({"Origin": f"https://127.0.0.1:{PORT}"}, "another page"),
        ({"Sec-Fetch-Site": "cross-site"}, "cross-site"),
        ({"Sec-Fetch-Site": "same-site"}, "same-site"),
        ({"X-Reportgen-Token": None}, "X-Reportgen-Token"),
        ({"X-Reportgen-Token": "guess"}, "X-Reportgen-Token"),
        ({"Content-Type": "text/plain"}, "application/json"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "application/json"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, "application/json"),
        ({"Content-Type": None}, "application/json"),
        # what a page on evil.example can send without a preflight: no token, a simple type
        (
            {
                "Origin": "http://evil.example",
                "Sec-Fetch-Site": "cross-site",
                "X-Reportgen-Token": None,
                "Content-Type": "text/plain",
            },
            "forbidden",
        ),
    ],
)
def test_a_cross_site_or_tokenless_post_writes_nothing(app_env, change, words) -> None:
    client, app, cases = app_env
    headers = {k: v for k, v in {**good_headers(app), **change}.items() if v is not None}
    case_id = "planted"
    for url in ("/api/save", "/api/predict", "/api/explain", "/api/intervene", "/api/anything"):
        response = client.post(
            url,
            content=f'{{"prompt":"x","target":"paris","contrast":"lyon","id":"{case_id}"}}',
            headers=headers,
        )
        one_line_403(response, words)
    assert not (cases / f"{case_id}.toml").exists() and list(cases.iterdir()) == []
    # the same request with the right headers is served: the 403 came from the check alone
    response = client.post("/api/predict", json=CONFIG, headers=good_headers(app))
    assert response.status_code == 200, response.text


def test_other_methods_and_reads_need_the_token_too(app_env) -> None:
    client, app, _ = app_env
    one_line_403(client.get("/api/progress"), "X-Reportgen-Token")
    assert client.get("/api/progress", headers=good_headers(app)).json()["running"] is False
    one_line_403(
        client.request(
            "OPTIONS",
            "/api/save",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        ),
        "another page",
    )
    one_line_403(
        client.put("/api/save", content=b"{}", headers={"Content-Type": "application/json"}),
        "X-Reportgen-Token",
    )


def test_the_page_holds_the_token_and_cannot_be_framed(app_env) -> None:
    client, app, _ = app_env
    page = client.get("/")
    assert page.status_code == 200
    assert f'<meta name="reportgen-token" content="{app.state.token}">' in page.text
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    assert client.get("/", headers={"Host": f"localhost:{PORT}"}).status_code == 200
    # a second app has another token: one run's page cannot drive another run
    from reportgen.explore import create_app

    other = create_app(app.state.explorer.loaded, model="m", cases_dir=Path("x"), port=PORT)
    try:
        assert other.state.token != app.state.token and len(app.state.token) >= 32
    finally:
        other.state.explorer.close()


def test_responses_show_no_absolute_path(app_env, model_dir, tmp_path_factory) -> None:
    client, app, cases = app_env
    headers = good_headers(app)
    texts = [client.get("/").text]
    explained = client.post("/api/explain", json=CONFIG, headers=headers)
    assert explained.status_code == 200, explained.text
    texts.append(explained.text)
    view = client.get(explained.json()["view"])
    texts.append(view.text)
    for name in ("data.json", "relevance.csv", "graph.npz", "edges.csv"):
        download = client.get(explained.json()["view"] + name)
        assert download.status_code == 200, name
        texts.append(download.content.decode("utf-8", "replace"))
    saved = client.post("/api/save", json={**CONFIG, "id": "no-paths"}, headers=headers)
    texts.append(saved.text)
    texts.append(client.post("/api/save", json={**CONFIG, "id": "no-paths"}, headers=headers).text)
    texts.append(
        client.post("/api/explain", json={**CONFIG, "target": "zebra"}, headers=headers).text
    )
    for probe in ({"ablate": ["0:1"], "mask": [2]}, {"ablate": ["99:1"]}):
        texts.append(client.post("/api/intervene", json={**CONFIG, **probe}, headers=headers).text)
    base = str(tmp_path_factory.getbasetemp())  # model, cases, cache and work folder are below
    for text in texts:
        assert base not in text and str(Path.home()) not in text
    assert model_dir in (cases / "no-paths.toml").read_text()  # the file itself is exact


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, host: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_serve_never_leaves_the_site_and_checks_host(tmp_path) -> None:
    from reportgen.localweb import site_server

    site = tmp_path / "site"
    (site / "cases" / "a").mkdir(parents=True)
    (site / "index.html").write_text("<h1>site</h1>")
    (site / "cases" / "a" / "index.html").write_text("dossier")
    (site / "cases" / "a" / "data.json").write_text("{}")
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "index.html").write_text("outside page")
    (site / "leak.txt").symlink_to(secret)
    (site / "passwd").symlink_to("/etc/passwd")
    (site / "out").symlink_to(outside)  # a folder link: its index.html is outside too
    (site / "cases" / "b").mkdir()
    (site / "cases" / "b" / "index.html").symlink_to(secret)
    (site / "inner.json").symlink_to(site / "cases" / "a" / "data.json")  # inside: fine
    port = _free_port()
    server = site_server(site, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}"
        assert _get(url + "/") == (200, b"<h1>site</h1>")
        assert _get(url + "/cases/a/") == (200, b"dossier")
        assert _get(url + "/inner.json") == (200, b"{}")
        assert _get(f"http://localhost:{port}/") == (200, b"<h1>site</h1>")
        for path in (
            "/leak.txt",
            "/passwd",
            "/out/",
            "/out/index.html",
            "/cases/b/",
            "/cases/b/index.html",
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/cases/",
        ):
            status, body = _get(url + path)
            assert status == 404 and b"private" not in body and b"root:" not in body, path
            assert body == b"not found\n", path
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1:1"):
            status, body = _get(url + "/", host=host)
            assert status == 403 and body.count(b"\n") == 1 and b"forbidden" in body, host
    finally:
        server.shutdown()
        server.server_close()


def _runs(cache: Path) -> list[Path]:
    return sorted((cache / "explore").glob("run-*")) if (cache / "explore").exists() else []


def test_the_run_folder_is_under_the_cache_and_removed_on_shutdown(app_env, cache) -> None:
    from reportgen.explore import create_app

    _, app, _ = app_env
    before = set(_runs(cache))
    other = create_app(app.state.explorer.loaded, model="m", cases_dir=Path("x"), port=PORT)
    work = other.state.explorer.work
    assert work.parent == cache / "explore" and work.is_dir() and work not in before
    with fastapi_testclient.TestClient(other, base_url=BASE):  # runs the app's lifespan
        assert work.is_dir()
    assert not work.exists()
    assert app.state.explorer.work.is_dir()  # the running one is left alone


def test_a_killed_runs_folder_is_removed_by_the_next_run(cache) -> None:
    from reportgen.explore_runs import RunFolder, clean_stale_runs

    live = RunFolder()
    killed = cache / "explore" / "run-999999-dead"
    (killed / "explore-x").mkdir(parents=True)
    (killed / ".lock").write_text("")  # nobody holds its lock: its process is gone
    (killed / "explore-x" / "index.html").write_text("x")
    unlocked_new = cache / "explore" / "run-999998-young"
    unlocked_new.mkdir()  # no lock yet and new: maybe a run starting right now
    try:
        removed = clean_stale_runs(cache / "explore")
        assert killed in removed and not killed.exists()
        assert live.path.is_dir() and unlocked_new.is_dir()
        old = time.time() - 3600
        os.utime(unlocked_new, (old, old))
        assert unlocked_new in clean_stale_runs(cache / "explore")
    finally:
        live.close()
    assert not live.path.exists()


def test_cli_explore_refuses_other_hosts_and_leaves_no_folder(model_dir, tmp_path) -> None:
    cache = tmp_path / "cache"
    port = _free_port()
    env = {
        **os.environ,
        "REPORTGEN_CACHE": str(cache),
        "PYTHONPATH": str(Path(__file__).parent.parent),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reportgen.cli",
            "explore",
            "--model",
            model_dir,
            "--port",
            str(port),
            "--cases",
            str(tmp_path / "cases"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(600):
            try:
                status, body = _get(url)
                break
            except OSError:
                assert process.poll() is None, process.stdout.read().decode()
                time.sleep(0.1)
        assert status == 200 and b"reportgen-token" in body
        assert len(_runs(cache)) == 1
        status, body = _get(url, host="evil.example")
        assert status == 403 and b"forbidden" in body
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) is not None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert _runs(cache) == [] and (cache / "explore").is_dir()


def test_an_unusable_cache_means_a_private_temp_folder_removed_on_close(
    tmp_path, monkeypatch, caplog
) -> None:
    from reportgen.explore_runs import RunFolder

    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("REPORTGEN_CACHE", str(blocked))
    with caplog.at_level("WARNING", logger="reportgen"):
        run = RunFolder()
    try:
        assert run.path.is_dir() and blocked.is_file()
        assert [r.getMessage() for r in caplog.records if "explore's views" in r.getMessage()]
    finally:
        run.close()
    assert not run.path.exists() and not run.path.parent.exists()
