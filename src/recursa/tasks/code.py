"""Code: the answer is the last fenced Python block of the completion."""

from __future__ import annotations

import re

from recursa.tasks.base import Grade, Problem, Task, not_text

_OPEN = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[ \t]*$")
_CLOSE = re.compile(r"^[ \t]*```[ \t]*$")
_PYTHON = {"", "python", "py", "python3"}


def extract_code(text: str) -> str | None:
    """The body of the last non-empty fenced block marked python (or unmarked). One pass over
    the lines, so an unclosed fence cannot make it slow; an unclosed last block is ignored."""
    blocks: list[str] = []
    body: list[str] | None = None
    language = ""
    for line in text.splitlines():
        if body is None:
            opened = _OPEN.match(line)
            if opened:
                body, language = [], opened.group(1).lower()
        elif _CLOSE.match(line):
            if language in _PYTHON and "".join(body).strip():
                blocks.append("\n".join(body))
            body = None
        else:
            body.append(line)
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


def grade_code(completion: str, reference: object) -> Grade:
    """Extraction only: a program is correct when its tests pass, and running them needs a
    sandbox this grader does not have, so the score is 0 with that reason."""
    if not isinstance(completion, str):
        return not_text(completion)
    code = extract_code(completion)
    if code is None:
        return Grade(0.0, None, "no fenced Python block in the completion")
    return Grade(0.0, code, "code is graded by running its tests, which this grader cannot do")


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
        return grade_code(completion, problem.answer)
