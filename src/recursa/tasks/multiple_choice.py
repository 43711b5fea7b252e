"""Multiple choice (SuperGPQA and the like): the option letter inside `\\boxed{}`."""

from __future__ import annotations

import string
from collections.abc import Sequence

from recursa.tasks.base import Grade, Problem, Task, no_reference, not_text
from recursa.tasks.math import extract_boxed


def reference_normal_form(answer: str) -> str:
    """The parts of verl's `strip_string` (the reference's normaliser) that can touch an
    option letter: line breaks, `\\!` and escaped dollars go, a right-hand unit after
    `\\text{ ` goes, a short "x =" prefix goes, then every space."""
    s = answer.strip().replace("\n", "").replace("\\!", "").replace("\\$", "")
    if "\\text{ " in s:
        s = s.split("\\text{ ")[0]
    halves = s.split("=")
    if len(halves) == 2 and len(halves[0]) <= 2:
        s = halves[1]
    return s.replace(" ", "")


def extract_choice(text: str, options: Sequence[str] | None = None) -> str | None:
    """The content of the last complete `\\boxed{}` (outside `<think>` blocks) in the
    reference's normal form (`reference_normal_form`), or None when there is no box.

    As strict as the reference code, which grades SuperGPQA by comparing the last box's
    content with the reference letter after verl's `strip_string`: only a box holding the
    letter alone is that letter. `\\boxed{B: 4000 cal}` reads as "B:4000cal" (wrong), and an
    unboxed "The answer is B." is no answer. `options` is accepted for callers that pass
    it; it changes nothing."""
    boxed = extract_boxed(text)
    if boxed is None:
        return None
    return reference_normal_form(boxed) or None


def grade_choice(completion: str, reference: object, options: Sequence[str] | None = None) -> Grade:
    """1.0 when the boxed answer is exactly the reference letter (see `extract_choice`)."""
    if not isinstance(completion, str):
        return not_text(completion)
    answer = extract_choice(completion, options)
    if answer is None:
        return Grade(0.0, None, "no \\boxed{} answer found in the completion")
    if reference is None or not str(reference).strip():
        return no_reference(answer)
    letter = str(reference).strip().upper()[:1]
    if answer == letter:
        return Grade(1.0, answer)
    if len(answer) != 1 or not answer.isalpha() or not answer.isupper():
        return Grade(0.0, answer, "the box does not hold an option letter alone")
    if options and string.ascii_uppercase.find(answer) >= len(options):
        return Grade(0.0, answer, f"there is no option {answer}")
    return Grade(0.0, answer, "wrong option")


def render_options(options: list[str]) -> str:
    return "\n".join(f"{string.ascii_uppercase[i]}) {opt}" for i, opt in enumerate(options))


def _options(problem: Problem) -> list[str] | None:
    options = problem.meta.get("options")
    return [str(o) for o in options] if isinstance(options, (list, tuple)) and options else None


class MultipleChoiceTask(Task):
    name = "mcq"
    problem_kind = "multiple-choice problem"
    format_hint = (
        "\\boxed{}. Only include the correct option letter in \\boxed{}; for example \\boxed{A}"
    )

    def problem_text(self, problem: Problem) -> str:
        options = problem.meta.get("options")
        if options:
            return f"{problem.question}\n\n{render_options(list(options))}"
        return problem.question

    def format_instruction(self, problem: Problem) -> str:
        return (
            "Reason step by step, then give the letter of the correct option within "
            "\\boxed{}, for example \\boxed{C}."
        )

    def extract(self, text: str) -> str | None:
        return extract_choice(text)

    def key(self, answer: str) -> str:
        return answer.strip()

    def grade(self, problem: Problem, completion: str) -> Grade:
        return grade_choice(completion, problem.answer, _options(problem))
