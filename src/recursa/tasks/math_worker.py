"""math-verify off the main thread: a helper process with a hard deadline.

math-verify bounds its own work with `signal.alarm`, which only works on a process's main
thread; called from any other thread with its time limits on, it raises, and with them off
an adversarial answer (a power tower such as 9^{9^{9^9}}) can run forever while holding the
GIL. So callers off the main thread send the comparison to a helper process
(`recursa.tasks.helper`) whose main thread runs math-verify with its usual limits; if the
helper does not answer within `DEADLINE_S` it is killed (and started again on the next call)
and the pair counts as not equal.

Protocol: `[gold, target]` in, `true`/`false` out.
"""

from __future__ import annotations

import logging
from typing import Any

from recursa.tasks.helper import HelperProcess, serve

log = logging.getLogger("recursa.tasks.math")

#: Seconds the child may take for one comparison (math-verify's own limits are 5 s per parse
#: and 5 s per comparison, so this only fires when those fail to interrupt).
DEADLINE_S = 30.0

_helper = HelperProcess("recursa.tasks.math_worker")


def shutdown() -> None:
    """Stop the helper process."""
    _helper.shutdown()


def verify_in_child(gold: str, target: str, deadline_s: float = DEADLINE_S) -> bool | None:
    """math-verify's verdict computed in the child; None when it did not answer in time
    (or could not start), in which case the child is replaced on the next call."""
    answer = _helper.ask([gold, target], deadline_s)
    if answer is None:
        log.warning(
            "math-verify did not answer within %.0f s; the answers count as not equal",
            deadline_s,
        )
        return None
    return answer is True


def math_verify_here(gold: str, target: str) -> bool:
    """math-verify in this thread, with its default time limits (main thread only: they use
    `signal.alarm`). A time limit hit or a parse failure counts as not equal."""
    from math_verify import parse, verify

    try:
        g = parse(f"${gold}$")
        t = parse(f"${target}$")
        return bool(g) and bool(t) and bool(verify(g, t))
    except Exception:  # math-verify raises many kinds on adversarial input; never propagate
        return False


def _handle(request: list[Any]) -> bool:
    gold, target = request
    return math_verify_here(str(gold), str(target))


def _warm_up() -> None:
    math_verify_here("1", "1")  # import sympy and the LaTeX parser before saying ready


if __name__ == "__main__":
    serve(_handle, _warm_up)
