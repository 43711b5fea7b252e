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


class RequestRefusedError(BackendError):
    """A server refused one request for good (an HTTP 4xx other than the retried ones): its
    status and, from an OpenAI-format error body, its `code`, `param` and message."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        param: str | None = None,
        detail: str = "",
        api_error: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param
        self.detail = detail
        #: Whether the body was an OpenAI-format error (`{"error": {...}}`): the server's API
        #: answered, rather than a web server that does not know the path.
        self.api_error = api_error


class ContextOverflowError(RecursaError):
    """A prompt cannot fit the backend's context window even after shortening."""


class MissingDependencyError(UsageError):
    """An optional dependency is not installed; the message names the pip command."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed; run: pip install 'recursa[{extra}]'")
        self.package = package
        self.extra = extra
