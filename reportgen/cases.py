"""Case files (TOML): parse, validate and write. Every error names the file, the field and the
problem. A case is a :class:`~reportgen.question.Question` (validated there, as from every other
front end) plus how to present it: id, title, model, segments, graph settings, notes."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CaseError
from .outdir import MARKER as SITE_MARKER
from .question import OBJECTIVE_FIELDS, PROMPT_FIELDS, PromptSpec, Question, QuestionError
from .toml_values import toml_key, toml_value

ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")  # always with fullmatch: "$" accepts a final "\n"
MAX_ID_LENGTH = 100  # ids become folder and file names (255 bytes at most on most systems)

_KNOWN_FIELDS = {
    "id",
    "title",
    "description",
    "model",
    *PROMPT_FIELDS,
    *OBJECTIVE_FIELDS,
    "segments",
    "relevant",
    "tags",
    "graph",
    "compare",
    "source",
    "notes",
}
_GRAPH_FIELDS = {
    "layers",
    "prune",
    "p",
    "threshold",
    "node_threshold",
    "split",
    "method",
    "pinned",
    "supernodes",
    "ablation",
}
_NODE_LAYER = re.compile(r"emb|[0-9]+(\.mid)?")
#: a node of the graph as a case file names it: (layer, position), e.g. ("emb", 3), ("12", 40)
GraphNode = tuple[str, int]
PRUNE_METHODS = ("cum_mass", "threshold", "none")


@dataclass(frozen=True)
class GraphSettings:
    layers: str | tuple[int, ...] = "all"
    prune: str = "cum_mass"
    p: float = 0.85
    threshold: float = 0.01
    node_threshold: float = 0.01
    split: bool = False
    method: str = "auto"
    # a subgraph the reader pinned (the explorer's pinnedIds) and labelled groups of its nodes
    # (supernodes: label -> nodes); drawn as a figure by the build (docs/notes/circuits.md)
    pinned: tuple[GraphNode, ...] = ()
    supernodes: tuple[tuple[str, tuple[GraphNode, ...]], ...] = ()
    # what an ablated node's state is replaced by: its layer's mean over positions, or zeros
    ablation: str = "mean"


@dataclass(frozen=True)
class Case:
    """One failure case: the question it asks and how to present it. ``path``: where the file
    is (or will be) read from; its model path is relative to it."""

    path: str
    id: str
    title: str
    model: str
    question: Question
    description: str = ""
    segments: dict[str, tuple[int, int]] = field(default_factory=dict)
    relevant: tuple[tuple[int, int], ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    compare: tuple[str, ...] = ()
    graph: GraphSettings = field(default_factory=GraphSettings)
    source: dict[str, Any] = field(default_factory=dict)
    notes: str = ""


def _expect(
    path: str,
    data: dict[str, Any],
    name: str,
    kinds: type | tuple[type, ...],
    required: bool = False,
) -> Any:
    if name not in data:
        if required:
            raise CaseError(path, name, "is required but missing")
        return None
    value = data[name]
    # bool is an int in Python: refuse it where a number is expected
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise CaseError(path, name, f"must be {_kind_names(kinds)}, got a boolean")
    if not isinstance(value, kinds):
        raise CaseError(
            path, name, f"must be {_kind_names(kinds)}, got {type(value).__name__} {value!r}"
        )
    return value


def _kind_names(kinds: type | tuple[type, ...]) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        list: "a list",
        dict: "a table",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _span(path: str, name: str, value: Any) -> tuple[int, int]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or not 0 <= value[0] < value[1]
    ):
        raise CaseError(
            path, name, f"must be a token span [start, end] with 0 <= start < end, got {value!r}"
        )
    return int(value[0]), int(value[1])


def _graph_settings(path: str, data: Any) -> GraphSettings:
    if data is None:
        return GraphSettings()
    if not isinstance(data, dict):
        raise CaseError(path, "graph", "must be a table")
    unknown = set(data) - _GRAPH_FIELDS
    if unknown:
        raise CaseError(
            path,
            f"graph.{sorted(unknown)[0]}",
            f"unknown field (known: {', '.join(sorted(_GRAPH_FIELDS))})",
        )
    layers = data.get("layers", "all")
    if layers != "all" and not (
        isinstance(layers, list)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in layers)
    ):
        raise CaseError(
            path, "graph.layers", f'must be "all" or a list of layer indices, got {layers!r}'
        )
    prune = data.get("prune", "cum_mass")
    if prune not in PRUNE_METHODS:
        raise CaseError(
            path, "graph.prune", f"must be one of {', '.join(PRUNE_METHODS)}, got {prune!r}"
        )
    numbers = {}
    for name, default, rule in (
        ("p", 0.85, "in (0, 1]"),
        ("threshold", 0.01, "finite and >= 0"),
        ("node_threshold", 0.01, "finite and >= 0"),
    ):
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CaseError(path, f"graph.{name}", f"must be a number, got {value!r}")
        ok = math.isfinite(value) and (0 < value <= 1 if name == "p" else value >= 0)
        if not ok:
            raise CaseError(path, f"graph.{name}", f"must be {rule}, got {value}")
        numbers[name] = float(value)
    split = data.get("split", False)
    if not isinstance(split, bool):
        raise CaseError(path, "graph.split", f"must be true or false, got {split!r}")
    method = data.get("method", "auto")
    if method not in ("auto", "closed", "packed"):
        raise CaseError(path, "graph.method", f"must be auto, closed or packed, got {method!r}")
    # what the graph step refuses, refused here (so `validate` says it, before any compute)
    if isinstance(layers, list):
        if not layers:
            raise CaseError(
                path, "graph.layers", 'is empty: give at least one layer index, or "all"'
            )
        if method == "closed":
            raise CaseError(
                path,
                "graph.method",
                'the closed form computes every layer; with graph.layers use "packed" or "auto"',
            )
        if split:
            raise CaseError(path, "graph.split", "cannot be combined with a subset of graph.layers")
    ablation = data.get("ablation", "mean")
    if ablation not in ("mean", "zero"):
        raise CaseError(path, "graph.ablation", f"must be mean or zero, got {ablation!r}")
    pinned = _graph_nodes(path, "graph.pinned", data.get("pinned", []))
    supernodes = _supernodes(path, data.get("supernodes", []))
    return GraphSettings(
        layers="all" if layers == "all" else tuple(layers),
        prune=prune,
        split=split,
        method=method,
        pinned=pinned,
        supernodes=supernodes,
        ablation=ablation,
        **numbers,
    )


def _graph_nodes(path: str, name: str, value: Any) -> tuple[GraphNode, ...]:
    """A list of [layer, position] pairs: layer "emb", "3" or "3.mid", position an integer >= 0
    (whether they exist in the graph is checked once the graph is computed)."""
    if not isinstance(value, list):
        raise CaseError(path, name, f"must be a list of [layer, position] pairs, got {value!r}")
    nodes: list[GraphNode] = []
    for i, item in enumerate(value):
        ok = (
            isinstance(item, list)
            and len(item) == 2
            and isinstance(item[0], str)
            and _NODE_LAYER.fullmatch(item[0]) is not None
            and isinstance(item[1], int)
            and not isinstance(item[1], bool)
            and item[1] >= 0
        )
        if not ok:
            raise CaseError(
                path,
                f"{name}[{i}]",
                'must be [layer, position] with layer "emb", "3" or "3.mid" and position an '
                f"integer >= 0, got {item!r}",
            )
        node = (item[0], int(item[1]))
        if node in nodes:
            raise CaseError(path, f"{name}[{i}]", f"repeats the node {list(node)!r}")
        nodes.append(node)
    return tuple(nodes)


def _supernodes(path: str, value: Any) -> tuple[tuple[str, tuple[GraphNode, ...]], ...]:
    """``supernodes = [{ label = "...", nodes = [[layer, position], ...] }, ...]``: labelled,
    disjoint groups of nodes."""
    if not isinstance(value, list):
        raise CaseError(path, "graph.supernodes", "must be a list of { label, nodes } tables")
    groups: list[tuple[str, tuple[GraphNode, ...]]] = []
    seen: dict[GraphNode, str] = {}
    for i, item in enumerate(value):
        name = f"graph.supernodes[{i}]"
        if not isinstance(item, dict) or set(item) != {"label", "nodes"}:
            raise CaseError(
                path, name, 'must be a table { label = "...", nodes = [[layer, position], ...] }'
            )
        label = item["label"]
        if not isinstance(label, str) or not label.strip():
            raise CaseError(path, f"{name}.label", "must be a non-empty string")
        if label in (g[0] for g in groups):
            raise CaseError(path, f"{name}.label", f"repeats the label {label!r}")
        nodes = _graph_nodes(path, f"{name}.nodes", item["nodes"])
        if not nodes:
            raise CaseError(path, f"{name}.nodes", "must name at least one node")
        for node in nodes:
            if node in seen:
                raise CaseError(
                    path, f"{name}.nodes", f"node {list(node)!r} is already in {seen[node]!r}"
                )
            seen[node] = label
        groups.append((label, nodes))
    return tuple(groups)


def resolve_model_spec(spec: str, case_path: str) -> str:
    """A model path in a case (or project) file means a path next to that file, not one
    relative to wherever the command was started; embedded names and HF ids stay as they are.
    A spec is a path when it starts with ``.``, ``/`` or ``~``, names a ``.gguf`` file, has more
    than one ``/`` (HF ids have exactly one) or exists next to the file. Paths come back
    absolute with symbolic links resolved, so a link and its target name the same model."""
    from .models import EMBEDDED_MODELS

    if spec in EMBEDDED_MODELS:
        return spec
    if spec.startswith(("/", "~")) or os.path.isabs(spec):
        return os.path.realpath(os.path.expanduser(spec))  # never raises, even on a link loop
    here = Path(case_path).absolute().parent / spec
    if is_path_spec(spec) or here.exists():
        return os.path.realpath(here)
    return spec


def is_path_spec(spec: str) -> bool:
    """Whether ``spec`` can only mean a local path (not an embedded name or a hub id)."""
    return (
        spec.startswith((".", "/", "~"))
        or os.path.isabs(spec)
        or spec.endswith(".gguf")
        or spec.count("/") > 1
    )


def case_model_spec(spec: str, case_dir: str | Path | None = None) -> str:
    """What a case file written by reportgen (`explore`'s save, `collect`) holds for the model
    ``spec`` a command was given, so that the case names the same model wherever it is read:
    a relative path (meant from the current folder) becomes relative to ``case_dir`` (the
    case's folder), or absolute without one; absolute paths, embedded names and hub ids stay as
    they are. ``./models/tiny`` given in the project folder and saved into ``cases/`` becomes
    ``../models/tiny``."""
    from .models import EMBEDDED_MODELS

    if spec in EMBEDDED_MODELS or spec.startswith("~") or os.path.isabs(spec):
        return spec
    if not (is_path_spec(spec) or Path(spec).exists()):
        return spec
    target = os.path.abspath(spec)
    if case_dir is None:
        return target
    relative = os.path.relpath(target, os.path.abspath(case_dir))
    return relative if relative.startswith(".") else f"./{relative}"


def model_layer_count(spec: str) -> int | None:
    """The number of blocks of a model, read from its ``config.json`` where that is on disk
    (a local folder, a fetched embedded model); None where it is not known without loading."""
    import json

    from .models import EMBEDDED_MODELS, embedded_path

    folder = embedded_path(spec) if spec in EMBEDDED_MODELS else Path(spec)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    config = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    for name in ("num_hidden_layers", "n_layer", "num_layers"):
        value = config.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def check_layers(path: str, layers: str | tuple[int, ...], total: int | None) -> None:
    """``graph.layers`` against the model's ``total`` blocks (unknown: nothing to check)."""
    if total is None or layers == "all":
        return
    outside = [layer for layer in layers if layer >= total]
    if outside:
        raise CaseError(
            path,
            "graph.layers",
            f"layer {outside[0]} does not exist: the model has {total} blocks (0..{total - 1})",
        )


def _check_model_path(path: str, name: str, raw: str, resolved: str) -> None:
    """A model given as a local path must exist (the build would fail on it)."""
    if os.path.isabs(resolved) and not os.path.exists(resolved):
        where = "" if raw == resolved else f" ({resolved}, relative to the case file)"
        raise CaseError(path, name, f"model path {raw} does not exist{where}")


def _question(path: str, data: dict[str, Any]) -> Question:
    """The case's question: the fields it gives, the others the question's defaults; its
    problems name the case file."""
    for name in ("prompt", "target"):
        if name not in data:
            raise CaseError(path, name, "is required but missing")
    try:
        prompt = PromptSpec(**{name: data[name] for name in PROMPT_FIELDS if name in data})
        return Question(prompt, **{name: data[name] for name in OBJECTIVE_FIELDS if name in data})
    except QuestionError as exc:
        raise CaseError(path, exc.field, exc.problem) from None


def parse_case(data: dict[str, Any], path: str) -> Case:
    """Validate a parsed TOML table; ``path`` is only used in error messages."""
    unknown = set(data) - _KNOWN_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise CaseError(
            path, name, f"unknown field (known fields: {', '.join(sorted(_KNOWN_FIELDS))})"
        )
    case_id = _expect(path, data, "id", str, True)
    if not ID_PATTERN.fullmatch(case_id):
        raise CaseError(
            path,
            "id",
            "must match [a-z0-9][a-z0-9-]* in full: lowercase letters, digits and '-' "
            f"(it becomes the page URL), got {case_id[:60]!r}",
        )
    if len(case_id) > MAX_ID_LENGTH:
        raise CaseError(
            path, "id", f"is {len(case_id)} characters long; at most {MAX_ID_LENGTH} are allowed"
        )
    model = _expect(path, data, "model", str, True)
    if not model.strip():
        raise CaseError(path, "model", "must not be empty")
    model_text, model = model, resolve_model_spec(model, path)
    _check_model_path(path, "model", model_text, model)
    question = _question(path, data)
    segments_raw = _expect(path, data, "segments", dict) or {}
    segments = {
        str(name): _span(path, f"segments.{name}", span) for name, span in segments_raw.items()
    }
    relevant_raw = _expect(path, data, "relevant", list) or []
    relevant = tuple(_span(path, f"relevant[{i}]", span) for i, span in enumerate(relevant_raw))
    tags_raw = _expect(path, data, "tags", dict) or {}
    for name, value in tags_raw.items():
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise CaseError(path, f"tags.{name}", f"must be a string or number, got {value!r}")
    compare = _expect(path, data, "compare", list) or []
    if not all(isinstance(m, str) and m.strip() for m in compare):
        raise CaseError(path, "compare", "must be a list of model names or paths")
    for index, spec in enumerate(compare):
        _check_model_path(path, f"compare[{index}]", spec, resolve_model_spec(spec, path))
    graph = _graph_settings(path, data.get("graph"))
    check_layers(path, graph.layers, model_layer_count(model))
    if "graph" in data and isinstance(data["graph"], dict) and "compare" in data["graph"]:
        raise CaseError(path, "graph.compare", "belongs at the top level of the case")
    return Case(
        path=path,
        id=case_id,
        title=_expect(path, data, "title", str) or case_id,
        description=_expect(path, data, "description", str) or "",
        model=model,
        question=question,
        segments=segments,
        relevant=relevant,
        tags={str(k_): str(v) for k_, v in tags_raw.items()},
        compare=tuple(resolve_model_spec(m, path) for m in compare),
        graph=graph,
        source=_expect(path, data, "source", dict) or {},
        notes=_expect(path, data, "notes", str) or "",
    )


def case_toml(case: Case) -> str:
    """The one writer of case files (the explorer's "save as case", `collect`, the scripts):
    the fields a person would write, in one order, those the defaults would give back left
    out (:meth:`Question.stated`). ``case.model`` is written as it is: a writer passes the spec
    the file should hold (:func:`case_model_spec`). The text is read back from ``case.path``,
    as it will be read, and must be a valid case asking the same question."""
    question, prompt = case.question, case.question.prompt
    fields: dict[str, Any] = {"id": case.id, "title": case.title}
    if case.description:
        fields["description"] = case.description
    fields |= {"model": case.model, "chat": prompt.chat, "prompt": prompt.prompt}
    if prompt.prefix or prompt.prefix_ids is not None:
        fields["prefix"] = prompt.prefix
    if prompt.prefix_ids is not None:
        fields["prefix_ids"] = list(prompt.prefix_ids)
    if prompt.bos is not None:
        fields["bos"] = prompt.bos
    fields["target"] = question.target
    if question.contrast is not None:
        fields["contrast"] = question.contrast
    fields |= question.stated()
    optional = {
        "segments": {name: list(span) for name, span in case.segments.items()},
        "relevant": [list(span) for span in case.relevant],
        "tags": dict(case.tags),
        "compare": list(case.compare),
        "notes": case.notes,
    }
    fields |= {name: value for name, value in optional.items() if value}
    lines = [f"{toml_key(name)} = {toml_value(value)}" for name, value in fields.items()]
    for table, values in (("graph", _graph_fields(case.graph)), ("source", case.source)):
        values = {name: value for name, value in values.items() if value is not None}
        if values:
            lines += ["", f"[{table}]"]
            lines += [f"{toml_key(name)} = {toml_value(value)}" for name, value in values.items()]
    text = "\n".join(lines) + "\n"
    read = parse_case(tomllib.loads(text), case.path)
    if (read.id, read.question) != (case.id, case.question):
        raise ValueError(f"{case.path}: the written case reads back as another question")
    return text


def _graph_fields(settings: GraphSettings) -> dict[str, Any]:
    """The graph settings that differ from the defaults, as the ``[graph]`` table holds them."""
    default, out = GraphSettings(), {}
    for name in (f.name for f in dataclasses.fields(settings)):
        value = getattr(settings, name)
        if value == getattr(default, name):
            continue
        if name == "supernodes":
            value = [{"label": label, "nodes": list(nodes)} for label, nodes in value]
        out[name] = value
    return out


def load_case(path: str | Path) -> Case:
    from .files import NotRegularFile, read_regular

    path = Path(path)
    try:
        text = read_regular(path).decode("utf-8")
    except NotRegularFile as exc:
        raise CaseError(str(path), None, str(exc)) from None
    except FileNotFoundError:
        raise CaseError(str(path), None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise CaseError(str(path), None, f"not UTF-8 text ({exc.reason})") from None
    except IsADirectoryError:
        raise CaseError(str(path), None, "is a folder, not a case file (rename it)") from None
    except OSError as exc:
        raise CaseError(str(path), None, f"cannot be read ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(str(path), None, f"invalid TOML: {exc}") from None
    return parse_case(data, str(path))


def find_case_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders to the ``*.toml`` files below them (sorted, so builds are deterministic)."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found.extend(sorted(_walk_toml(p)))
        else:
            found.append(p)
    return found


def _walk_toml(root: Path) -> Iterable[Path]:
    """``*.toml`` below ``root``, hidden names skipped, symbolic links to folders not followed
    (a loop would never end), a site reportgen built skipped; a folder or a dangling link named
    ``x.toml`` is still listed, so that loading it reports it."""
    # an explicit stack, not os.walk: a folder tree 1,200 levels deep must not hit the
    # recursion limit (os.walk recurses on Python 3.11)
    stack = [str(root)]
    while stack:
        base = stack.pop()
        try:
            with os.scandir(base) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError:
            continue
        names = {entry.name for entry in entries}
        if SITE_MARKER in names:  # a built site inside the cases folder holds copies of cases
            continue
        below = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if entry.name.endswith(".toml"):
                yield Path(base) / entry.name
            if is_dir:
                below.append(entry.path)
        stack.extend(reversed(below))


def load_cases(paths: Iterable[str | Path]) -> tuple[list[Case], list[CaseError]]:
    """Load every case; collect errors instead of stopping at the first (one broken file must
    not hide the others). Duplicate ids are errors too."""
    cases: list[Case] = []
    errors: list[CaseError] = []
    seen: dict[str, str] = {}
    for path in find_case_files(paths):
        try:
            case = load_case(path)
        except CaseError as exc:
            errors.append(exc)
            continue
        except Exception as exc:  # noqa: BLE001 -- one odd file must not stop the others
            errors.append(
                CaseError(str(path), None, f"cannot be loaded ({type(exc).__name__}: {exc})")
            )
            continue
        if case.id in seen:
            errors.append(
                CaseError(str(path), "id", f"duplicate id {case.id!r} (also in {seen[case.id]})")
            )
            continue
        seen[case.id] = str(path)
        cases.append(case)
    return cases, errors
