"""Final-answer selections: how the engine picks the answer from the last population.

A selection is one object in the `SELECTIONS` registry, chosen by `RSAConfig.selection`:
`majority` (the vote), `random` (a seeded random member: the paper's pass@1 estimator) and
`verify` (self-verification, `recursa.verification`: the model judges each candidate). A
selection that asks the model does so through the engine's one generation path (store,
dispatch, record) given to it as `SelectionContext.generate`, so a resumed run never asks
twice. What it records about a problem (`Selected.details`) and the metrics it derives from
the graded population (`problem_metrics`, labelled by `metrics`) reach problems.jsonl,
metrics and reports without any of them knowing the selection.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar, Protocol

from recursa.backends.base import Completion, Message
from recursa.registry import Registry
from recursa.result import Candidate
from recursa.selection import majority_vote, random_member
from recursa.tasks import Problem, Task


class SelectionContext(Protocol):
    """What the engine hands a selection for one problem."""

    task: Task
    problem: Problem
    candidates: list[Candidate]
    #: The last population's answer clusters (member indices, largest first; ties broken).
    ranked: list[list[int]]
    seed: int
    #: The context window (None when unknown).
    context_tokens: int | None
    #: The selection's own settings (the RSA config's fields, e.g. verify_temperature).
    settings: Any

    def count_tokens(self, text: str) -> int: ...

    async def generate(
        self,
        phase: str,
        step: int,
        slot: int,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float,
    ) -> Completion:
        """One model call through the engine (stored under `phase`, step and slot)."""
        ...


@dataclass
class SelectionRun:
    """The `SelectionContext` the engine builds for one problem: its pieces, the engine's
    token counter and its generation path for the selection's own calls."""

    task: Task
    problem: Problem
    candidates: list[Candidate]
    ranked: list[list[int]]
    seed: int
    settings: Any
    context_tokens: int | None
    counter: Callable[[str], int]
    caller: Callable[[str, int, int, list[Message], int, float], Awaitable[Completion]]

    def count_tokens(self, text: str) -> int:
        return self.counter(text)

    async def generate(
        self,
        phase: str,
        step: int,
        slot: int,
        messages: list[Message],
        *,
        max_tokens: int,
        temperature: float,
    ) -> Completion:
        return await self.caller(phase, step, slot, messages, max_tokens, temperature)


@dataclass
class Selected:
    """A selection's outcome for one problem."""

    candidate: Candidate
    #: What the selection records about the problem (problems.jsonl, under its name).
    details: dict[str, Any] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generations: int = 0


class Selection(abc.ABC):
    """One way of choosing the final answer."""

    name: str = ""
    #: Per-problem metrics this selection reports (see `problem_metrics`): key -> label.
    metrics: ClassVar[dict[str, str]] = {}

    def extra_generations(self, n: int) -> int:
        """Model calls the selection makes per problem for a final population of `n`."""
        return 0

    def sample_cost(self, max_tokens: int, settings: Mapping[str, Any]) -> Fraction:
        """What the selection's calls for one final candidate cost a generation budget, in
        generations of `max_tokens` (verify: a judgement of at most V tokens costs V / M)."""
        return Fraction(0)

    @abc.abstractmethod
    async def select(self, context: SelectionContext) -> Selected:
        """The chosen candidate of the last population."""

    def problem_metrics(
        self, details: dict[str, Any] | None, scores: Sequence[float], correct: Sequence[bool]
    ) -> dict[str, float]:
        """Metrics of one problem from the details and the graded last population (each
        member's score and correctness, by slot)."""
        return {}


class MajoritySelection(Selection):
    name = "majority"

    async def select(self, context: SelectionContext) -> Selected:
        if context.ranked:  # the engine clustered this population already
            return Selected(context.candidates[context.ranked[0][0]])
        chosen, _ = majority_vote(
            context.task, context.candidates, context.seed, context.problem.id
        )
        return Selected(chosen)


class RandomSelection(Selection):
    name = "random"

    async def select(self, context: SelectionContext) -> Selected:
        return Selected(random_member(context.candidates, context.seed, context.problem.id))


def _selection(name: str, obj: object) -> Selection:
    if isinstance(obj, type) and issubclass(obj, Selection):
        obj = obj()
    if not isinstance(obj, Selection):
        raise TypeError(f"selection {name!r} must be a recursa Selection, not {obj!r}")
    return obj


SELECTIONS: Registry[Selection] = Registry("selection", "recursa.selections", check=_selection)
SELECTIONS.add("majority", MajoritySelection())
SELECTIONS.add("random", RandomSelection())
SELECTIONS.add("verify", "recursa.verification:VerifySelection")


def selection_metric_labels() -> dict[str, str]:
    """Report labels of the metrics the registered selections declare (key -> label)."""
    labels: dict[str, str] = {}
    for name in SELECTIONS.names():
        labels.update(SELECTIONS.get(name).metrics)
    return labels
