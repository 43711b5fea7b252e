"""Progress bars and step summaries on stderr (never on stdout, which carries results)."""

from __future__ import annotations

import sys
from collections import Counter

from tqdm import tqdm

from recursa.result import Candidate, StepResult
from recursa.tasks import Problem


def answer_summary(step: StepResult, limit: int = 6) -> str:
    """'42 x3, 17 x1, (none) x1' for a step's extracted answers."""
    counts = Counter((c.answer if c.answer is not None else "(none)") for c in step.candidates)
    parts = [f"{_short(a)} x{n}" for a, n in counts.most_common(limit)]
    if len(counts) > limit:
        parts.append(f"... {len(counts) - limit} more")
    return ", ".join(parts)


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


class SolveProgress:
    """A bar over the N x T generations of one problem, with a line per finished step."""

    def __init__(self, total: int, steps: int, enabled: bool, show_population: bool) -> None:
        self.steps = steps
        self.show_population = show_population
        self.bar = tqdm(
            total=total,
            desc="step 1",
            unit="gen",
            file=sys.stderr,
            disable=not enabled,
            dynamic_ncols=True,
        )
        self.tokens = 0

    def on_generation(self, problem: Problem, candidate: Candidate) -> None:
        self.tokens += candidate.completion_tokens
        self.bar.set_postfix_str(f"{self.tokens} tokens", refresh=False)
        self.bar.update(1)

    def on_step(self, problem: Problem, step: StepResult) -> None:
        self.bar.set_description(f"step {min(step.step + 1, self.steps)}")
        lines = [
            f"step {step.step}/{self.steps}: agreement {step.agreement:.0%}; "
            f"answers: {answer_summary(step)}"
        ]
        if self.show_population:
            for c in step.candidates:
                parents = f" from {c.parents}" if c.parents else ""
                lines.append(f"  [{c.slot}]{parents} answer={c.answer!r}: {_short(c.text, 160)}")
        for line in lines:
            tqdm.write(line, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
