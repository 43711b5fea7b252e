"""Client disconnects: the work a request started is cancelled when its client goes away.

Cancelling the engine's task cancels its pending dispatcher calls, which abort their
in-flight upstream HTTP requests (the connections are closed) and never start new ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.types import Receive

log = logging.getLogger("recursa.serve")
T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


async def wait_for_disconnect(receive: Receive) -> None:
    """Returns once the ASGI server reports that the client disconnected. Call only after
    the request body has been read: later messages are then only the disconnect."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel the tasks that are still running and wait until they have stopped."""
    for task in tasks:
        if not task.done():
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def unless_disconnected(work: Coroutine[Any, Any, T], receive: Receive) -> T:
    """The work's result; if the client disconnects first the work is cancelled (and waited
    for) and ClientGone is raised."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(wait_for_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        log.info("client disconnected; cancelling its upstream requests")
        await cancel_and_wait(task)
        raise ClientGone()
    finally:
        await cancel_and_wait(task, watcher)
