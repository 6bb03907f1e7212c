"""What every command shares: the `reportgen` group, the runtime and execution options, the
one-line error contract, status lines and the recorded command line. Heavy imports stay inside
functions so `reportgen --help` is instant."""

from __future__ import annotations

import errno
import gc
import json
import logging
import os
import shlex
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from ..runner.executors import EXECUTORS

DEFAULT_SITE = Path("site/_build")
DEFAULT_MODEL = "smollm2-135m-instruct"


def model_option(
    help: str = "Embedded model name, local folder, .gguf file or Hugging Face id.",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The one --model option (into ``model_spec``) of every command that loads a model."""
    return click.option(
        "--model", "model_spec", default=DEFAULT_MODEL, show_default=True, help=help
    )


def quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def status_line(text: str) -> None:
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


def command_line() -> str:
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
        from ..errors import ReportgenError
        from ..runner import RuntimeOptions

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
            type=click.Choice(list(EXECUTORS)),
            default="local",
            show_default=True,
            help="; ".join(f"{e.name}: {e.help}" for e in EXECUTORS.values()) + ".",
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
        from ..runner import Execution

        if ray_address and not EXECUTORS[executor].takes_address:
            takers = " or ".join(e.name for e in EXECUTORS.values() if e.takes_address)
            raise click.ClickException(f"--ray-address needs --executor {takers}")
        if ray_address:
            from ..errors import ReportgenError
            from ..runner.ray_executor import check_ray_address

            try:  # before any work: ray.init itself would retry for minutes
                check_ray_address(ray_address)
            except ReportgenError as exc:
                raise click.ClickException(str(exc)) from None
        return func(*args, execution=Execution(executor, jobs, ray_address), **kwargs)

    for option in reversed(options):
        packed = option(packed)
    return packed


def one_line_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Expected failures print one line and exit 1; set REPORTGEN_DEBUG=1 for the traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..errors import ReportgenError

        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except OSError as exc:
            if os.environ.get("REPORTGEN_DEBUG"):
                raise
            raise click.ClickException(os_error_line(exc)) from None
        except (ReportgenError, ValueError) as exc:
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


_OS_ADVICE = {
    errno.EBUSY: "in use or a mount point: reportgen replaces an output folder as a whole, "
    "so give a folder inside it",
    errno.EPERM: "not allowed: the file or folder is immutable (lsattr shows 'i'), "
    "read-only or another user's; choose another path",
    errno.EACCES: "permission denied: choose a path you may write, or change its permissions",
    errno.EROFS: "on a read-only file system; choose a path on a writable one",
    errno.ENOSPC: "the disk is full; free space and run again (finished cases are cached)",
    errno.EDQUOT: "the disk quota is used up; free space and run again",
    errno.ENAMETOOLONG: "the name is too long for the file system",
    errno.ELOOP: "too many levels of symbolic links",
}


def os_error_line(exc: OSError) -> str:
    """One line for a failed file operation: the path(s) it was about, what failed and what
    to do, instead of Python's ``[Errno 16] Device or resource busy: 'a' -> 'b'``."""
    paths = [str(p) for p in (exc.filename, exc.filename2) if p not in (None, "")]
    where = " -> ".join(paths) if paths else "a file being written"
    reason = exc.strerror or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    advice = _OS_ADVICE.get(exc.errno) if exc.errno is not None else None
    return f"{where}: {reason}" + (f" ({advice})" if advice else "")


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
    from .. import interrupts

    # Ctrl-C / SIGTERM within seconds, even in the middle of one long attention call
    context = click.get_current_context()
    if interrupts.install():
        context.call_on_close(interrupts.uninstall)
    context.call_on_close(_skip_exit_collection)


def _skip_exit_collection() -> None:
    """The command is done: spare the interpreter's final garbage collection the objects it holds.

    With a model loaded (torch, transformers) that last collection walks millions of objects:
    1.7 s of a 10 s ``run --fast``, after the page is written. ``gc.freeze`` moves them out of
    the collector's sight; exit handlers and finalizers still run."""
    gc.freeze()


def write_json(path: Path, data: Any) -> None:
    from ..cache_files import replace_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, json.dumps(data, indent=1, ensure_ascii=False))
