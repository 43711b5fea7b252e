"""Isolated execution of untrusted (model-written) Python programs; see docs/SANDBOX.md."""

from recursa.sandbox.execution import Execution, Status
from recursa.sandbox.isolation import Isolation
from recursa.sandbox.runner import Sandbox, SandboxUnavailable, run_blocking
from recursa.sandbox.settings import SandboxConfig

__all__ = [
    "Execution",
    "Isolation",
    "Sandbox",
    "SandboxConfig",
    "SandboxUnavailable",
    "Status",
    "run_blocking",
]
