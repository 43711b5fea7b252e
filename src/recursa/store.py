"""The completion-store contract the engine asks before its backend (an evaluation's journal)."""

from __future__ import annotations

from typing import Protocol

from recursa.backends.base import Completion, GenerationRequest

#: The phase of the population's own generations (a selection's calls have their own).
GENERATE = "generate"


class CompletionStore(Protocol):
    """Durable completions: asked before the backend, told of every new completion. The
    population's completions are phase "generate"; a selection's model calls (verify) are
    stored under their own phase."""

    def lookup(
        self, problem_id: str, step: int, slot: int, phase: str = GENERATE
    ) -> Completion | None: ...

    def record(
        self,
        problem_id: str,
        step: int,
        slot: int,
        request: GenerationRequest,
        completion: Completion,
        phase: str = GENERATE,
    ) -> None: ...
