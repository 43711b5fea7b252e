"""An asyncio event loop that runs in virtual time, for simulations.

`loop.time()` starts at 0 and moves only when every task is waiting on a timer: then it jumps
straight to the earliest timer instead of sleeping. So `await asyncio.sleep(3600)` returns at
once in real time, with `loop.time()` exactly 3600 later, and code that measures time with the
loop's clock sees the simulated durations. Real I/O (the loop's self-pipe, threads finishing
via `call_soon_threadsafe`) still works: with no timer pending the loop blocks for real.

`wait_idle()` resolves once nothing else can run at the current virtual instant (no ready
callbacks), before the clock moves: a simulated server uses it to let every client react to
its last answers before it decides what to run next.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _AdvancingSelector:
    """Wraps the loop's selector: a wait that would block on a timer advances the clock."""

    def __init__(self, real: selectors.BaseSelector, loop: VirtualClockLoop) -> None:
        self._real = real
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout == 0:
            return self._real.select(0)
        events = self._real.select(0)
        if events:
            return events
        if self._loop.release_idle_waiters():
            return []
        if timeout is None:  # nothing scheduled: only real I/O (a thread) can wake us
            return self._real.select(None)
        self._loop.advance(timeout)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose clock is virtual (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._now = 0.0
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._selector: Any = _AdvancingSelector(self._selector, self)

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward (only the loop itself calls this)."""
        self._now += max(0.0, seconds)

    def release_idle_waiters(self) -> bool:
        """Resolve the futures of `wait_idle`; True if there were any."""
        waiters, self._idle_waiters = self._idle_waiters, []
        released = False
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
                released = True
        return released

    def wait_idle(self) -> asyncio.Future[None]:
        """A future that resolves when nothing else is ready at the current virtual time."""
        fut: asyncio.Future[None] = self.create_future()
        self._idle_waiters.append(fut)
        return fut


def current_virtual_loop() -> VirtualClockLoop | None:
    """The running loop if it is a VirtualClockLoop, else None."""
    loop = asyncio.get_running_loop()
    return loop if isinstance(loop, VirtualClockLoop) else None


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on a fresh VirtualClockLoop: the coroutine's result, in virtual time."""
    loop = VirtualClockLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
