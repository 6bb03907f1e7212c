"""`reportgen explore`: a local web app around one loaded model that writes case files.

Type a prompt (chat template on or off, a response prefix, BOS), see the top-k next tokens,
pick the target and the contrast (or max-logit), and get the dossier's views -- input heatmap,
interactive graph, metrics -- computed by the same pipeline as `reportgen build`
(:func:`reportgen.compute.compute_case` on a case file written from the form) and kept in
memory by question, so asking again re-renders without recomputing. "Save as case" writes
that very case file (exact ``prefix_ids``) into the cases folder, so `reportgen build` builds it
unchanged.

FastAPI is imported with this module, which the CLI imports only inside the command (route
annotations must resolve at module level). Bad input is answered with HTTP 400 and a one-line
reason (``{"error": ...}``), which the page shows.

This module holds the :class:`Explorer` (the model, its views, predict/explain/save/download/
intervene) and its app (:func:`create_app`). The request bodies and the saved case files are
in ``explore_questions.py``, the live probe's request formats in ``explore_probe.py``.
Only its own page drives it (``explore_security.py``: the app binds to 127.0.0.1, checks Host,
origin, a per-run token and the content type; anything else is a one-line 403). Its rendered
views live in a run folder of the reportgen cache that is removed on exit (``explore_runs.py``;
folders of killed runs are removed by the next run), and no response shows a whole absolute
path of this machine (:meth:`Explorer.public`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from .cases import case_toml, load_case
from .errors import ReportgenError, warn
from .explore_probe import PIN_FIELDS, PROBE_FIELDS, Pins, split_fields
from .explore_questions import (
    ExploreError,
    exact_prompt,
    prompt_from_json,
    question_from_json,
    saved_case,
)
from .explore_runs import RunFolder
from .explore_security import SECURITY_HEADERS, request_problem
from .inputs import prepare_input
from .localweb import public_path
from .models import LoadedModel, cache_dir
from .progress import StepClock, format_seconds
from .question import PromptSpec, Question
from .results import CaseResult

TOP_K = 10
DOWNLOAD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def predict(loaded: LoadedModel, prompt: PromptSpec, k: int = TOP_K) -> dict[str, Any]:
    """The input tokens and the top-k next tokens (id, text, logit, probability)."""
    import torch

    from .render.tokens import visible_text

    tokenizer = loaded.tokenizer
    inputs = prepare_input(tokenizer, exact_prompt(loaded, prompt))
    ids = torch.tensor([list(inputs.token_ids)], device=loaded.model.device)
    with torch.no_grad():
        logits = loaded.model(input_ids=ids).logits[0, -1].float()
    probs = torch.softmax(logits, -1)
    top = torch.topk(logits, min(k, logits.shape[-1]))
    return {
        "n_tokens": len(inputs.token_ids),
        "tokens": [visible_text(tokenizer.decode([i])) for i in inputs.token_ids],
        "top_k": [
            {
                "rank": rank + 1,
                "id": int(i),
                "text": tokenizer.decode([int(i)]),
                "display": visible_text(tokenizer.decode([int(i)])),
                "logit": float(logits[int(i)]),
                "prob": float(probs[int(i)]),
            }
            for rank, i in enumerate(top.indices.tolist())
        ],
    }


class Explorer:
    """The model, the computed views (by question) and the cases folder of one app."""

    def __init__(self, loaded: LoadedModel, *, model: str, cases_dir: Path) -> None:
        self.loaded, self.model, self.cases_dir = loaded, model, Path(cases_dir)
        self.lock = threading.Lock()  # one computation at a time on the one model
        self.views: dict[str, dict[str, Any]] = {}
        self.results: dict[str, CaseResult] = {}  # by view key: what a saved case may reuse
        self.clean_runs: dict[tuple[Question, int], Any] = {}  # the probe's clean side, reused
        self.run_folder = RunFolder()
        self.work = self.run_folder.path
        self._status: dict[str, Any] = {"running": False, "line": "", "started": 0.0}
        self._hidden = self._hidden_paths()

    def close(self) -> None:
        """Remove this run's folder (the app's shutdown and the process's exit call it)."""
        self.run_folder.close()

    # -- what a page may see ------------------------------------------------------------
    def _hidden_paths(self) -> list[tuple[re.Pattern[str], str]]:
        """Absolute paths of this machine a response may contain, longest first, each with
        what the page sees instead (:func:`~reportgen.localweb.public_path`)."""
        places: dict[str, str] = {}

        def add(path: Path | str, shown: str) -> None:
            raw = os.fspath(path)
            if os.path.isabs(raw) and len(raw) > 1:
                places.setdefault(raw, shown)
                places.setdefault(os.path.realpath(raw), shown)

        add(self.work, "(explorer work folder)")
        add(cache_dir().expanduser().absolute(), "(reportgen cache)")
        add(self.cases_dir.absolute(), public_path(self.cases_dir))
        if Path(self.model).expanduser().exists():
            add(Path(self.model).expanduser().absolute(), public_path(self.model))
        add(Path.cwd(), ".")
        add(Path.home(), "~")
        end = r"(?=[/\\\s'\"),;:]|$)"
        return [
            (re.compile(re.escape(raw) + end), shown)
            for raw, shown in sorted(places.items(), key=lambda item: -len(item[0]))
        ]

    def public(self, text: str) -> str:
        """``text`` with every absolute path this explorer knows of replaced by its public
        form: the folder relative to the working folder, ``~/...``, or a short tail."""
        for pattern, shown in self._hidden:
            text = pattern.sub(lambda _m, shown=shown: shown, text)
        return text

    def _public_result(self, result: CaseResult) -> CaseResult:
        """``result`` with :meth:`public` applied to every text in it (the model's path is in
        the environment, the attribution and the case file): what the view and its downloads
        are rendered from. The result cache keeps the exact one."""

        def walk(value: Any) -> Any:
            if isinstance(value, str):
                return self.public(value)
            if isinstance(value, dict):
                return {k: walk(v) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v) for v in value]
            return value

        return CaseResult.from_json(walk(result.to_json()))

    # -- progress ----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Whether an explanation runs, its step line with a time estimate, seconds so far."""
        state = self._status
        elapsed = time.perf_counter() - state["started"] if state["running"] else 0.0
        line = state["line"]
        if state["running"]:
            line = f"{line or 'starting'} \u00b7 {format_seconds(elapsed)} so far"
        return {"running": state["running"], "line": line, "elapsed_s": round(elapsed, 1)}

    def _set_line(self, line: str) -> None:
        self._status = {**self._status, "line": line}

    # -- the work ----------------------------------------------------------------------
    def predict(self, prompt: PromptSpec) -> dict[str, Any]:
        with self.lock:
            return predict(self.loaded, prompt)

    def view_key(self, question: Question) -> str:
        probe = saved_case(self.loaded, question, model=self.model, case_id="explore")
        return hashlib.sha256(case_toml(probe).encode()).hexdigest()[:16]

    def explain(self, question: Question) -> dict[str, Any]:
        from . import compute
        from .render.html import render_dossier_page

        key = self.view_key(question)
        with self.lock:
            if key not in self.views:
                case_id = f"explore-{key[:10]}"
                case = saved_case(
                    self.loaded,
                    question,
                    model=self.model,  # this file lives in the cache: an absolute path
                    case_id=case_id,
                    title="Explorer",
                )
                text = case_toml(case)
                path = self.work / f"{case_id}.toml"
                path.write_text(text, encoding="utf-8")
                self._status = {"running": True, "line": "", "started": time.perf_counter()}
                try:
                    result = compute.compute_case(
                        load_case(path),
                        self.loaded,
                        command="reportgen explore",
                        progress=StepClock(self._set_line),
                    )
                    self._set_line("rendering the dossier")
                    folder = self.work / case_id
                    page = render_dossier_page(
                        self._public_result(result), folder, single_file=True
                    )
                finally:
                    self._status = {"running": False, "line": "", "started": 0.0}
                att = result.attribution
                self.results[key] = result
                self.views[key] = {
                    "key": key,
                    "view": f"/view/{key}/",
                    "html": page.read_text(encoding="utf-8"),
                    "folder": folder,
                    "explained": att.explained,
                    "objective": att.objective,
                    "target": att.target.text,
                    "contrast": att.contrast.text if att.contrast is not None else None,
                    "n_tokens": len(att.token_ids),
                    "graph_edges": result.graph.n_edges if result.graph else 0,
                    "cached": False,
                    **self._probe_view(result),
                }
            else:
                self.views[key] = {**self.views[key], "cached": True}
        return {k: v for k, v in self.views[key].items() if k not in ("html", "folder")}

    def download(self, key: str, name: str) -> Path | None:
        """A file of view ``key``'s dossier folder (data.json, relevance.csv, ...), or None:
        plain names only, regular files only, no symlinks."""
        entry = self.views.get(key)
        if entry is None or not DOWNLOAD_NAME.fullmatch(name) or name == "index.html":
            return None
        path = entry["folder"] / name
        if path.is_symlink() or not path.is_file():
            return None
        return path

    def save(
        self,
        question: Question,
        case_id: str,
        title: str,
        description: str,
        pin_fields: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        case = saved_case(
            self.loaded,
            question,
            model=self.model,
            case_dir=self.cases_dir,
            case_id=case_id,
            title=title,
            description=description,
        )
        pins = self._pins(question, pin_fields) if pin_fields else None
        if pins is not None:  # the [graph] table's pinned subgraph
            case = replace(case, graph=pins.settings(case.graph))
        text = case_toml(case)
        path = self.cases_dir / f"{case_id}.toml"
        self.cases_dir.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "x", encoding="utf-8") as f:  # never overwrite a case
                f.write(text)
        except FileExistsError:
            raise ExploreError(
                f"id: {self.public(str(path))} exists already; choose another id"
            ) from None
        try:  # a pinned case's result has the pinned ablations explore has not computed
            reused = pins is None and self._share_result(question, path, text)
        except (ReportgenError, OSError) as exc:  # the case is saved; build will compute it
            warn(f"{path.name}: explore's result not shared with build ({exc})")
            reused = False
        return {"path": self.public(str(path)), "toml": self.public(text), "cached": reused}

    def _share_result(self, question: Question, path: Path, text: str) -> bool:
        """Put the explained result of ``question`` into the result cache under the key `build`
        computes for the saved case file, so building it reuses explore's work. The numbers
        depend on none of what differs (id, title, description); the model's identity and the
        runtime are checked, a mismatch (or nothing explained yet) leaves the cache alone."""
        from . import cache_keys, compute
        from .runner.driver import key_runtime
        from .runner.settings import ModelRuntime

        result = self.results.get(self.view_key(question))
        if result is None:
            return False
        case = load_case(path)
        identity = cache_keys.model_identity(case.model)
        if identity != result.environment.get("model_identity") or case.compare:
            return False
        runtime = ModelRuntime(str(self.loaded.device), self.loaded.dtype, self.loaded.quantization)
        key = compute.result_key(case, text, key_runtime(case, {case.model: runtime}))
        compute.store_result(
            key,
            replace(
                result,
                case_id=case.id,
                title=case.title,
                description=case.description,
                model=case.model,
                tags=dict(case.tags),
                segments={name: list(span) for name, span in case.segments.items()},
                case_file=path.name,
                case_toml=text,
            ),
        )
        return True

    # -- a hypothesis tested live (reportgen/probe.py; the request formats: explore_probe) ------
    def _probe_view(self, result: CaseResult) -> dict[str, Any]:
        """What the probe panel needs of an explained case: the input's tokens (and which are
        special: never masked), the graph's layers (node ids count them) and its strongest
        nodes to offer."""
        from .explore_probe import offered_nodes
        from .render.tokens import visible_text

        att = result.attribution
        tokens = [visible_text(text) for text in att.token_texts]
        graph = result.graph
        return {
            "tokens": tokens,
            "special": list(att.special),
            "layers": list(graph.layers) if graph is not None else [],
            "nodes": offered_nodes(graph, tokens),
        }

    def _graph_layers(self, question: Question) -> tuple[str, ...] | None:
        result = self.results.get(self.view_key(question))
        return None if result is None or result.graph is None else tuple(result.graph.layers)

    def intervene(self, question: Question, fields: Mapping[str, Any]) -> dict[str, Any]:
        """f, the top-k and the greedy continuation, clean and with the request's nodes
        ablated and tokens masked (:func:`reportgen.probe.probe`)."""
        from .explore_probe import parse_intervention, probe_json
        from .pipeline import prepare_question
        from .probe import probe
        from .render.tokens import visible_text

        intervention, tokens = parse_intervention(fields, self._graph_layers(question))
        exact = replace(question, prompt=exact_prompt(self.loaded, question.prompt))
        with self.lock:
            prepared = prepare_question(self.loaded, exact)
            result = probe(
                self.loaded.model,
                self.loaded.tokenizer,
                prepared.inputs.token_ids,
                prepared.objective,
                intervention,
                tokens=tokens,
                clean=self.clean_runs.get((exact, tokens)),
            )
            if len(self.clean_runs) >= 64:  # a bound, not a policy: the oldest goes
                self.clean_runs.pop(next(iter(self.clean_runs)))
            self.clean_runs[(exact, tokens)] = result.clean
        return probe_json(result, visible_text)

    def _pins(self, question: Question, fields: Mapping[str, Any]) -> Pins | None:
        """The pinned nodes and groups of a save request, checked against the explained graph
        (when there is one) and the input's length."""
        from .explore_probe import parse_pins

        prompt = exact_prompt(self.loaded, question.prompt)
        n_tokens = len(prepare_input(self.loaded.tokenizer, prompt).token_ids)
        return parse_pins(fields, self._graph_layers(question), n_tokens)


def create_app(loaded: LoadedModel, *, model: str, cases_dir: Path, port: int) -> FastAPI:
    """The FastAPI app of one explorer, for ``uvicorn.run(app, host="127.0.0.1", port=port)``
    (the Host header must name that port). Its run folder is removed when the app shuts down
    (or the process exits)."""
    from .render.explore_page import explore_page

    explorer = Explorer(loaded, model=model, cases_dir=cases_dir)
    token = secrets.token_urlsafe(32)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            explorer.close()

    app = FastAPI(
        title="reportgen explore",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.explorer = explorer
    app.state.token = token

    def bad(message: str, status: int = 400) -> JSONResponse:
        line = " ".join(explorer.public(str(message)).split())
        return JSONResponse({"error": line}, status_code=status, headers=SECURITY_HEADERS)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        problem = request_problem(
            request.method, request.url.path, request.headers, port=port, token=token
        )
        if problem is not None:
            return bad(problem, 403)
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(ReportgenError)
    async def _reportgen_error(request: Request, exc: ReportgenError) -> JSONResponse:
        return bad(str(exc))

    @app.exception_handler(ValueError)
    async def _value_error(request: Request, exc: ValueError) -> JSONResponse:
        return bad(str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return bad("the request body must be a JSON object")

    async def body(request: Request) -> Any:
        try:
            return await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ExploreError("the request body is not JSON") from None

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return explore_page(
            model=explorer.public(model),
            cases_dir=explorer.public(str(cases_dir)),
            token=token,
        )

    @app.post("/api/predict")
    async def api_predict(request: Request) -> dict[str, Any]:
        prompt = prompt_from_json(await body(request))
        return await run_in_threadpool(explorer.predict, prompt)

    @app.post("/api/explain")
    async def api_explain(request: Request) -> dict[str, Any]:
        question = question_from_json(await body(request))
        return await run_in_threadpool(explorer.explain, question)

    @app.get("/api/progress")
    async def api_progress() -> dict[str, Any]:
        return explorer.status()

    @app.get("/view/{key}", response_class=HTMLResponse)
    def view_without_slash(key: str) -> Any:
        if key not in explorer.views:
            return bad("no such view; explain the prompt again", 404)
        return RedirectResponse(f"/view/{key}/", status_code=307)

    @app.get("/view/{key}/", response_class=HTMLResponse)
    def view(key: str) -> Any:
        entry = explorer.views.get(key)
        if entry is None:
            return bad("no such view; explain the prompt again", 404)
        return entry["html"]

    @app.get("/view/{key}/{name}")
    def view_file(key: str, name: str) -> Any:
        path = explorer.download(key, name)
        if path is None:
            return bad("no such file; explain the prompt again", 404)
        return FileResponse(path, filename=name)

    @app.post("/api/intervene")
    async def api_intervene(request: Request) -> dict[str, Any]:
        data, fields = split_fields(await body(request), PROBE_FIELDS)
        question = question_from_json(data)
        return await run_in_threadpool(explorer.intervene, question, fields)

    @app.post("/api/save")
    async def api_save(request: Request) -> dict[str, Any]:
        data, pin_fields = split_fields(await body(request), PIN_FIELDS)
        question = question_from_json(data)
        case_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(case_id, str) or not case_id:
            raise ExploreError("id: give the case an id ([a-z0-9-]+)")
        title = data.get("title") or ""
        description = data.get("description") or ""
        if not isinstance(title, str) or not isinstance(description, str):
            raise ExploreError("title and description must be text")
        return await run_in_threadpool(
            explorer.save, question, case_id, title, description, pin_fields
        )

    return app
