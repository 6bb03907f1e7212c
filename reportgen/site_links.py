"""The project page's relative links, brought into the site so none of them breaks on Pages.

A relative link of the project file (``[site] links``, an author's ``url``) names a file or
folder relative to the project file's folder (``README.md``, ``docs/method.md``, ``cases/``);
the form written for a site built at ``site/_build`` (``../../README.md``) is understood too.
Each target is copied into the site under :data:`FILES_DIR`: a Markdown file is also rendered
as an HTML page (the link opens that), a folder gets an ``index.html`` listing its files. A
relative link whose target exists nowhere is an error naming the field; a link into the
built site itself (``#citation``, ``cases/<id>/index.html``) is kept."""

from __future__ import annotations

import dataclasses
import html
import os
import posixpath
import re
import shutil
from pathlib import Path

from .errors import CaseError
from .project import SiteInfo

#: where the linked project files land inside the site
FILES_DIR = "project-files"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
#: files bigger than this are not copied into a site (a link to one is an error)
MAX_FILE = 20 * 1000 * 1000


def _is_relative(url: str) -> bool:
    return bool(url) and not _SCHEME.match(url) and not url.startswith(("#", "/", "?"))


def _split(url: str) -> tuple[str, str]:
    """``path`` and the ``#fragment``/``?query`` tail of a relative URL."""
    match = re.search(r"[?#]", url)
    return (url[: match.start()], url[match.start() :]) if match else (url, "")


class _Bringer:
    def __init__(self, out_dir: Path, project_file: str | None) -> None:
        self.out = Path(out_dir)
        self.base = Path(project_file).resolve().parent if project_file else None
        self.copied: dict[Path, str] = {}  # source file -> site path (POSIX, from the root)
        self.markdown: list[tuple[Path, str]] = []
        self.folders: list[tuple[Path, str]] = []

    def _source(self, path: str) -> Path | None:
        candidates = []
        if self.base is not None:
            candidates.append(self.base / path)
        candidates.append(self.out / path)  # the form relative to the built site
        for candidate in candidates:
            if not candidate.exists():
                continue
            found = candidate.resolve()
            if self.base is not None and not found.is_relative_to(self.base):
                continue  # only the project's own files travel into the site
            if found.is_relative_to(self.out.resolve()):
                continue  # the site's own folders are not project files
            return found
        return None

    def _site_path(self, source: Path) -> str:
        root = self.base if self.base is not None else self.out.parent
        try:
            rel = source.relative_to(root.resolve()).as_posix()
        except ValueError:
            rel = source.name
        return f"{FILES_DIR}/{rel}" if rel != "." else FILES_DIR

    def bring(self, url: str, where: str, field: str) -> str:
        if url.startswith("/") and not url.startswith("//"):
            raise CaseError(
                where,
                field,
                f"{url!r} starts at the server's root: under a project site's /REPO/ path it "
                "is a broken link; give a path relative to the project file or a full URL",
            )
        if not _is_relative(url):
            return url
        path, tail = _split(url)
        inside = posixpath.normpath(path) if path else ""
        if inside and not inside.startswith("..") and (self.out / inside).is_file():
            return url  # a file of the built site itself
        source = self._source(path) if path else None
        if source is None:
            raise CaseError(
                where,
                field,
                f"{url!r} is a relative link to nothing in the project folder or the site (a "
                "broken link on Pages); give a path relative to the project file (it is "
                "copied into the site) or a full https:// URL",
            )
        site_path = self._site_path(source)
        if source.is_dir():
            self._copy_folder(source, site_path, where, field)
            return f"{site_path}/index.html{tail}"
        self._copy_file(source, site_path, where, field)
        if source.suffix.lower() == ".md":
            return f"{site_path[:-3]}.html{tail}"
        return f"{site_path}{tail}"

    def _copy_file(self, source: Path, site_path: str, where: str, field: str) -> None:
        if source in self.copied:
            return
        if source.stat().st_size > MAX_FILE:
            raise CaseError(where, field, f"{source.name} is over {MAX_FILE // 10**6} MB")
        target = self.out / site_path
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix.lower() == ".toml":
            # a case file's local model path (model = "/home/...") is not published
            text = source.read_text(encoding="utf-8", errors="replace")
            target.write_text(_LOCAL_PATH.sub(_path_name, text), encoding="utf-8")
        else:
            shutil.copyfile(source, target)
        self.copied[source] = site_path
        if source.suffix.lower() == ".md":
            self.markdown.append((source, site_path))

    def _copy_folder(self, source: Path, site_path: str, where: str, field: str) -> None:
        for root, dirs, files in os.walk(source):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel = Path(root).relative_to(source).as_posix()
            folder_path = site_path if rel == "." else f"{site_path}/{rel}"
            self.folders.append((Path(root), folder_path))
            for name in sorted(files):
                if not name.startswith("."):
                    self._copy_file(Path(root) / name, f"{folder_path}/{name}", where, field)

    def finish(self, title: str) -> None:
        """Render the Markdown pages and the folder listings (after every copy is known)."""
        for source, site_path in self.markdown:
            body = self._markdown(source, site_path)
            self._page(f"{site_path[:-3]}.html", source.name, body, title)
        for folder, site_path in self.folders:
            entries = []
            for entry in sorted(folder.iterdir()):
                if entry.name.startswith("."):
                    continue
                name = html.escape(entry.name)
                href = f"{entry.name}/index.html" if entry.is_dir() else entry.name
                entries.append(f'<li><a href="{html.escape(href)}">{name}</a></li>')
            body = f"<h1>{html.escape(folder.name)}/</h1>\n<ul>\n" + "\n".join(entries) + "\n</ul>"
            self._page(f"{site_path}/index.html", f"{folder.name}/", body, title)

    def _markdown(self, source: Path, site_path: str) -> str:
        """Markdown to HTML (raw HTML off); a relative link to a file that came along points at
        its copy, any other relative link or image becomes plain text."""
        from markdown_it import MarkdownIt

        md = MarkdownIt("commonmark", {"html": False})
        tokens = md.parse(source.read_text(encoding="utf-8", errors="replace"))
        here = posixpath.dirname(site_path)
        slugs: dict[str, int] = {}
        for index, token in enumerate(tokens):
            if token.type == "heading_open" and index + 1 < len(tokens):
                # GitHub's anchors (#section-name), so links into a section keep working
                slug = re.sub(r"[^\w\- ]", "", tokens[index + 1].content.lower()).replace(" ", "-")
                count = slugs.get(slug, 0)
                slugs[slug] = count + 1
                token.attrSet("id", f"{slug}-{count}" if count else slug)
        for token in tokens:
            if token.type != "inline" or not token.children:
                continue
            children, drop = [], 0
            for child in token.children:
                if child.type == "image":
                    children.append(_text(child.content or "[image]"))
                    continue
                if child.type == "link_open":
                    href = str(child.attrGet("href") or "")
                    if _is_relative(href):
                        path, tail = _split(href)
                        target = (source.parent / path).resolve() if path else None
                        if target is not None and target in self.copied:
                            dest = self.copied[target]
                            if dest.endswith(".md"):
                                dest = dest[:-3] + ".html"
                            child.attrSet("href", posixpath.relpath(dest, here or ".") + tail)
                        elif path:
                            drop += 1
                            continue
                if child.type == "link_close" and drop:
                    drop -= 1
                    continue
                children.append(child)
            token.children = children
        return md.renderer.render(tokens, md.options, {})

    def _page(self, site_path: str, heading: str, body: str, title: str) -> None:
        depth = site_path.count("/")
        up = "../" * depth
        page = (
            '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(heading)} \u2014 {html.escape(title)}</title>\n"
            f'<link rel="stylesheet" href="{up}assets/style.css">\n</head>\n<body>\n'
            f'<main class="wrap project-file">\n<p class="crumb"><a href="{up}index.html">'
            f"&larr; {html.escape(title)}</a></p>\n{body}\n</main>\n</body>\n</html>\n"
        )
        target = self.out / site_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")


#: an absolute path as a quoted TOML string
_LOCAL_PATH = re.compile(r"""(["'])((?:/|~/|[A-Za-z]:[\\/])[^"'\n]*)\1""")


def _path_name(match: re.Match[str]) -> str:
    return f"{match.group(1)}{Path(match.group(2).rstrip('/')).name}{match.group(1)}"


def _text(content: str):  # a markdown-it text token
    from markdown_it.token import Token

    token = Token("text", "", 0)
    token.content = content
    return token


def bring_links(site: SiteInfo, project_file: str | None, out_dir: Path) -> SiteInfo:
    """``site`` with every relative link pointing at a copy inside ``out_dir`` (see the module
    docstring); raises :class:`CaseError` naming the field of a link that cannot be kept."""
    where = project_file or "reportgen.toml"
    bringer = _Bringer(out_dir, project_file)
    links = tuple(
        dataclasses.replace(link, url=bringer.bring(link.url, where, f"site.links[{i}].url"))
        for i, link in enumerate(site.links)
    )
    authors = tuple(
        dataclasses.replace(a, url=bringer.bring(a.url, where, f"site.authors[{i}].url"))
        for i, a in enumerate(site.authors)
    )
    abstract = _ABSTRACT_LINK.sub(
        lambda m: m.group(1) + bringer.bring(m.group(2), where, "site.abstract") + m.group(3),
        site.abstract,
    )
    bringer.finish(site.title or "Project page")
    return dataclasses.replace(site, links=links, authors=authors, abstract=abstract)


#: a Markdown link's destination in the abstract: inline ``](url)`` or a reference ``[x]: url``
_ABSTRACT_LINK = re.compile(r"(\]\(\s*<?|^ {0,3}\[[^\]\n]+\]:\s*<?)([^)\s>]+)(>?)", re.MULTILINE)


def featured_in_build(site: SiteInfo, where: str | None, case_ids: set[str]) -> SiteInfo:
    """``site`` without the featured ids that name no case of this build (a build of a subset
    of the cases), with one warning line naming them; the build goes on."""
    from .errors import warn

    absent = [case_id for case_id in site.featured if case_id not in case_ids]
    if not absent:
        return site
    names = ", ".join(repr(a) for a in absent)
    warn(
        f"{where or 'reportgen.toml'}: site.featured: {names} not in this build; left out of "
        "the featured cases"
    )
    return dataclasses.replace(site, featured=tuple(f for f in site.featured if f in case_ids))
