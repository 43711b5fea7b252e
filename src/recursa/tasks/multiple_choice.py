"""Multiple choice (SuperGPQA and the like): the option letter inside `\\boxed{}`."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from recursa.tasks.base import (
    Grade,
    Problem,
    RowSkip,
    Task,
    no_reference,
    normalize_text,
    not_text,
    reference_type_error,
    text_of,
)
from recursa.tasks.math import extract_boxed

_LETTER = re.compile(r"^\(?([A-Za-z])\)?(?:[.):\s]|$)")
_ANSWER_IS = re.compile(r"answer is:?\s*\(?([A-J])\)?\b")


def _option_key(text: str) -> str:
    return normalize_text(re.sub(r"\\text\{([^{}]*)\}", r"\1", text)).lower().rstrip(".")


def extract_choice(text: str, options: Sequence[str] | None = None) -> str | None:
    """The option letter in the last `\\boxed{}` (a boxed option text counts as its letter
    when the options are known), falling back to 'the answer is X'; upper-case."""
    boxed = extract_boxed(text)
    if boxed is not None:
        inner = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", boxed).strip()
        m = _LETTER.match(inner)
        if m:
            return m.group(1).upper()
        if options:
            keys = [_option_key(str(o)) for o in options]
            if _option_key(inner) in keys:
                return string.ascii_uppercase[keys.index(_option_key(inner))]
    found = _ANSWER_IS.findall(text)
    return found[-1].upper() if found else None


def grade_choice(completion: str, reference: object, options: Sequence[str] | None = None) -> Grade:
    """1.0 when the chosen letter equals the reference letter."""
    if not isinstance(completion, str):
        return not_text(completion)
    answer = extract_choice(completion, options)
    if answer is None:
        return Grade(0.0, None, "no option letter in \\boxed{} found in the completion")
    if reference is None or not str(reference).strip():
        return no_reference(answer)
    if options and string.ascii_uppercase.find(answer) >= len(options):
        return Grade(0.0, answer, f"there is no option {answer}")
    ok = answer == str(reference).strip().upper()[:1]
    return Grade(1.0 if ok else 0.0, answer, "" if ok else "wrong option")


def render_options(options: list[str]) -> str:
    return "\n".join(f"{string.ascii_uppercase[i]}) {opt}" for i, opt in enumerate(options))


def _options(problem: Problem) -> list[str] | None:
    options = problem.meta.get("options")
    return [str(o) for o in options] if isinstance(options, (list, tuple)) and options else None


class MultipleChoiceTask(Task):
    name = "mcq"
    answer_format = "the letter of the correct option within \\boxed{}"
    ability = "multiple_choice"

    def check_problem(self, problem: Problem) -> Problem:
        """Question text and an option letter as the reference (stored upper-case)."""
        if not problem.question.strip():
            raise RowSkip("no question text")
        if error := reference_type_error(problem.answer):
            raise RowSkip(error)
        letter = text_of(problem.answer).upper()
        options = problem.meta.get("options")
        count = len(options) if isinstance(options, (list, tuple)) and options else 26
        if len(letter) != 1 or letter not in string.ascii_uppercase[:count]:
            raise RowSkip(f"multiple-choice answer {problem.answer!r} is not an option letter")
        problem.answer = letter
        return problem

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
        return grade_choice(completion, problem.answer, _options(problem))
