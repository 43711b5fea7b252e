"""Backends by name: the `BACKENDS` registry (plugins: the `recursa.backends` entry points).

Each entry is a `BackendSpec` (a factory taking a `BackendConfig` and returning a `Backend`,
plus the model of the backend's own options), given as "module:attribute" so optional
dependencies load only when the backend is chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recursa.backends.base import (
    Backend,
    BackendOptions,
    BackendSpec,
    Completion,
    GenerationRequest,
    RetryableError,
)
from recursa.backends.dispatch import Dispatcher, Usage
from recursa.errors import UsageError
from recursa.registry import Registry

if TYPE_CHECKING:
    from recursa.config import BackendConfig

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendOptions",
    "BackendSpec",
    "Completion",
    "Dispatcher",
    "GenerationRequest",
    "RetryableError",
    "Usage",
    "backend_options",
    "create_backend",
]


def _spec(name: str, obj: object) -> BackendSpec:
    if isinstance(obj, BackendSpec):
        return obj
    if callable(obj):  # a plugin's bare factory
        return BackendSpec(obj)
    raise TypeError(f"backend {name!r} must be a factory taking a BackendConfig, not {obj!r}")


BACKENDS: Registry[BackendSpec] = Registry("backend", "recursa.backends", check=_spec)
BACKENDS.add("llamacpp", "recursa.backends.llamacpp:SPEC")
BACKENDS.add("openai", "recursa.backends.openai:SPEC")
BACKENDS.add("mock", "recursa.backends.mock:SPEC")
BACKENDS.add("vllm", "recursa.backends.vllm:SPEC")
BACKENDS.add("ray", "recursa.backends.ray:SPEC")


def backend_options() -> dict[str, type[BackendOptions]]:
    """Each registered backend's options model, by backend name (backends without options,
    and those that cannot be imported here, are left out)."""
    found: dict[str, type[BackendOptions]] = {}
    for name in BACKENDS.names():
        try:
            spec = BACKENDS.get(name)
        except UsageError:
            continue
        if spec.options is not None:
            found[name] = spec.options
    return found


def create_backend(config: BackendConfig) -> Backend:
    """Build the backend a config names (a missing extra names its pip command)."""
    backend = BACKENDS.get(config.backend)(config)
    if not isinstance(backend, Backend):
        raise UsageError(
            f"backend {config.backend!r} returned a {type(backend).__name__}, not a recursa.Backend"
        )
    return backend
