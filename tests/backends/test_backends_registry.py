"""The backend registry: lazy imports, clear messages for missing extras and bad names."""

from __future__ import annotations

import sys

import pytest

from recursa.backends import create_backend
from recursa.backends.openai import parse_retry_after
from recursa.config import BackendConfig
from recursa.errors import UsageError


def test_missing_optional_dependency_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(UsageError, match=r"pip install 'recursa\[llamacpp\]'"):
        create_backend(BackendConfig(backend="llamacpp"))


def test_mock_backend_is_registered_like_the_others() -> None:
    backend = create_backend(BackendConfig(backend="mock", mock_latency=0.5))
    assert type(backend).__name__ == "MockBackend"
    assert backend.latency == 0.5  # type: ignore[attr-defined]


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
