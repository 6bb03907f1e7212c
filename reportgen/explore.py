"""`reportgen explore`: a local web app around one loaded model that writes case files.

Type a prompt (chat template on or off, a response prefix, BOS), see the top-k next tokens,
pick the target and the contrast (or max-logit), and get the dossier's views -- input heatmap,
interactive graph, metrics -- computed by the same pipeline as `reportgen build`
(:func:`reportgen.compute.compute_case` on a case file written from the form) and kept in
memory by configuration, so asking again re-renders without recomputing. "Save as case" writes
that very case file (exact ``prefix_ids``) into the cases folder, so `reportgen build` builds it
unchanged.

FastAPI is imported with this module, which the CLI imports only inside the command (route
annotations must resolve at module level). The app binds to 127.0.0.1 only. Bad input is answered with HTTP 400 and a one-line reason
(``{"error": ...}``), which the page shows."""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from .cases import ID_PATTERN, case_model_spec, load_case, parse_case
from .errors import ReportgenError, TokenError
from .inputs import PromptSpec, prepare_input, resolve_token
from .models import LoadedModel
from .objectives import MODES
from .toml_values import toml_value

TOP_K = 10
MAX_PROMPT_CHARS = 200_000


class ExploreError(ReportgenError):
    """A request the explorer cannot serve; the message is the one line the page shows."""


@dataclass(frozen=True)
class Config:
    """One explained prediction as the form describes it (everything a case file needs)."""

    prompt: str
    chat: bool = False
    prefix: str = ""
    bos: bool | None = None
    target: str | int | None = None
    contrast: str | int | None = None
    mode: str = "logit_diff"

    @classmethod
    def from_json(cls, data: Any) -> Config:
        if not isinstance(data, dict):
            raise ExploreError("the request body must be a JSON object")
        unknown = set(data) - {"prompt", "chat", "prefix", "bos", "target", "contrast", "mode",
                               "id", "title", "description"}  # fmt: skip
        if unknown:
            raise ExploreError(f"unknown field {sorted(unknown)[0]!r}")
        prompt = data.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ExploreError("prompt: type a prompt")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise ExploreError(f"prompt: longer than {MAX_PROMPT_CHARS} characters")
        prefix = data.get("prefix") or ""
        if not isinstance(prefix, str):
            raise ExploreError("prefix: must be text")
        for name, text in (("prompt", prompt), ("prefix", prefix)):
            if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):  # JSON allows "\ud800" alone
                raise ExploreError(f"{name}: holds a lone surrogate (half of a UTF-16 pair)")
        for name in ("chat", "bos"):
            if data.get(name) is not None and not isinstance(data.get(name), bool):
                raise ExploreError(f"{name}: must be true or false")
        mode = data.get("mode") or "logit_diff"
        if mode not in MODES:
            raise ExploreError(f"mode: must be one of {', '.join(MODES)}")
        return cls(
            prompt=prompt,
            chat=bool(data.get("chat")),
            prefix=prefix,
            bos=data.get("bos"),
            target=_token_value(data.get("target"), "target"),
            contrast=_token_value(data.get("contrast"), "contrast"),
            mode=mode,
        )


def _token_value(value: Any, name: str) -> str | int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ExploreError(f"{name}: a token text or a token id")
    return value


def prefix_ids_for(tokenizer: Any, prefix: str) -> tuple[int, ...] | None:
    """The exact ids of the response prefix (what a case file stores in ``prefix_ids``)."""
    if not prefix:
        return None
    ids = tuple(tokenizer.encode(prefix, add_special_tokens=False))
    if tokenizer.decode(list(ids)) != prefix:
        raise ExploreError(
            f"prefix: {prefix!r} does not survive tokenisation (it decodes to "
            f"{tokenizer.decode(list(ids))!r}); edit it"
        )
    return ids


def _spec(loaded: LoadedModel, config: Config) -> PromptSpec:
    return PromptSpec(
        config.prompt,
        config.chat,
        config.prefix,
        prefix_ids_for(loaded.tokenizer, config.prefix),
        config.bos,
    )


def predict(loaded: LoadedModel, config: Config, k: int = TOP_K) -> dict[str, Any]:
    """The input tokens and the top-k next tokens (id, text, logit, probability)."""
    import torch

    from .render.tokens import visible_text

    tokenizer = loaded.tokenizer
    inputs = prepare_input(tokenizer, _spec(loaded, config))
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


def _case_token(tokenizer: Any, value: str | int, role: str) -> str | int:
    """As a hand-written case would say it: the token's text when that resolves back to the
    same id, else the id itself."""
    token = resolve_token(tokenizer, value, role)
    text = tokenizer.decode([token.id])
    try:
        same = text != "" and resolve_token(tokenizer, text, role).id == token.id
    except TokenError:
        same = False
    return text if same else token.id


def case_toml(
    loaded: LoadedModel,
    config: Config,
    *,
    model: str,
    case_id: str,
    title: str = "",
    description: str = "",
) -> str:
    """The case file of ``config``: the fields a person would write, exact ``prefix_ids``."""
    if not ID_PATTERN.match(case_id):
        raise ExploreError(f"id: must match [a-z0-9-]+ (it becomes the page URL), got {case_id!r}")
    tokenizer = loaded.tokenizer
    if config.target is None:
        raise ExploreError("target: pick the token the model prefers")
    if config.mode == "logit_diff" and config.contrast is None:
        raise ExploreError("contrast: pick the expected token, or choose max-logit")
    lines = [f"id = {toml_value(case_id)}", f"title = {toml_value(title or case_id)}"]
    if description:
        lines.append(f"description = {toml_value(description)}")
    # a path as the command was given it means nothing next to the case: absolute instead
    lines += [f"model = {toml_value(case_model_spec(model))}", f"chat = {toml_value(config.chat)}"]
    lines.append(f"prompt = {toml_value(config.prompt)}")
    prefix_ids = prefix_ids_for(tokenizer, config.prefix)
    if prefix_ids is not None:
        lines.append(f"prefix = {toml_value(config.prefix)}")
        lines.append(f"prefix_ids = {toml_value(list(prefix_ids))}")
    if config.bos is not None:
        lines.append(f"bos = {toml_value(config.bos)}")
    for role in ("target", "contrast"):
        value = getattr(config, role)
        if value is None or (role == "contrast" and config.mode == "max_logit"):
            continue
        token = _case_token(tokenizer, value, role)
        lines.append(f"{role} = {toml_value(token)}")
    if config.mode != "logit_diff":
        lines.append(f"mode = {toml_value(config.mode)}")
    text = "\n".join(lines) + "\n"
    import tomllib

    parse_case(tomllib.loads(text), f"{case_id}.toml")  # what we write must be a valid case
    return text


class Explorer:
    """The model, the computed views (by configuration) and the cases folder of one app."""

    def __init__(self, loaded: LoadedModel, *, model: str, cases_dir: Path) -> None:
        self.loaded, self.model, self.cases_dir = loaded, model, Path(cases_dir)
        self.lock = threading.Lock()  # one computation at a time on the one model
        self.views: dict[str, dict[str, Any]] = {}
        self.work = Path(tempfile.mkdtemp(prefix="reportgen-explore-"))

    def predict(self, config: Config) -> dict[str, Any]:
        with self.lock:
            return predict(self.loaded, config)

    def explain(self, config: Config) -> dict[str, Any]:
        from .compute import compute_case
        from .render.html import render_dossier_page

        probe = case_toml(self.loaded, config, model=self.model, case_id="explore")
        key = hashlib.sha256(probe.encode()).hexdigest()[:16]
        with self.lock:
            if key not in self.views:
                case_id = f"explore-{key[:10]}"
                text = case_toml(
                    self.loaded, config, model=self.model, case_id=case_id, title="Explorer"
                )
                path = self.work / f"{case_id}.toml"
                path.write_text(text, encoding="utf-8")
                result = compute_case(load_case(path), self.loaded, command="reportgen explore")
                page = render_dossier_page(result, self.work / case_id, single_file=True)
                att = result.attribution
                self.views[key] = {
                    "key": key,
                    "view": f"/view/{key}",
                    "html": page.read_text(encoding="utf-8"),
                    "explained": att.explained,
                    "objective": att.objective,
                    "target": att.target.text,
                    "contrast": att.contrast.text if att.contrast is not None else None,
                    "n_tokens": len(att.token_ids),
                    "graph_edges": len(result.graph["edges"]) if result.graph else 0,
                    "cached": False,
                }
            else:
                self.views[key] = {**self.views[key], "cached": True}
        return {k: v for k, v in self.views[key].items() if k != "html"}

    def save(self, config: Config, case_id: str, title: str, description: str) -> dict[str, Any]:
        text = case_toml(
            self.loaded,
            config,
            model=self.model,
            case_id=case_id,
            title=title,
            description=description,
        )
        path = self.cases_dir / f"{case_id}.toml"
        self.cases_dir.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "x", encoding="utf-8") as f:  # never overwrite a case
                f.write(text)
        except FileExistsError:
            raise ExploreError(f"id: {path} exists already; choose another id") from None
        return {"path": str(path), "toml": text}


def create_app(loaded: LoadedModel, *, model: str, cases_dir: Path) -> FastAPI:
    """The FastAPI app of one explorer (``uvicorn.run(app, host="127.0.0.1")``)."""
    from .render.explore_page import explore_page

    explorer = Explorer(loaded, model=model, cases_dir=cases_dir)
    app = FastAPI(title="reportgen explore", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.explorer = explorer

    def bad(message: str) -> JSONResponse:
        return JSONResponse({"error": " ".join(str(message).split())}, status_code=400)

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
        return explore_page(model=model, cases_dir=str(cases_dir))

    @app.post("/api/predict")
    async def api_predict(request: Request) -> dict[str, Any]:
        config = Config.from_json(await body(request))
        return await run_in_threadpool(explorer.predict, config)

    @app.post("/api/explain")
    async def api_explain(request: Request) -> dict[str, Any]:
        config = Config.from_json(await body(request))
        return await run_in_threadpool(explorer.explain, config)

    @app.get("/view/{key}", response_class=HTMLResponse)
    def view(key: str) -> Any:
        entry = explorer.views.get(key)
        if entry is None:
            return JSONResponse({"error": "no such view; explain the prompt again"}, 404)
        return entry["html"]

    @app.post("/api/save")
    async def api_save(request: Request) -> dict[str, Any]:
        data = await body(request)
        config = Config.from_json(data)
        case_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(case_id, str) or not case_id:
            raise ExploreError("id: give the case an id ([a-z0-9-]+)")
        title = data.get("title") or ""
        description = data.get("description") or ""
        if not isinstance(title, str) or not isinstance(description, str):
            raise ExploreError("title and description must be text")
        return explorer.save(config, case_id, title, description)

    return app
