"""Exceptions that name the file and the problem, so a user can act on them."""

from __future__ import annotations

from pathlib import Path


class LineGuardError(Exception):
    """Base class of every error LineGuard raises on purpose."""


class DataError(LineGuardError, ValueError):
    """A data file or folder cannot be used; the message names it and says why."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class BackboneUnavailable(LineGuardError, RuntimeError):
    """A backbone's weights cannot be loaded (package missing, hub unreachable...)."""


class ModelFileError(LineGuardError, ValueError):
    """A saved model is missing, damaged or from an incompatible version."""


class TriggerRefused(LineGuardError, ValueError):
    """A trigger the station cannot turn into exactly one part: its part ID breaks the rule, or
    the active recipe reads no source that takes triggers. ``kind``: "part_id" or "source"."""

    def __init__(self, why: str, kind: str) -> None:
        self.kind = kind
        super().__init__(why)


class JobRefused(LineGuardError, ValueError):
    """A job change (recipe by number, from a PLC) the station does not make; ``code`` is the
    ``ErrorCode`` the PLC sees (JOB_UNKNOWN, JOB_REFUSED)."""

    def __init__(self, why: str, code: int) -> None:
        self.code = code
        super().__init__(why)
