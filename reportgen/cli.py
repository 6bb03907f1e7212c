"""The `reportgen` command line: each command parses, calls one library function, and turns
expected failures into a one-line message and a non-zero exit. Heavy imports stay inside the
commands so `reportgen --help` is instant."""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

import click

DEFAULT_SITE = Path("site/_build")


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _status_line(text: str) -> None:
    """One status line on stderr, rewritten in place on a terminal (plain lines otherwise)."""
    if sys.stderr.isatty():
        click.echo(f"\r\033[K{text}", err=True, nl=False)
        if not text:
            click.echo("\r", err=True, nl=False)
    elif text:
        click.echo(text, err=True)


# flags that choose where cases run, not what they compute: left out of the recorded command
# so a page does not depend on --jobs or the executor
_EXECUTION_FLAGS = ("--jobs", "--executor", "--ray-address")


def _command_line() -> str:
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _EXECUTION_FLAGS:
            skip = "=" not in arg
            continue
        args.append(arg)
    return "reportgen " + " ".join(shlex.quote(a) for a in args)


def runtime_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--device/--dtype/--4bit of the case-running commands (build, run, collect), packed into
    ``runtime`` (a RuntimeOptions); unset flags leave the project file's [models.NAME] or the
    defaults in charge."""
    options = [
        click.option(
            "--device",
            default=None,
            metavar="auto|cpu|cuda|cuda:N",
            help="Where models run. Default: the project file's [models.NAME], else auto "
            "(CUDA when available, else the CPU).",
        ),
        click.option(
            "--dtype",
            type=click.Choice(["float32", "bfloat16", "float16"]),
            default=None,
            help="Number format of the weights (default: the project file's, else float32).",
        ),
        click.option(
            "--4bit", "four_bit", is_flag=True, help="Load 4-bit NF4 with bitsandbytes (CUDA only)."
        ),
    ]

    @wraps(func)
    def packed(*args: Any, device: str | None, dtype: str | None, four_bit: bool, **kwargs: Any):
        from .errors import ReportgenError
        from .runner import RuntimeOptions

        try:
            runtime = RuntimeOptions(device, dtype, "4bit" if four_bit else None)
        except ReportgenError as exc:
            raise click.ClickException(str(exc)) from None
        if four_bit and device == "cpu":
            raise click.ClickException("--4bit runs only on CUDA; drop --4bit or use --device cuda")
        return func(*args, runtime=runtime, **kwargs)

    for option in reversed(options):
        packed = option(packed)
    return packed


def execution_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--jobs/--executor/--ray-address, packed into ``execution`` (an Execution)."""
    options = [
        click.option(
            "--jobs",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Worker processes (local) or actors at a time (ray), each with its own model "
            "copy; on the CPU they share the cores, with several GPUs one per GPU.",
        ),
        click.option(
            "--executor",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help="local: this machine; ray: a Ray cluster (pip install 'reportgen[ray]').",
        ),
        click.option(
            "--ray-address",
            default=None,
            metavar="HOST:PORT",
            help="An existing Ray cluster (`ray start --head` prints it); default: start a "
            "local Ray for the run.",
        ),
    ]

    @wraps(func)
    def packed(*args: Any, jobs: int, executor: str, ray_address: str | None, **kwargs: Any) -> Any:
        from .runner import Execution

        if ray_address and executor != "ray":
            raise click.ClickException("--ray-address needs --executor ray")
        return func(*args, execution=Execution(executor, jobs, ray_address), **kwargs)

    for option in reversed(options):
        packed = option(packed)
    return packed


def one_line_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Expected failures print one line and exit 1; set REPORTGEN_DEBUG=1 for the traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import ReportgenError

        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except (ReportgenError, ValueError, OSError) as exc:
            if os.environ.get("REPORTGEN_DEBUG"):
                raise
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise click.ClickException(message) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted") from None
        except Exception as exc:
            if os.environ.get("REPORTGEN_DEBUG"):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise click.ClickException(
                f"internal error ({type(exc).__name__}: {first}); rerun with REPORTGEN_DEBUG=1 for the traceback"
            ) from None

    return wrapper


class _WarningLines(logging.Handler):
    """reportgen's warnings (``errors.warn``) as ``warning: ...`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        # on a line of its own, even while a progress bar is drawn
        tqdm.write(f"warning: {record.getMessage()}", file=sys.stderr)


def _show_warnings() -> None:
    logger = logging.getLogger("reportgen")
    if not any(isinstance(h, _WarningLines) for h in logger.handlers):
        logger.addHandler(_WarningLines())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reportgen")
def main() -> None:
    """Failure dossiers for language models: contrastive AttnLRP, attribution graphs, a static site."""
    _show_warnings()


# --- options shared by `attribute` and `graph` -------------------------------------------------


def _token_value(value: str | None) -> str | int | None:
    """`--target 718` or `--target id:718` is a token id; anything else is text."""
    if value is None:
        return None
    if value.startswith("id:"):
        number = value[3:].strip()
        if not number.lstrip("+-").isdigit():
            raise click.ClickException(f"{value!r}: after 'id:' give a token id such as id:718")
        if int(number) < 0:
            raise click.ClickException(f"{value!r}: token ids are >= 0")
        return int(number)
    return value


def question_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--model",
            "model_spec",
            default="smollm2-135m-instruct",
            show_default=True,
            help="Embedded model name, local folder, .gguf file or Hugging Face id.",
        ),
        click.option("--prompt", help="The prompt text."),
        click.option(
            "--target",
            help="Token the model prefers (its first sub-token is used); 'id:N' for a token id.",
        ),
        click.option(
            "--contrast",
            help="The right alternative token (first sub-token); 'id:N' for a token id.",
        ),
        click.option(
            "--mode",
            type=click.Choice(["max_logit", "logit_diff"]),
            default=None,
            help="Default: logit_diff with a contrast, else max_logit.",
        ),
        click.option(
            "--strategy", type=click.Choice(["by_ref_token", "by_topk_avg", "demean"]), default=None
        ),
        click.option(
            "--k",
            "top_k_avg",
            type=click.IntRange(min=1),
            default=10,
            show_default=True,
            help="k for by_topk_avg.",
        ),
        click.option(
            "--chat/--no-chat", default=False, help="Apply the model's chat template to the prompt."
        ),
        click.option("--prefix", default="", help="The response so far (after the chat template)."),
        click.option(
            "--bos/--no-bos",
            default=None,
            help="Force a BOS token on/off (default: the tokenizer's own behaviour).",
        ),
        click.option("--device", default="cpu", show_default=True),
        click.option(
            "--dtype",
            type=click.Choice(["float32", "float64", "bfloat16", "float16"]),
            default="float32",
            show_default=True,
        ),
        click.option(
            "--4bit", "four_bit", is_flag=True, help="Load 4-bit with bitsandbytes (CUDA only)."
        ),
    ]

    @wraps(func)
    def packed(*args: Any, **kwargs: Any) -> Any:
        flags = QuestionFlags(
            **{name: kwargs.pop(name) for name in QuestionFlags.__dataclass_fields__}
        )
        return func(*args, flags=flags, **kwargs)

    for option in reversed(options):
        packed = option(packed)
    return packed


@dataclass(frozen=True)
class QuestionFlags:
    """The flags shared by `attribute` and `graph`, as one value."""

    model_spec: str
    prompt: str | None
    target: str | None
    contrast: str | None
    mode: str | None
    strategy: str | None
    top_k_avg: int
    chat: bool
    prefix: str
    bos: bool | None
    device: str
    dtype: str
    four_bit: bool

    def question(self) -> Any:
        return _question_from_flags(self)

    def load(self, model_spec: str | None = None) -> Any:
        from .models import load_model

        return load_model(
            model_spec or self.model_spec,
            device=self.device,
            dtype=self.dtype,
            quantize="4bit" if self.four_bit else None,
        )


def _question_from_flags(flags: QuestionFlags) -> Any:
    from .inputs import PromptSpec
    from .pipeline import Question

    prompt, target, contrast = flags.prompt, flags.target, flags.contrast
    mode, strategy = flags.mode, flags.strategy
    if prompt is None or not prompt.strip():
        raise click.ClickException("--prompt is required and must not be empty")
    mode = mode or ("logit_diff" if contrast is not None or strategy is not None else "max_logit")
    if mode == "logit_diff":
        strategy = strategy or "by_ref_token"
        if strategy == "by_ref_token" and contrast is None:
            raise click.ClickException(
                "--contrast is required for --mode logit_diff --strategy by_ref_token"
            )
        if target is None:
            raise click.ClickException("--target is required for --mode logit_diff")
    elif strategy is not None:
        raise click.ClickException("--strategy only applies to --mode logit_diff")
    return Question(
        prompt=PromptSpec(prompt, chat=flags.chat, prefix=flags.prefix, bos=flags.bos),
        target=_token_value(target),
        contrast=_token_value(contrast),
        mode=mode,
        strategy=strategy,
        k=flags.top_k_avg,
    )


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


@main.command()
@question_options
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the result.",
)
@one_line_errors
def attribute(flags: QuestionFlags, json_out: Path) -> None:
    """Input relevance of one prediction (AttnLRP), written as JSON."""
    question = flags.question()
    _quiet_libraries()
    from .pipeline import explain

    result = explain(flags.load(), question)
    _write_json(json_out, result.to_json())
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(
        f"explained {result.objective} = {result.explained:.4f} over {len(result.token_ids)} tokens; "
        f"sum of input relevance / explained = {result.conservation:.3f} -> {json_out}"
    )


@main.command()
@click.argument("case_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="Folder for the dossier.",
)
@click.option(
    "--pdf/--no-pdf", default=True, show_default=True, help="Also compile the LaTeX figure set."
)
@click.option(
    "--single-file", is_flag=True, help="Inline the Vega bundle and data: one self-contained .html."
)
@click.option("--no-cache", is_flag=True, help="Recompute even if a cached result exists.")
@runtime_options
@one_line_errors
def run(
    case_file: Path, out: Path, pdf: bool, single_file: bool, no_cache: bool, runtime: Any
) -> None:
    """One dossier (HTML + data, PDF figure set) for CASE_FILE: a one-case site, rendered the way
    `build` renders (staging folder swapped in, cached figure sets)."""
    from .cases import load_case
    from .outdir import check_out_folder
    from .project import find_project_file, load_project

    case = load_case(case_file)
    check_out_folder(out, [case_file])
    project = load_project(find_project_file([case_file]))
    _quiet_libraries()
    from .build import BuildReport, compute_results, render_site
    from .progress import case_steps

    report = BuildReport(out=out)
    (result,) = compute_results(
        [case],
        use_cache=not no_cache,
        keep_going=False,
        command=_command_line(),
        report=report,
        on_step=case_steps(_status_line),
        options=runtime,
        project=project,
    )
    _status_line("")
    from .outdir import build_lock

    with build_lock(out, _command_line()):
        failures = render_site(
            [result],
            out,
            [],
            pdf=pdf,
            single_file=single_file,
            use_cache=not no_cache,
            inputs=[case_file],
        )
    for file, reason in failures:
        click.echo(f"warning: {file}: {reason}", err=True)
    page = out / "cases" / case.id / "index.html"
    click.echo(f"{case.id}: explained {result.attribution.explained:.4f} -> {page}")


@main.command()
@click.argument("case_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@question_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="FILE.json or FILE.npz",
)
@click.option(
    "--node-threshold",
    type=click.FloatRange(min=0),
    default=None,
    help="Skip target nodes with |R| below this (default: the case's, else 0 = exact).",
)
@click.option(
    "--prune/--no-prune",
    "do_prune",
    default=True,
    show_default=True,
    help="Apply the case's pruning (cumulative mass p=0.85 by default) and keep the part connected to the output.",
)
@click.option(
    "--split/--no-split",
    default=None,
    help="Split every block at mid-block (attention vs MLP nodes).",
)
@click.option(
    "--method", type=click.Choice(["auto", "packed", "closed"]), default="auto", show_default=True
)
@click.option(
    "--heads",
    "heads_spec",
    metavar="BLOCKS",
    help='Also write one edge matrix per attention head of these blocks ("all" or 0,5,29) '
    "to OUT's stem + .heads.npz.",
)
@click.option(
    "--format",
    "out_format",
    type=click.Choice(["reportgen", "neuronpedia"]),
    default="reportgen",
    show_default=True,
    help="neuronpedia: the JSON graph file circuit-tracer's and Neuronpedia's viewer load "
    "(--out must end in .json).",
)
@click.option("--no-cache", is_flag=True)
@one_line_errors
def graph(
    case_file: Path | None,
    flags: QuestionFlags,
    out: Path,
    out_format: str,
    node_threshold: float | None,
    do_prune: bool,
    split: bool | None,
    method: str,
    heads_spec: str | None,
    no_cache: bool,
) -> None:
    """Attribution graph of a case (or of --model/--prompt/... flags): edges between hidden states."""
    import dataclasses

    from .cases import GraphSettings, load_case
    from .pipeline import Question

    if case_file is not None:
        case = load_case(case_file)
        question, settings, model_spec = Question.from_case(case), case.graph, case.model
    else:
        question, settings, model_spec = (
            flags.question(),
            GraphSettings(node_threshold=0.0),
            flags.model_spec,
        )
    settings = dataclasses.replace(
        settings,
        node_threshold=settings.node_threshold if node_threshold is None else node_threshold,
        split=settings.split if split is None else split,
        prune=settings.prune if do_prune else "none",
        method=method if method != "auto" else settings.method,
    )
    if out.suffix not in (".json", ".npz"):
        raise click.ClickException("--out must end in .json or .npz")
    if out_format == "neuronpedia" and out.suffix != ".json":
        raise click.ClickException("--format neuronpedia writes JSON: --out must end in .json")
    head_blocks = _parse_blocks(heads_spec) if heads_spec is not None else None
    _quiet_libraries()
    from tqdm import tqdm

    from .compute import code_version, model_identity
    from .graph.step import compute_graph
    from .pipeline import prepare_question

    loaded = flags.load(model_spec)
    prepared = prepare_question(loaded, question)
    with tqdm(total=loaded.model.config.num_hidden_layers, desc="graph", unit="layer") as bar:
        result = compute_graph(
            loaded,
            prepared.inputs.token_ids,
            prepared.objective,
            settings,
            model_identity=model_identity(model_spec),
            code=code_version(),
            use_cache=not no_cache,
            progress=lambda done, total: bar.update(done - bar.n),
        )
    chosen = result.pruned
    out.parent.mkdir(parents=True, exist_ok=True)
    if out_format == "neuronpedia":
        from .neuronpedia import neuronpedia_from_attribution
        from .pipeline import attribute_prepared

        slug = case.id if case_file is not None else out.stem
        _write_json(
            out,
            neuronpedia_from_attribution(
                chosen.to_json(),
                attribute_prepared(loaded, prepared),
                slug=slug,
                model=loaded.name,
            ),
        )
    elif out.suffix == ".npz":
        import numpy as np

        np.savez_compressed(out, **chosen.to_npz())
    else:
        data = chosen.to_json()
        data["metrics"] = result.metrics
        data["neurons"] = result.neurons
        _write_json(out, data)
    meta = chosen.meta
    packing = f" of batch <= {meta['batch_size']}" if "batch_size" in meta else ""
    click.echo(
        f"{len(chosen.layers)} node layers x {chosen.n_tokens} tokens, {chosen.n_edges} edges "
        f"(of {result.full.n_edges}); method {meta['method']}, {meta['backward_passes']} backward "
        f"pass(es){packing} -> {out}"
    )
    if heads_spec is not None:
        _write_head_edges(loaded, prepared, head_blocks, settings.method, out)


def _parse_blocks(spec: str) -> list[int] | None:
    """``all`` -> None; ``0,5,29`` -> [0, 5, 29]."""
    if spec.strip() == "all":
        return None
    try:
        return [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise click.ClickException(
            f'--heads: expected "all" or block indices like 0,5,29, got {spec!r}'
        ) from None


def _write_head_edges(
    loaded: Any, prepared: Any, blocks: list[int] | None, method: str, out: Path
) -> None:
    import numpy as np
    from tqdm import tqdm

    from .graph.step import compute_head_edges

    total = len(blocks) if blocks is not None else loaded.model.config.num_hidden_layers
    with tqdm(total=total, desc="heads", unit="block") as bar:
        try:
            heads = compute_head_edges(
                loaded,
                prepared.inputs.token_ids,
                prepared.objective,
                blocks=blocks,
                method=method,
                progress=lambda done, _: bar.update(done - bar.n),
            )
        except ValueError as error:
            raise click.ClickException(f"--heads: {error}") from None
    path = out.with_name(out.stem + ".heads.npz")
    np.savez_compressed(path, **heads.to_npz())
    mass = heads.head_mass()
    strongest = ", ".join(
        f"{block}.h{int(row.argmax())}" for block, row in zip(heads.blocks, mass, strict=True)
    )
    click.echo(
        f"{len(heads.blocks)} block(s) x {heads.heads.shape[1]} heads, method "
        f"{heads.meta['method']}; strongest head per block: {strongest} -> {path}"
    )


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=DEFAULT_SITE,
    show_default=True,
)
@click.option("--no-cache", is_flag=True, help="Recompute every case.")
@click.option(
    "--keep-going",
    is_flag=True,
    help="Build every valid case; report the failed ones and exit non-zero at the end.",
)
@click.option("--pdf/--no-pdf", default=True, show_default=True)
@click.option("--single-file", is_flag=True, help="Each dossier as one self-contained .html.")
@runtime_options
@execution_options
@one_line_errors
def build(
    paths: tuple[Path, ...],
    out: Path,
    no_cache: bool,
    keep_going: bool,
    pdf: bool,
    single_file: bool,
    runtime: Any,
    execution: Any,
) -> None:
    """Build the static site for PATHS (default: cases/)."""
    _quiet_libraries()
    from .build import build as build_site

    report = build_site(
        paths or (Path("cases"),),
        out,
        use_cache=not no_cache,
        keep_going=keep_going,
        pdf=pdf,
        single_file=single_file,
        command=_command_line(),
        options=runtime,
        execution=execution,
    )
    click.echo(
        f"site: {report.out / 'index.html'} ({len(report.built)} computed, {len(report.cached)} from cache, "
        f"{len(report.failures)} failed)"
    )
    for path, reason in report.failures:
        click.echo(f"FAILED {path}: {reason}", err=True)
    if report.failures:
        sys.exit(1)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@one_line_errors
def validate(paths: tuple[Path, ...]) -> None:
    """Check case files; every problem names the file and the field."""
    from .cases import load_cases

    cases, errors = load_cases(paths or (Path("cases"),))
    for error in errors:
        click.echo(f"error: {error}", err=True)
    click.echo(f"{len(cases)} valid, {len(errors)} invalid")
    if errors or not cases:
        sys.exit(1)


@main.group()
def models() -> None:
    """Embedded models: list them, fetch one."""


@models.command("list")
def models_list() -> None:
    from .models import EMBEDDED_MODELS, embedded_path, is_fetched

    for name, entry in EMBEDDED_MODELS.items():
        state = f"fetched ({embedded_path(name)})" if is_fetched(name) else "not fetched"
        click.echo(f"{name:24} {state}\n{'':24} {entry.description}; from {entry.source}")


@models.command("fetch")
@click.argument("name")
@one_line_errors
def models_fetch(name: str) -> None:
    _quiet_libraries()
    from .models import fetch_embedded

    path = fetch_embedded(name, progress=lambda msg: click.echo(f"{name}: {msg}", err=True))
    click.echo(str(path))


@main.command()
@click.option(
    "--model",
    "model_spec",
    default="smollm2-135m-instruct",
    show_default=True,
    help="Embedded name, local folder or file of the one model the app loads.",
)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--cases",
    "cases_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("cases"),
    show_default=True,
    help="Where 'save as case' writes case files.",
)
@one_line_errors
def explore(model_spec: str, port: int, cases_dir: Path) -> None:
    """A local web app (http://127.0.0.1:PORT): prompt -> top-k -> the dossier's views -> case file."""
    _quiet_libraries()
    import uvicorn

    from .explore import create_app
    from .models import load_model

    loaded = load_model(model_spec)
    app = create_app(loaded, model=model_spec, cases_dir=cases_dir)
    click.echo(f"reportgen explore: {model_spec} on http://127.0.0.1:{port} (Ctrl+C stops)")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@main.command()
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=DEFAULT_SITE,
    show_default=True,
)
@one_line_errors
def serve(port: int, directory: Path) -> None:
    """Preview the built site on http://localhost:PORT."""
    import errno
    import functools
    import http.server

    if not 0 < port < 65536:
        raise click.ClickException(f"--port {port}: give a port between 1 and 65535, e.g. 8000")
    if not (directory / "index.html").is_file():
        raise click.ClickException(
            f"{directory} is not a built site (no index.html); run `reportgen build --out "
            f"{directory}` first or give --dir"
        )

    class SiteHandler(http.server.SimpleHTTPRequestHandler):
        """Files of the site only: a folder without index.html is a 404, never a listing."""

        def list_directory(self, path: Any) -> None:
            self.send_error(404, "Not Found")
            return None

    handler = functools.partial(SiteHandler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"port {port} is already in use (another server?); choose another with --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise click.ClickException(
                f"port {port} needs administrator rights; use a port above 1023"
            ) from None
        raise click.ClickException(f"cannot listen on port {port}: {exc.strerror or exc}") from None
    with server:
        click.echo(f"serving {directory} on http://127.0.0.1:{port} (Ctrl+C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


@main.command()
@click.argument("benchmark")
@click.option(
    "--model",
    "model_spec",
    default="smollm2-135m-instruct",
    show_default=True,
    help="Embedded model name, local folder, .gguf file or Hugging Face id.",
)
@click.option("--models", "models_csv", help="Comma-separated models: the same items on each.")
@click.option("--items", "items_csv", help="Comma-separated item ids (e.g. HumanEval/12).")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N items.")
@click.option(
    "--budget",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="Continuations tried per failure.",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Alternatives tried per position.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1), help="Default: the benchmark's.")
@click.option(
    "--min-gap",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Search only pairs the model separates by this logit gap (0: every pair).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("cases"),
    show_default=True,
    help="Cases go to OUT/<benchmark>/.",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0),
    help="Seconds: items not generated or searched by then are reported (a rerun resumes).",
)
@click.option("--force", is_flag=True, help="Overwrite case files that were edited by hand.")
@click.option(
    "--recheck",
    is_flag=True,
    help="No new search: re-verify the cases already in OUT/<benchmark>/ under the current "
    "rules, rewrite those that hold, delete the others.",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="FILE.jsonl of your own items (benchmark jsonl; instructions: other prompts).",
)
@runtime_options
@execution_options
@one_line_errors
def collect(
    benchmark: str,
    model_spec: str,
    models_csv: str | None,
    items_csv: str | None,
    limit: int | None,
    budget: int,
    top_k: int,
    batch_size: int,
    max_new_tokens: int | None,
    min_gap: float,
    out: Path,
    time_limit: float | None,
    force: bool,
    recheck: bool,
    data: Path | None,
    runtime: Any,
    execution: Any,
) -> None:
    """Run a model on BENCHMARK (humaneval, instructions, arithmetic, jsonl), pin each failure
    to a token pair by strict recovery, and write the pairs as case files."""
    if items_csv and limit:
        raise click.ClickException("give --items or --limit, not both")
    models = [m.strip() for m in models_csv.split(",") if m.strip()] if models_csv else [model_spec]
    items = [i.strip() for i in items_csv.split(",") if i.strip()] if items_csv else None
    _quiet_libraries()
    from .collect.runner import Settings
    from .collect.runner import collect as run_collect
    from .collect.runner import recheck as run_recheck
    from .project import find_project_file, load_project

    if recheck:
        checked = run_recheck(
            benchmark,
            settings=Settings(min_gap=min_gap, explain_check=False),
            out=out,
            data=data,
            log=lambda msg: click.echo(msg, err=True),
        )
        click.echo(
            f"{checked['benchmark']}: {checked['items']} shipped cases re-checked, "
            f"{checked['pinned']} hold, {checked['items'] - checked['pinned']} dropped "
            f"in {checked['wall_s']:.0f}s -> {out / checked['benchmark']}"
        )
        return

    summary = run_collect(
        benchmark,
        models,
        items=items,
        limit=limit,
        settings=Settings(
            budget=budget,
            top_k=top_k,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            time_limit=time_limit,
            min_gap=min_gap,
        ),
        out=out,
        force=force,
        data=data,
        options=runtime,
        project=load_project(find_project_file([out])),
        execution=execution,
    )
    for run in summary["runs"]:
        kept = [c for c, status in run["files"].items() if status == "kept"]
        if kept:
            click.echo(f"kept hand-edited (use --force): {', '.join(kept)}", err=True)
    rate = f"{summary['pin_rate']:.0%}" if summary["pin_rate"] is not None else "n/a"
    click.echo(
        f"{summary['benchmark']}: {summary['items']} items, {summary['passed']} passed, "
        f"{summary['failed']} failed, {summary['pinned']} pinned ({rate}) in {summary['wall_s']:.0f}s "
        f"-> {out / summary['benchmark']}"
    )
    funnel = summary["funnel"]
    click.echo(
        f"funnel: {funnel['failed']} failed, {sum(funnel['not_clean_failure'].values())} no clean "
        f"failure, {funnel['searched']} searched, {funnel['continuations']} continuations, "
        f"rejected {funnel['rejected'] or '{}'}, pinned {funnel['pinned']} (min gap {min_gap:g})"
    )


if __name__ == "__main__":
    main()
