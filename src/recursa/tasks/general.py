"""Open questions: the answer is the text of a closing 'Final answer:' line."""

from __future__ import annotations

import re

from recursa.tasks.base import (
    Grade,
    Problem,
    Task,
    no_answer,
    no_reference,
    normalize_text,
    not_text,
    outside_think,
)

_FINAL = re.compile(r"final answer\s*[:：]\s*(.+)", re.IGNORECASE)


def extract_final_line(text: str) -> str | None:
    """The text after the last 'Final answer:' marker (outside `<think>` blocks), up to the
    end of its line."""
    matches = _FINAL.findall(outside_think(text))
    for candidate in reversed(matches):
        value = candidate.strip().strip("*").strip()
        if value:
            return value
    return None


def grade_general(completion: str, reference: object) -> Grade:
    """Case- and whitespace-insensitive exact match of the final line."""
    if not isinstance(completion, str):
        return not_text(completion)
    answer = extract_final_line(completion)
    if answer is None:
        return no_answer()
    if reference is None:
        return no_reference(answer)
    ok = normalize_text(answer).lower().rstrip(".") == normalize_text(str(reference)).lower()
    return Grade(1.0 if ok else 0.0, answer, "" if ok else "answer differs from the reference")


class GeneralTask(Task):
    name = "general"
    format_hint = "a last line of the form 'Final answer: <your answer>'"

    def format_instruction(self, problem: Problem) -> str:
        return "Think it through, then end with a line of the form 'Final answer: <your answer>'."

    def extract(self, text: str) -> str | None:
        return extract_final_line(text)

    def key(self, answer: str) -> str:
        return normalize_text(answer).lower().rstrip(".")

    def grade(self, problem: Problem, completion: str) -> Grade:
        return grade_general(completion, problem.answer)
