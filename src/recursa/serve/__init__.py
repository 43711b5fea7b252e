"""`recursa serve`: an OpenAI-compatible proxy that answers chat completions with RSA over an
upstream OpenAI-compatible server. See docs/SERVE.md.

`create_app` needs the `serve` extra (starlette); it is imported on first use so that the
settings, and `recursa serve --help`, work without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recursa.serve.settings import ServeSettings

if TYPE_CHECKING:
    from recursa.serve.app import create_app

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from recursa.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'recursa.serve' has no attribute {name!r}")
