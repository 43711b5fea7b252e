"""Ray: R engine replicas as Ray actors behind one backend, for runs past one machine.

The driver keeps everything that decides a run's result (engine, dispatcher, journal); the
replicas only generate. Each replica is an async Ray actor (`ray_replica.Replica`) that builds
an ordinary backend from the same BackendConfig with `backend=engine`. Each request goes to
the least-loaded replica that is up (fewest requests in flight; ties in round-robin order).

When a replica dies, Ray restarts it (`replica_restarts`). The requests it had in flight fail
on the driver with `RetryableError`; the shared Dispatcher retries them, and the router sends
them to another replica while the dead one is marked down (until it answers a ping again). A
completion exists for the driver only once it has arrived, so nothing is recorded twice and
nothing is lost. Prompts are fitted on the driver with the character estimate of
`Backend.count_tokens`, as for the openai backend.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import socket
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from recursa.backends import BACKENDS
from recursa.backends.base import (
    Backend,
    BackendOptions,
    BackendSpec,
    Completion,
    GenerationRequest,
    RetryableError,
    current_problem,
)
from recursa.backends.ray_replica import Replica, ReplicaInfo, Reply
from recursa.errors import BackendError, MissingDependencyError, RecursaError, UsageError

if TYPE_CHECKING:
    from recursa.config import BackendConfig

log = logging.getLogger("recursa")

#: How long aclose() waits for replicas to release their backends before killing them.
CLOSE_WAIT_S = 30.0
#: Longest pause between pings to a replica that is down.
PROBE_MAX_DELAY_S = 5.0


def import_ray() -> Any:
    """The ray module, or the pip command that installs it."""
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise MissingDependencyError("ray", "ray") from exc


@dataclass
class Slot:
    """The driver's view of one replica."""

    index: int
    actor: Any = None
    in_flight: int = 0
    served: int = 0
    failures: int = 0
    up: bool = True


class Router:
    """Least-loaded choice among replicas that are up; ties go round-robin. A request that
    failed on a replica avoids that replica while another one is up."""

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots
        self._cursor = 0
        self._avoid: dict[str, int] = {}

    def choose(self, key: str = "") -> Slot | None:
        """The replica for the next request, or None when every replica is down."""
        up = [s for s in self.slots if s.up]
        avoid = self._avoid.get(key) if key else None
        if avoid is not None and len(up) > 1:
            up = [s for s in up if s.index != avoid]
        if not up:
            return None
        low = min(s.in_flight for s in up)
        n = len(self.slots)
        best = min(
            (s for s in up if s.in_flight == low), key=lambda s: (s.index - self._cursor) % n
        )
        self._cursor = (best.index + 1) % n
        return best

    def any_up(self) -> bool:
        return any(s.up for s in self.slots)

    def failed(self, slot: Slot, key: str) -> None:
        slot.failures += 1
        if key:
            self._avoid[key] = slot.index

    def succeeded(self, slot: Slot, key: str) -> None:
        slot.served += 1
        if key:
            self._avoid.pop(key, None)


class RayOptions(BackendOptions):
    """The ray backend's own settings: engine replicas as Ray actors (docs/DISTRIBUTED.md)."""

    ray_address: str | None = Field(
        None,
        description="Cluster to join ('auto', 'HOST:6379', 'ray://HOST:10001') or 'local' "
        "for a new local instance (default: RAY_ADDRESS, else local).",
        json_schema_extra={"resumable": True},
    )
    replicas: int = Field(
        1,
        ge=1,
        description="Engine replicas, one Ray actor each.",
        json_schema_extra={"resumable": True},
    )
    engine: str = Field(
        "vllm",
        description="The backend every replica runs (any registered backend but ray).",
        json_schema_extra={"registry": "backends"},
    )
    replica_gpus: float | None = Field(
        None,
        ge=0,
        description="GPUs per replica (default: vllm's tensor x data parallel size, else 0).",
        json_schema_extra={"resumable": True},
    )
    replica_cpus: float = Field(
        1.0, ge=0, description="CPUs reserved per replica.", json_schema_extra={"resumable": True}
    )
    replica_restarts: int = Field(
        3,
        ge=-1,
        description="Times Ray restarts a dead replica (-1: without limit).",
        json_schema_extra={"resumable": True},
    )

    @field_validator("engine")
    @classmethod
    def _an_engine(cls, name: str) -> str:
        if name == "ray":
            raise ValueError("a Ray replica cannot run the ray backend itself")
        return BACKENDS.validate(name)


def replica_gpus(config: BackendConfig) -> float:
    """GPUs each replica reserves: the setting, else what one vLLM engine spans (tensor x data
    parallel size), else 0."""
    options = config.options_for(RayOptions)
    if options.replica_gpus is not None:
        return options.replica_gpus
    if options.engine == "vllm":
        from recursa.backends.vllm import VllmOptions

        vllm = config.options_for(VllmOptions)
        return float((vllm.tensor_parallel_size or 1) * (vllm.data_parallel_size or 1))
    return 0.0


def _last_line(exc: BaseException) -> str:
    """The line that names the error (Ray puts the remote traceback before it)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast when a 'HOST:PORT' or 'ray://HOST:PORT' address does not accept connections
    (ray.init itself keeps retrying an unreachable head node for minutes)."""
    hostport = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return  # 'auto' and other forms: Ray resolves them and fails quickly itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RecursaError(f"could not reach the Ray cluster at {address}: {reason}") from exc


def _connect(ray: Any, address: str | None) -> bool:
    """Join (or start) a Ray instance; True when this call started it, so we shut it down."""
    if ray.is_initialized():
        return False
    where = address or os.environ.get("RAY_ADDRESS")
    if where and where not in ("local", "auto"):
        check_reachable(where)
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": True}
    starts_local = address == "local" or (address is None and not os.environ.get("RAY_ADDRESS"))
    if starts_local:
        kwargs["include_dashboard"] = False
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        if where == "auto":
            reason = "no Ray instance runs on this machine (start one: ray start --head)"
        else:
            reason = _last_line(exc)
        raise RecursaError(
            f"could not reach the Ray cluster at {where or 'local'}: {reason}"
        ) from exc
    return True


def _check_resources(ray: Any, replicas: int, gpus: float, cpus: float) -> None:
    total = ray.cluster_resources()
    for name, each in (("GPU", gpus), ("CPU", cpus)):
        have = float(total.get(name, 0.0))
        if each * replicas > have + 1e-9:
            raise UsageError(
                f"{replicas} replicas with {each:g} {name}s each need {each * replicas:g} "
                f"{name}s, but the Ray cluster has {have:g}; use fewer --replicas or a smaller "
                f"--replica-{name.lower()}s"
            )


class RayBackend(Backend):
    """R replicas of one engine as Ray actors; least-loaded routing; restarts and re-routes."""

    def __init__(self, config: BackendConfig) -> None:
        self._ray = import_ray()
        options = config.options_for(RayOptions)
        self._owns_ray = _connect(self._ray, options.ray_address)
        self._probes: dict[int, asyncio.Task[None]] = {}
        self._broken: set[int] = set()
        self._closed = False
        self.router = Router([Slot(i) for i in range(options.replicas)])
        try:
            self.infos = self._start(config)
        except BaseException:
            self._kill_all()
            raise
        self.default_concurrency = sum(max(1, i.default_concurrency) for i in self.infos)
        windows = [i.context_tokens for i in self.infos if i.context_tokens]
        self._context_tokens = min(windows) if windows else None
        self.engine = options.engine
        for slot, info in zip(self.router.slots, self.infos, strict=True):
            log.info(
                "Ray replica %d: %s on %s (pid %d)",
                slot.index,
                info.description,
                info.host,
                info.pid,
            )

    # -- start-up ---------------------------------------------------------------------------
    def _start(self, config: BackendConfig) -> list[ReplicaInfo]:
        ray = self._ray
        options = config.options_for(RayOptions)
        gpus = replica_gpus(config)
        _check_resources(ray, options.replicas, gpus, options.replica_cpus)
        actor_class = ray.remote(Replica).options(
            num_cpus=options.replica_cpus,
            num_gpus=gpus,
            max_restarts=options.replica_restarts,
            max_task_retries=0,  # the Dispatcher retries, on another replica
            max_concurrency=1000,
            scheduling_strategy="SPREAD",
        )
        inner = config.model_copy(update={"backend": options.engine})
        for slot in self.router.slots:
            slot.actor = actor_class.remote(inner)
        refs = [slot.actor.info.remote() for slot in self.router.slots]
        try:
            infos: list[ReplicaInfo] = ray.get(refs, timeout=config.timeout)
        except ray.exceptions.GetTimeoutError as exc:
            raise RecursaError(
                f"the {options.replicas} Ray replicas did not start within {config.timeout:g} s "
                "(raise --timeout for slow model loads)"
            ) from exc
        except ray.exceptions.RayError as exc:
            raise RecursaError(f"a Ray replica could not start: {_last_line(exc)}") from exc
        for index, info in enumerate(infos):
            if info.error:
                error = UsageError if info.usage_error else RecursaError
                raise error(f"Ray replica {index} ({options.engine}): {info.error}")
        return infos

    # -- the Backend contract -----------------------------------------------------------------
    @property
    def description(self) -> str:
        inner = self.infos[0].description if self.infos else self.engine
        return f"{len(self.router.slots)} Ray replicas of {inner}"

    @property
    def context_tokens(self) -> int | None:
        return self._context_tokens

    async def generate(self, request: GenerationRequest) -> Completion:
        ray = self._ray
        if not all(s.up for s in self.router.slots):
            self._ensure_probes()
        slot = self.router.choose(request.key)
        if slot is None:
            raise RetryableError("every Ray replica is down; waiting for Ray to restart one")
        slot.in_flight += 1
        # `meta` stays in this process (GenerationRequest's contract): the replica gets the
        # request without it, and the problem context so that it answers as this process would.
        ref = slot.actor.generate.remote(replace(request, meta={}), current_problem())
        try:
            reply: Reply = await ref
        except asyncio.CancelledError:
            ray.cancel(ref)
            raise
        except ray.exceptions.RayActorError as exc:
            self.router.failed(slot, request.key)
            self._mark_down(slot)
            raise RetryableError(
                f"Ray replica {slot.index} died ({type(exc).__name__})",
                retry_after=0.0 if self.router.any_up() else None,
            ) from exc
        except ray.exceptions.RayTaskError as exc:
            raise BackendError(
                f"Ray replica {slot.index} failed on a request: {_last_line(exc)}"
            ) from exc
        finally:
            slot.in_flight -= 1
        if reply.completion is not None:
            self.router.succeeded(slot, request.key)
            return reply.completion
        message = f"Ray replica {slot.index}: {reply.error}"
        if reply.kind == "retry":
            self.router.failed(slot, request.key)
            raise RetryableError(message, retry_after=reply.retry_after)
        raise UsageError(message) if reply.kind == "usage" else BackendError(message)

    # -- replicas that die --------------------------------------------------------------------
    def _mark_down(self, slot: Slot) -> None:
        if slot.up:
            slot.up = False
            log.warning("Ray replica %d died; its requests go to the other replicas", slot.index)
        self._ensure_probes()

    def _ensure_probes(self) -> None:
        """A probe for every replica that is down, in the running event loop (a probe started
        in an earlier `asyncio.run` ended with that loop)."""
        for slot in self.router.slots:
            if slot.up or slot.index in self._broken:
                continue
            task = self._probes.get(slot.index)
            if task is None or task.done():
                loop = asyncio.get_running_loop()
                self._probes[slot.index] = loop.create_task(self._probe(slot))

    async def _probe(self, slot: Slot) -> None:
        """Ping a dead replica until Ray has restarted it and it has rebuilt its backend."""
        delay = 0.2
        while not self._closed:
            try:
                ready = bool(await slot.actor.ping.remote())
            except self._ray.exceptions.RayActorError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, PROBE_MAX_DELAY_S)
                continue
            if ready:
                slot.up = True
                log.warning("Ray replica %d is back", slot.index)
            else:
                self._broken.add(slot.index)
                log.warning(
                    "Ray replica %d restarted but could not rebuild its backend", slot.index
                )
            return

    async def wait_up(self, index: int, timeout: float) -> bool:
        """Wait until replica `index` is up again (True) or `timeout` seconds pass (False)."""
        self._ensure_probes()
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.router.slots[index].up:
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    def stats(self) -> list[dict[str, Any]]:
        """Per replica: requests answered, failures seen, requests in flight, up or down."""
        return [
            {
                "replica": s.index,
                "served": s.served,
                "failures": s.failures,
                "in_flight": s.in_flight,
                "up": s.up,
            }
            for s in self.router.slots
        ]

    # -- shutdown -----------------------------------------------------------------------------
    def _kill_all(self) -> None:
        for slot in self.router.slots:
            if slot.actor is not None:
                self._ray.kill(slot.actor, no_restart=True)
        if self._owns_ray:
            self._ray.shutdown()
            self._owns_ray = False

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._probes.values():
            task.cancel()
        closing = [s.actor.close.remote() for s in self.router.slots if s.up]
        if closing:
            try:
                await asyncio.wait_for(
                    asyncio.gather(*closing, return_exceptions=True), CLOSE_WAIT_S
                )
            except asyncio.TimeoutError:
                log.warning("Ray replicas did not close within %g s; killing them", CLOSE_WAIT_S)
        self._kill_all()


def from_config(config: BackendConfig) -> RayBackend:
    return RayBackend(config)


SPEC = BackendSpec(from_config, RayOptions, "replicas of another backend on Ray")
