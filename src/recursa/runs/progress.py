"""The evaluation progress bar on stderr: problems done, the steps under way, tokens/s, ETA."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tqdm import tqdm

from recursa.result import Candidate, StepResult
from recursa.tasks import Problem


class EvalProgress:
    """A bar over problems; its postfix shows the steps of the problems in flight, the
    model's throughput in this session (journaled completions do not count) and the
    generations made or reused."""

    def __init__(
        self, total: int, steps: int, enabled: bool, new_tokens: Callable[[], int]
    ) -> None:
        self.steps = steps
        self._new_tokens = new_tokens
        self._started = time.monotonic()
        self._current: dict[str, int] = {}
        self.generations = 0
        self.bar = tqdm(
            total=total,
            desc="problems",
            unit="problem",
            file=sys.stderr,
            disable=not enabled,
            dynamic_ncols=True,
        )

    def _refresh(self) -> None:
        steps = sorted(self._current.values())
        where = f"step {steps[0]}-{steps[-1]}/{self.steps}" if steps else "finishing"
        if steps and steps[0] == steps[-1]:
            where = f"step {steps[0]}/{self.steps}"
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = self._new_tokens() / elapsed
        self.bar.set_postfix_str(
            f"{where}, {rate:.0f} tok/s, {self.generations} gen", refresh=False
        )

    def start(self, problem: Problem) -> None:
        self._current[problem.id] = 1
        self._refresh()

    def on_generation(self, problem: Problem, candidate: Candidate) -> None:
        self.generations += 1
        self._refresh()
        self.bar.update(0)  # redraws at most every mininterval

    def on_step(self, problem: Problem, step: StepResult) -> None:
        self._current[problem.id] = min(step.step + 1, self.steps)
        self._refresh()

    def done(self, problem: Problem) -> None:
        self._current.pop(problem.id, None)
        self._refresh()
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
