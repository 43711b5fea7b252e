"""Math: the answer is the last `\\boxed{...}`; equivalence and grading use math-verify."""

from __future__ import annotations

import re
import threading
from typing import Any

from recursa.tasks.base import Grade, Problem, Task, no_answer, no_reference

_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")


def extract_boxed(text: str) -> str | None:
    """The content of the last complete `\\boxed{...}` (nested braces balanced), or None."""
    last: str | None = None
    for match in _BOX_START.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            i += 1
        if depth == 0:
            content = text[match.end() : i - 1].strip()
            if content:
                last = content
    return last


_STRIP = [
    (re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\displaystyle"), ""),
    (re.compile(r"\\[dt]frac"), r"\\frac"),
    (re.compile(r"\^\{?\\circ\}?"), ""),
    (re.compile(r"\\text\{\s*([^{}]*)\}"), r"\1"),
    (re.compile(r"\\mathrm\{\s*([^{}]*)\}"), r"\1"),
    (re.compile(r"\s+"), ""),
]


def math_key(answer: str) -> str:
    """A cheap normal form (spacing, \\left/\\right, dfrac, degree signs, trailing dots)."""
    s = answer.strip().strip("$")
    for pattern, repl in _STRIP:
        s = pattern.sub(repl, s)
    return s.rstrip(".")


def _math_verify_equal(gold: str, target: str) -> bool:
    """math-verify equivalence; its signal-based time limits only work on the main thread."""
    try:
        from math_verify import parse, verify
    except ImportError:  # pragma: no cover - math-verify is a core dependency
        return False
    main = threading.current_thread() is threading.main_thread()
    kwargs: dict[str, Any] = {} if main else {"parsing_timeout": None}
    try:
        g = parse(f"${gold}$", **kwargs)
        t = parse(f"${target}$", **kwargs)
        if not g or not t:
            return False
        vkw: dict[str, Any] = {} if main else {"timeout_seconds": None}
        return bool(verify(g, t, **vkw))
    except Exception:  # math-verify raises many kinds on adversarial input; never propagate
        return False


def math_equivalent(a: str, b: str) -> bool:
    """Same normal form, or mathematically equal according to math-verify."""
    return math_key(a) == math_key(b) or _math_verify_equal(a, b)


def grade_math(completion: str, reference: object) -> Grade:
    """1.0 when the last boxed answer equals the reference (math-verify), else 0.0 and why."""
    answer = extract_boxed(completion)
    if answer is None:
        return no_answer()
    if reference is None or str(reference).strip() == "":
        return no_reference(answer)
    ok = math_equivalent(str(reference), answer)
    return Grade(1.0 if ok else 0.0, answer, "" if ok else "answer differs from the reference")


class MathTask(Task):
    name = "math"
    answer_format = "the final answer within \\boxed{}"

    def format_instruction(self, problem: Problem) -> str:
        return "Reason step by step, and put your final answer within \\boxed{}."

    def extract(self, text: str) -> str | None:
        return extract_boxed(text)

    def key(self, answer: str) -> str:
        return math_key(answer)

    def equivalent(self, a: str, b: str) -> bool:
        return math_equivalent(a, b)

    def grade(self, problem: Problem, completion: str) -> Grade:
        return grade_math(completion, problem.answer)
