"""Backends by name, imported lazily so optional dependencies load only when chosen."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from recursa.backends.base import Backend, Completion, GenerationRequest, RetryableError
from recursa.backends.dispatch import Dispatcher, Usage
from recursa.errors import UsageError

if TYPE_CHECKING:
    from recursa.config import BackendConfig

__all__ = [
    "BACKENDS",
    "Backend",
    "Completion",
    "Dispatcher",
    "GenerationRequest",
    "RetryableError",
    "Usage",
    "create_backend",
]

#: name -> "module:factory"; each factory takes a BackendConfig and returns a Backend.
BACKENDS: dict[str, str] = {
    "llamacpp": "recursa.backends.llamacpp:from_config",
    "openai": "recursa.backends.openai:from_config",
    "mock": "recursa.backends.mock:from_config",
    "vllm": "recursa.backends.vllm:from_config",
    "ray": "recursa.backends.ray:from_config",
}


def create_backend(config: BackendConfig) -> Backend:
    """Build the backend a config names (a missing extra names its pip command)."""
    target = BACKENDS.get(config.backend)
    if target is None:
        raise UsageError(f"unknown backend {config.backend!r}; choose one of {sorted(BACKENDS)}")
    module_name, factory = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UsageError(f"backend {config.backend!r} is not available in this version") from exc
    backend: Backend = getattr(module, factory)(config)
    return backend
