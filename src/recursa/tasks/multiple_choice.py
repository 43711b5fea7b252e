"""Multiple choice (SuperGPQA and the like): the option letter inside `\\boxed{}`."""

from __future__ import annotations

import re
import string

from recursa.tasks.base import Grade, Problem, Task, no_answer, no_reference
from recursa.tasks.math import extract_boxed

_LETTER = re.compile(r"^\(?([A-Za-z])\)?(?:[.):\s]|$)")
_ANSWER_IS = re.compile(r"answer is:?\s*\(?([A-J])\)?\b")


def extract_choice(text: str) -> str | None:
    """The option letter in the last `\\boxed{}` (falling back to 'answer is X'), upper-case."""
    boxed = extract_boxed(text)
    if boxed is not None:
        inner = re.sub(r"\\text\{([^{}]*)\}", r"\1", boxed).strip()
        m = _LETTER.match(inner)
        if m:
            return m.group(1).upper()
    found = _ANSWER_IS.findall(text)
    return found[-1].upper() if found else None


def grade_choice(completion: str, reference: object) -> Grade:
    """1.0 when the chosen letter equals the reference letter."""
    answer = extract_choice(completion)
    if answer is None:
        return no_answer()
    if reference is None or not str(reference).strip():
        return no_reference(answer)
    ok = answer == str(reference).strip().upper()[:1]
    return Grade(1.0 if ok else 0.0, answer, "" if ok else "wrong option")


def render_options(options: list[str]) -> str:
    return "\n".join(f"{string.ascii_uppercase[i]}) {opt}" for i, opt in enumerate(options))


class MultipleChoiceTask(Task):
    name = "mcq"
    answer_format = "the letter of the correct option within \\boxed{}"

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
        return answer.strip().upper()

    def grade(self, problem: Problem, completion: str) -> Grade:
        return grade_choice(completion, problem.answer)
