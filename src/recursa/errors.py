"""Errors a user can cause or meet; each carries one clear sentence and an exit code."""

from __future__ import annotations


class RecursaError(Exception):
    """Base class: the message is one sentence meant for the user."""

    exit_code = 1


class UsageError(RecursaError):
    """Bad settings or input: the user must change the command (exit code 2)."""

    exit_code = 2


class BackendError(RecursaError):
    """The model backend failed for good (after retries, or with a fatal answer)."""


class ContextOverflowError(RecursaError):
    """A prompt cannot fit the backend's context window even after shortening."""


class MissingDependencyError(UsageError):
    """An optional dependency is not installed; the message names the pip command."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed; run: pip install 'recursa[{extra}]'")
        self.package = package
        self.extra = extra
