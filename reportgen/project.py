"""The optional project file (``reportgen.toml`` beside ``cases/``): one reader for all of it.

A project file holds what is about a whole collection rather than one case:

```toml
[site]                      # the index as a project page (title, authors, abstract, links, ...)
title = "..."

[models.smollm2-135m-instruct]   # runtime settings per model (device, dtype, quantisation)
device = "cpu"
dtype = "float32"

[figures]                   # the paper figures: your venue's widths, font size, font, colours
column_width = "3.25in"     # a number is in bp (1/72 in); or a string with in, cm, mm, pt, bp
text_width = "6.75in"
font_size = 9               # pt at the printed size (7-12); tick labels are 1 pt smaller
font = "lmodern"            # lmodern, lmodern-sans, times, palatino, charter, helvetica
colormap = "RdBu"           # diverging, centred on zero: RdBu (the dossier's), PuOr, BrBG, PiYG
```

This module parses and validates the file into plain dataclasses; every error names the file,
the field and the problem (``CaseError``). The ``[site]`` and ``[models.*]`` tables are each
parsed by one function here, so the runner and the site read the same codec."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CaseError

PROJECT_FILE = "reportgen.toml"
DEVICES_HELP = "auto, cpu, cuda or cuda:N"
DTYPES = ("float32", "bfloat16", "float16")
QUANTIZATIONS = ("none", "4bit")


@dataclass(frozen=True)
class Author:
    name: str
    affiliation: str = ""
    url: str = ""


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class SiteInfo:
    """What the index shows as a project page. Text fields are plain text (escaped when
    rendered); ``abstract`` is Markdown, rendered with raw HTML disabled."""

    title: str = ""
    subtitle: str = ""
    authors: tuple[Author, ...] = ()
    abstract: str = ""
    links: tuple[Link, ...] = ()
    bibtex: str = ""
    featured: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelSettings:
    """Runtime settings for one model; ``None`` means "not set here" (the CLI or default)."""

    device: str | None = None
    dtype: str | None = None
    quantization: str | None = None


#: font name -> (LaTeX preamble lines, a fragment of the PDF font names it embeds, a TeX font
#: metric file it needs). Latin Modern comes with the lmodern package; the others need the
#: PostScript fonts of texlive-fonts-recommended.
FIGURE_FONTS: dict[str, tuple[str, str, str]] = {
    "lmodern": (r"\usepackage[T1]{fontenc}\usepackage{lmodern}", "LMRoman", "ec-lmr10.tfm"),
    "lmodern-sans": (
        r"\usepackage[T1]{fontenc}\usepackage{lmodern}\renewcommand{\familydefault}{\sfdefault}",
        "LMSans",
        "ec-lmss10.tfm",
    ),
    "times": (
        r"\usepackage[T1]{fontenc}\usepackage{mathptmx}\usepackage[scaled=0.92]{helvet}"
        r"\usepackage{courier}",
        "Nimbus",
        "ptmr8t.tfm",
    ),
    "palatino": (
        r"\usepackage[T1]{fontenc}\usepackage{mathpazo}\usepackage{courier}",
        "Palatino",
        "pplr8t.tfm",
    ),
    "charter": (
        r"\usepackage[T1]{fontenc}\usepackage{charter}\usepackage{courier}",
        "Charter",
        "bchr8t.tfm",
    ),
    "helvetica": (
        r"\usepackage[T1]{fontenc}\usepackage[scaled=0.92]{helvet}\usepackage{courier}"
        r"\renewcommand{\familydefault}{\sfdefault}",
        "Nimbus",
        "phvr8t.tfm",
    ),
}
#: colour map name -> (RGB of positive relevance, RGB of negative), ColorBrewer's darkest ends
FIGURE_COLORMAPS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "RdBu": ((178, 24, 43), (33, 102, 172)),
    "PuOr": ((179, 88, 6), (84, 39, 136)),
    "BrBG": ((140, 81, 10), (1, 102, 94)),
    "PiYG": ((197, 27, 125), (77, 146, 33)),
}
_LENGTH_UNITS = {"in": 72.0, "bp": 1.0, "pt": 72.0 / 72.27, "cm": 72.0 / 2.54, "mm": 72.0 / 25.4}


@dataclass(frozen=True)
class FigureSettings:
    """The ``[figures]`` table: widths in bp (PostScript points, 72 per inch), the font size in
    pt at the printed size, the font family and the diverging colour map of the paper figures."""

    column_width: float = 234.0  # 3.25 in
    text_width: float = 486.0  # 6.75 in
    font_size: float = 9.0
    font: str = "lmodern"
    colormap: str = "RdBu"


@dataclass(frozen=True)
class Project:
    path: str | None = None
    site: SiteInfo | None = None
    models: dict[str, ModelSettings] = field(default_factory=dict)
    figures: FigureSettings = field(default_factory=FigureSettings)

    def model_settings(
        self, model: str, case_path: str | None = None
    ) -> tuple[str, ModelSettings] | None:
        """The ``[models."KEY"]`` table (KEY as written, its settings) that applies to
        ``model``: a spec as a case holds it (resolved) or as given on the command line
        (relative to the current folder). A KEY that is a path means a path next to this
        file, as a model path in a case means one next to the case; failing that, KEY is
        read as the case file ``case_path`` would read it (``[models."../models/tiny"]`` applies
        to a case that writes ``model = "../models/tiny"``). Paths match after symbolic links
        are resolved."""
        if not self.models:
            return None
        from .cases import resolve_model_spec

        wanted = resolve_model_spec(model, str(Path.cwd() / "-"))
        bases = [self.path or str(Path.cwd() / PROJECT_FILE)]
        bases += [case_path] if case_path else []
        for base in bases:
            for key, settings in self.models.items():
                if resolve_model_spec(key, base) == wanted:
                    return key, settings
        return None

    def unused_model_keys(self, models: dict[str, str]) -> list[str]:
        """Keys of ``[models]`` that name no model of ``models`` (spec -> the case file naming
        it) and no embedded model or local path: most likely misspelled, so settings that
        would silently not apply."""
        from .cases import is_path_spec, resolve_model_spec
        from .models import EMBEDDED_MODELS

        used = {
            found[0]
            for spec, case_path in models.items()
            if (found := self.model_settings(spec, case_path)) is not None
        }
        base = self.path or str(Path.cwd() / PROJECT_FILE)
        unused = []
        for key in self.models:
            hub_id = not is_path_spec(key) and key.count("/") == 1  # cannot be checked here
            if key in used or key in EMBEDDED_MODELS or hub_id:
                continue
            resolved = resolve_model_spec(key, base)
            if resolved != key and Path(resolved).exists():
                continue
            unused.append(key)
        return unused


_TOP_FIELDS = {"site", "models", "figures"}
_FIGURE_FIELDS = {"column_width", "text_width", "font_size", "font", "colormap"}
_SITE_FIELDS = {"title", "subtitle", "authors", "abstract", "links", "bibtex", "featured"}
_AUTHOR_FIELDS = {"name", "affiliation", "url"}
_LINK_FIELDS = {"label", "url"}
_MODEL_FIELDS = {"device", "dtype", "quantization"}


def find_project_file(paths: list[Path] | tuple[Path, ...] = ()) -> Path | None:
    """The project file for a build of ``paths``: ``reportgen.toml`` in the folder of the first
    path (or the folder itself) or in its parent (the folder holding ``cases/``), the first that
    exists. Never the current directory: cases from elsewhere must not get this folder's page."""
    candidates: list[Path] = []
    for path in paths[:1]:
        folder = path if path.is_dir() else path.parent
        candidates += [folder / PROJECT_FILE, folder.parent / PROJECT_FILE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def load_project(path: Path | None) -> Project:
    """Parse a project file; ``None`` (no file) gives the empty project."""
    if path is None:
        return Project()
    where = str(path)
    from .files import read_regular

    try:
        data = tomllib.loads(read_regular(path).decode("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError(where, None, f"cannot read the project file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise CaseError(where, None, f"not valid TOML ({exc})") from None
    _check_fields(where, "", data, _TOP_FIELDS)
    site = parse_site(where, data["site"]) if "site" in data else None
    models = parse_models(where, data.get("models", {}))
    figures = parse_figures(where, data["figures"]) if "figures" in data else FigureSettings()
    return Project(path=where, site=site, models=models, figures=figures)


def parse_figures(where: str, table: Any) -> FigureSettings:
    """The ``[figures]`` table; every value checked, with the file and field in the error."""
    if not isinstance(table, dict):
        raise CaseError(where, "figures", "must be a table")
    _check_fields(where, "figures.", table, _FIGURE_FIELDS)
    default = FigureSettings()
    widths = {
        name: _length(where, f"figures.{name}", table[name])
        if name in table
        else getattr(default, name)
        for name in ("column_width", "text_width")
    }
    size = table.get("font_size", default.font_size)
    if isinstance(size, bool) or not isinstance(size, int | float) or not 7 <= size <= 12:
        raise CaseError(where, "figures.font_size", f"{size!r} is not a size in pt from 7 to 12")
    font = table.get("font", default.font)
    if font not in FIGURE_FONTS:
        raise CaseError(where, "figures.font", f"{font!r} is not one of {', '.join(FIGURE_FONTS)}")
    colormap = table.get("colormap", default.colormap)
    if colormap not in FIGURE_COLORMAPS:
        raise CaseError(
            where, "figures.colormap", f"{colormap!r} is not one of {', '.join(FIGURE_COLORMAPS)}"
        )
    return FigureSettings(font_size=float(size), font=font, colormap=colormap, **widths)


def _length(where: str, name: str, value: Any) -> float:
    """A width in bp: a number (bp) or a string such as "3.25in", "8.25cm", "234pt"; 1-20 in."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise CaseError(where, name, 'must be a number (bp) or a length such as "3.25in"')
    if isinstance(value, str):
        text = value.strip().lower()
        unit = text[-2:]
        try:
            number = float(text[:-2])
        except ValueError:
            number = None
        if unit not in _LENGTH_UNITS or number is None:
            raise CaseError(
                where, name, f"{value!r} is not a length (a number with in, cm, mm, pt or bp)"
            )
        value = number * _LENGTH_UNITS[unit]
    if not 72.0 <= float(value) <= 1440.0:
        raise CaseError(where, name, f"{value!r} bp is not a width from 1 in to 20 in")
    return round(float(value), 3)


def parse_site(where: str, table: Any) -> SiteInfo:
    if not isinstance(table, dict):
        raise CaseError(where, "site", "must be a table")
    _check_fields(where, "site.", table, _SITE_FIELDS)
    text = {
        name: _text(where, f"site.{name}", table.get(name, ""))
        for name in ("title", "subtitle", "abstract", "bibtex")
    }
    authors = []
    for index, entry in enumerate(_list(where, "site.authors", table.get("authors", []))):
        name = f"site.authors[{index}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict):
            raise CaseError(where, name, "must be a name or a table {name, affiliation, url}")
        _check_fields(where, f"{name}.", entry, _AUTHOR_FIELDS)
        if not entry.get("name"):
            raise CaseError(where, f"{name}.name", "is required")
        authors.append(
            Author(
                name=_text(where, f"{name}.name", entry["name"]),
                affiliation=_text(where, f"{name}.affiliation", entry.get("affiliation", "")),
                url=_url(where, f"{name}.url", entry.get("url", "")),
            )
        )
    links = []
    for index, entry in enumerate(_list(where, "site.links", table.get("links", []))):
        name = f"site.links[{index}]"
        if not isinstance(entry, dict):
            raise CaseError(where, name, "must be a table {label, url}")
        _check_fields(where, f"{name}.", entry, _LINK_FIELDS)
        for key in ("label", "url"):
            if not entry.get(key):
                raise CaseError(where, f"{name}.{key}", "is required")
        links.append(
            Link(
                label=_text(where, f"{name}.label", entry["label"]),
                url=_url(where, f"{name}.url", entry["url"]),
            )
        )
    featured = tuple(
        _text(where, f"site.featured[{index}]", value)
        for index, value in enumerate(_list(where, "site.featured", table.get("featured", [])))
    )
    return SiteInfo(authors=tuple(authors), links=tuple(links), featured=featured, **text)


def parse_models(where: str, table: Any) -> dict[str, ModelSettings]:
    if not isinstance(table, dict):
        raise CaseError(where, "models", "must be a table of [models.NAME] tables")
    models = {}
    for model, settings in table.items():
        name = f"models.{model}"
        if not isinstance(settings, dict):
            raise CaseError(where, name, "must be a table (device, dtype, quantization)")
        _check_fields(where, f"{name}.", settings, _MODEL_FIELDS)
        device = settings.get("device")
        if device is not None:
            device = _text(where, f"{name}.device", device)
            if not is_device_spec(device):
                raise CaseError(where, f"{name}.device", f"{device!r} is not one of {DEVICES_HELP}")
        dtype = settings.get("dtype")
        if dtype is not None and dtype not in DTYPES:
            raise CaseError(where, f"{name}.dtype", f"{dtype!r} is not one of {', '.join(DTYPES)}")
        quantization = settings.get("quantization")
        if quantization is not None and quantization not in QUANTIZATIONS:
            raise CaseError(
                where,
                f"{name}.quantization",
                f"{quantization!r} is not one of {', '.join(QUANTIZATIONS)}",
            )
        models[model] = ModelSettings(device=device, dtype=dtype, quantization=quantization)
    return models


def is_device_spec(text: str) -> bool:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (N a non-negative integer)."""
    if text in ("auto", "cpu", "cuda"):
        return True
    head, _, index = text.partition(":")
    return head == "cuda" and index.isdigit()


def _check_fields(where: str, prefix: str, table: dict, known: set[str]) -> None:
    for key in table:
        if key not in known:
            raise CaseError(
                where, f"{prefix}{key}", f"unknown field (known: {', '.join(sorted(known))})"
            )


def _text(where: str, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise CaseError(where, name, f"must be a string, not {type(value).__name__}")
    return value


def _list(where: str, name: str, value: Any) -> list:
    if not isinstance(value, list):
        raise CaseError(where, name, f"must be a list, not {type(value).__name__}")
    return value


def _url(where: str, name: str, value: Any) -> str:
    """Only http(s), mailto and relative links: a ``javascript:`` URL in a project file must not
    become a clickable script on the project page."""
    url = _text(where, name, value).strip()
    if not url:
        return ""
    scheme = url.split(":", 1)[0].lower() if ":" in url.split("/", 1)[0] else ""
    if scheme and scheme not in ("http", "https", "mailto"):
        raise CaseError(where, name, f"links must be http(s), mailto or relative, not {scheme}:")
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise CaseError(where, name, "contains control characters")
    return url
