"""Safe names: a case id becomes a folder and file names, so anything that could leave the
output folder is refused before a renderer writes."""

from __future__ import annotations

import re

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a case id or case file name


class RenderError(ValueError):
    """The result cannot be rendered safely (e.g. a case id that is not a plain file name)."""


def check_case_id(case_id: str) -> str:
    """Case ids become directory and file names; refuse anything that could leave out_dir."""
    if not SAFE_NAME.fullmatch(case_id) or ".." in case_id:
        raise RenderError(f"case id {case_id!r} is not a safe file name ([A-Za-z0-9._-]+)")
    return case_id
