"""`attribute` and `graph` on one question: from a case file or from --model/--prompt/... flags."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

import click

from ..question import (
    DEFAULT_K,
    DEFAULT_STRATEGY,
    MODES,
    STRATEGIES,
    PromptSpec,
    Question,
    QuestionError,
)
from .common import model_option, one_line_errors, quiet_libraries, write_json

# --- options shared by `attribute` and `graph` -------------------------------------------------


def question_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The question's flags leave their defaults to :class:`~reportgen.question.Question`
    (a flag not given is None and left out), so a command line and a case file that say the
    same thing ask the same question."""
    options = [
        model_option(),
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
            type=click.Choice(MODES),
            default=None,
            help="Default: logit_diff with a contrast or a strategy, else max_logit.",
        ),
        click.option(
            "--strategy",
            type=click.Choice(STRATEGIES),
            default=None,
            help=f"For logit_diff (default {DEFAULT_STRATEGY}).",
        ),
        click.option(
            "--k",
            "top_k_avg",
            type=click.IntRange(min=1),
            default=None,
            help=f"k for by_topk_avg (default {DEFAULT_K}).",
        ),
        click.option(
            "--chat/--no-chat", default=None, help="Apply the model's chat template to the prompt."
        ),
        click.option(
            "--prefix", default=None, help="The response so far (after the chat template)."
        ),
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
    """The flags shared by `attribute` and `graph`, as one value (None: not given)."""

    model_spec: str
    prompt: str | None
    target: str | None
    contrast: str | None
    mode: str | None
    strategy: str | None
    top_k_avg: int | None
    chat: bool | None
    prefix: str | None
    bos: bool | None
    device: str
    dtype: str
    four_bit: bool

    def question(self) -> Question:
        """The question these flags ask (a flag not given takes the question's default); a
        problem is one line naming the flag."""
        if not self.prompt:
            raise click.ClickException("--prompt is required")
        prompt = {"prompt": self.prompt, "chat": self.chat, "prefix": self.prefix, "bos": self.bos}
        objective = {
            "target": self.target,
            "contrast": self.contrast,
            "mode": self.mode,
            "strategy": self.strategy,
            "k": self.top_k_avg,
        }
        try:
            return Question(PromptSpec(**_given(prompt)), **_given(objective))
        except QuestionError as exc:
            raise click.ClickException(f"--{exc.field} {exc.problem}") from None

    def load(self, model_spec: str | None = None) -> Any:
        from ..models import load_model

        return load_model(
            model_spec or self.model_spec,
            device=self.device,
            dtype=self.dtype,
            quantize="4bit" if self.four_bit else None,
        )


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


@click.command()
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
    quiet_libraries()
    from ..pipeline import attribute_prepared, check_fits, prepare_question

    loaded = flags.load()
    prepared = prepare_question(loaded, question)
    check_fits(loaded, len(prepared.inputs.token_ids))
    result = attribute_prepared(loaded, prepared)
    write_json(json_out, result.to_json())
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(
        f"explained {result.objective} = {result.explained:.4f} over {len(result.token_ids)} tokens; "
        f"sum of input relevance / explained = {result.conservation:.3f} -> {json_out}"
    )


@click.command()
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

    from ..cases import GraphSettings, load_case

    if case_file is not None:
        case = load_case(case_file)
        question, settings, model_spec = case.question, case.graph, case.model
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
    quiet_libraries()
    from tqdm import tqdm

    from ..cache_keys import code_version, model_identity
    from ..graph.step import compute_graph
    from ..pipeline import check_fits, prepare_question

    loaded = flags.load(model_spec)
    where = str(case_file) if case_file is not None else None
    prepared = prepare_question(loaded, question, where=where)
    check_fits(loaded, len(prepared.inputs.token_ids), where=where)
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
        from ..pipeline import attribute_prepared
        from ..render.neuronpedia import neuronpedia_from_attribution

        slug = case.id if case_file is not None else out.stem
        write_json(
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
        write_json(out, data)
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

    from ..graph.step import compute_head_edges

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
