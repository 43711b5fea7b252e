"""Reasoning Gym scoring in a helper process: answers are untrusted text.

The scorers are third-party code that may evaluate the answer (see `expression_guard`) or
take unbounded time on adversarial input (`9**9**9**9` handed to sympy). So every score is
computed in a helper process (`recursa.tasks.helper`) that guards evaluation before any
scorer runs and is killed when a score takes longer than `DEADLINE_S`.

Protocol: `[dataset_name, answer, entry]` in, the score out (or `["error", ExceptionName]`).
"""

from __future__ import annotations

from typing import Any

from recursa.tasks.helper import HelperProcess, serve

#: Seconds one score may take (scorers take milliseconds; this only stops runaway work).
DEADLINE_S = 20.0

_helper = HelperProcess("recursa.tasks.rg_worker")


class ScorerFailed(Exception):
    """The scorer raised, or did not finish in time; the message says which."""


def shutdown() -> None:
    """Stop the helper process."""
    _helper.shutdown()


def score_in_child(
    dataset_name: str, answer: str, entry: dict[str, Any], deadline_s: float = DEADLINE_S
) -> float:
    """The dataset's own score of `answer`, computed in the helper process."""
    reply = _helper.ask([dataset_name, answer, entry], deadline_s)
    if reply is None:
        raise ScorerFailed(f"did not finish within {deadline_s:g} s")
    if isinstance(reply, list):
        raise ScorerFailed(str(reply[-1]))
    return float(reply)


def _handle(request: list[Any]) -> float:
    from recursa.tasks.reasoning_gym import score_here

    name, answer, entry = request
    return score_here(str(answer), str(name), dict(entry))


def _warm_up() -> None:
    import reasoning_gym  # noqa: F401 - import before saying ready

    from recursa.tasks.expression_guard import install

    install()


if __name__ == "__main__":
    serve(_handle, _warm_up)
