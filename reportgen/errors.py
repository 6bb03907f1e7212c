"""Errors the CLI turns into one-line messages and a non-zero exit."""

from __future__ import annotations


class ReportgenError(Exception):
    """An expected failure caused by the user's input or environment (not a bug)."""


class CaseError(ReportgenError):
    """A case file is malformed: the message names the file, the field and the problem."""

    def __init__(self, path: str, field: str | None, problem: str) -> None:
        self.path, self.field, self.problem = path, field, problem
        where = f"{path}: field '{field}'" if field else str(path)
        super().__init__(f"{where}: {problem}")


class ModelLoadError(ReportgenError):
    """The model could not be found, fetched or loaded."""


class TokenError(ReportgenError):
    """A target/contrast cannot be turned into a token of the model's vocabulary."""


def warn(message: str) -> None:
    """A one-line warning (e.g. a damaged cache entry that is recomputed). The CLI prints it as
    ``warning: ...`` on stderr; as a library, Python's logging shows it or the caller's
    handler takes it."""
    import logging

    logging.getLogger("reportgen").warning(message)
