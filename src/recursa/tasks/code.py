"""Code: the answer is the last fenced Python block of the completion."""

from __future__ import annotations

import re

from recursa.tasks.base import Grade, Problem, Task, no_answer

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(text: str) -> str | None:
    """The body of the last fenced code block (```python preferred, any fence accepted)."""
    blocks = [b for b in _FENCE.findall(text) if b.strip()]
    return blocks[-1].rstrip() + "\n" if blocks else None


def io_instruction(problem: Problem) -> str:
    """The problem's own I/O instructions: stdin/stdout, or the starter code's signature."""
    starter = str(problem.meta.get("starter_code") or "").strip()
    if starter:
        return (
            "Complete the following starter code; your program must define it exactly as "
            f"given:\n```python\n{starter}\n```"
        )
    return (
        "Your program must read its input from standard input and write the answer to "
        "standard output."
    )


class CodeTask(Task):
    name = "code"
    answer_format = "a complete Python program in one fenced ```python block"

    def format_instruction(self, problem: Problem) -> str:
        return (
            f"{io_instruction(problem)}\nThink it through, then give the complete Python "
            "program in a single ```python fenced code block at the end of your answer."
        )

    def extract(self, text: str) -> str | None:
        return extract_code(text)

    def key(self, answer: str) -> str:
        return "\n".join(line.rstrip() for line in answer.strip().splitlines())

    def grade(self, problem: Problem, completion: str) -> Grade:
        code = extract_code(completion)
        if code is None:
            return no_answer()
        return Grade(0.0, code, "code problems are graded by running tests (recursa eval)")
