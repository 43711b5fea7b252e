"""What a run produces: candidates per step, the selected answer, token usage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Candidate:
    """One member of a population."""

    step: int
    slot: int
    text: str
    answer: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    #: Slots of the previous step this candidate was aggregated from (empty at step 1).
    parents: list[int] = field(default_factory=list)
    #: The task's majority-vote key when it computes one from the problem (code: a
    #: signature of the program's outputs on the public tests); None otherwise.
    vote_key: str | None = None
    #: The backend's token log-probabilities when the request asked for them (the proxy's
    #: `logprobs`); left out of `to_dict` when absent.
    logprobs: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["logprobs"] is None:
            del data["logprobs"]
        return data


@dataclass
class StepResult:
    """One step's population and how much it agrees."""

    step: int
    candidates: list[Candidate]
    agreement: float = 0.0
    majority_answer: str | None = None
    #: The majority cluster's vote key when the task computes keys (code), else None.
    majority_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "agreement": self.agreement,
            "majority_answer": self.majority_answer,
            "majority_key": self.majority_key,
            "candidates": [c.to_dict() for c in self.candidates],
        }


@dataclass
class SolveResult:
    """The outcome of RSA on one problem."""

    problem_id: str
    answer: str | None
    text: str
    selected_slot: int
    steps: list[StepResult]
    usage: dict[str, int]
    config: dict[str, Any]
    steps_run: int = 0
    generations_saved: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem_id": self.problem_id,
            "answer": self.answer,
            "text": self.text,
            "selected_slot": self.selected_slot,
            "steps": [s.to_dict() for s in self.steps],
            "usage": dict(self.usage),
            "steps_run": self.steps_run,
            "generations_saved": self.generations_saved,
            "config": self.config,
        }
