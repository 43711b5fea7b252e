"""One engine replica: the body of a Ray actor that runs an ordinary recursa backend.

The driver (`recursa.backends.ray`) turns this class into an async Ray actor. It builds its
backend from the driver's BackendConfig with `backend` set to the chosen engine, so every
engine option passes through unchanged. Failures travel back as plain data (`Reply`), never as
pickled exception objects, so the driver re-raises them as its own error types: a transient
fault stays retryable, a usage error keeps its exit code. A backend whose engine died
(`BackendDeadError`, e.g. vLLM's EngineDeadError) cannot recover in this process, so the
replica exits: Ray restarts it (`replica_restarts`) and the driver retries elsewhere.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from recursa.backends.base import (
    Backend,
    BackendDeadError,
    Completion,
    GenerationRequest,
    RetryableError,
)
from recursa.errors import RecursaError, UsageError

if TYPE_CHECKING:
    from recursa.config import BackendConfig

ErrorKind = Literal["retry", "usage", "fatal"]

#: Exit status of a replica whose engine died (Ray restarts a process that exits on its own,
#: unlike one that calls ray.actor.exit_actor()).
ENGINE_DEAD_EXIT = 75


def exit_for_restart(message: str) -> None:
    """End this process at once, so Ray restarts the actor and the driver's in-flight
    requests fail over (RayActorError -> RetryableError -> another replica)."""
    print(f"recursa: Ray replica exits for a restart: {message}", file=sys.stderr, flush=True)
    os._exit(ENGINE_DEAD_EXIT)


@dataclass(frozen=True)
class Reply:
    """What a replica answers for one request: a completion, or an error as data."""

    completion: Completion | None = None
    error: str = ""
    kind: ErrorKind = "fatal"
    retry_after: float | None = None


@dataclass(frozen=True)
class ReplicaInfo:
    """What a replica tells the driver once it has started (or failed to start)."""

    description: str
    default_concurrency: int
    context_tokens: int | None
    host: str
    pid: int
    error: str = ""
    usage_error: bool = False


class Replica:
    """Runs one backend inside a Ray actor process; every method is safe to call concurrently."""

    def __init__(self, config: BackendConfig) -> None:
        # Imported here: the actor process imports recursa afresh, and the registry is lazy.
        from recursa.backends import create_backend

        self._backend: Backend | None = None
        self._error = ""
        self._usage_error = False
        self.served = 0
        try:
            self._backend = create_backend(config)
        except RecursaError as exc:  # reported by info(), so the driver shows one sentence
            self._error = str(exc)
            self._usage_error = isinstance(exc, UsageError)

    async def info(self) -> ReplicaInfo:
        backend = self._backend
        if backend is not None and not self._error:
            try:  # an openai engine learns its server's model and context window here
                await backend.start()
            except (RecursaError, RetryableError) as exc:
                self._error = str(exc)
                self._usage_error = isinstance(exc, UsageError)
        return ReplicaInfo(
            description=backend.description if backend else "",
            default_concurrency=backend.default_concurrency if backend else 1,
            context_tokens=backend.context_tokens if backend else None,
            host=socket.gethostname(),
            pid=os.getpid(),
            error=self._error,
            usage_error=self._usage_error,
        )

    async def ping(self) -> bool:
        """True once the backend is ready (a restarted replica answers after it rebuilt it)."""
        return self._backend is not None

    async def generate(self, request: GenerationRequest) -> Reply:
        if self._backend is None:
            return Reply(error=self._error or "the replica has no backend", kind="fatal")
        try:
            completion = await self._backend.generate(request)
        except BackendDeadError as exc:  # a dead engine never serves again in this process
            exit_for_restart(str(exc))
            raise  # not reached: exit_for_restart does not return
        except RetryableError as exc:
            return Reply(error=str(exc), kind="retry", retry_after=exc.retry_after)
        except RecursaError as exc:
            return Reply(error=str(exc), kind="usage" if isinstance(exc, UsageError) else "fatal")
        self.served += 1
        return Reply(completion=completion)

    async def stats(self) -> int:
        """Requests this process has answered since it (re)started."""
        return self.served

    async def close(self) -> None:
        if self._backend is not None:
            await self._backend.aclose()
