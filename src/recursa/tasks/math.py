"""Math: the answer is the last `\\boxed{...}`; equivalence and grading use math-verify."""

from __future__ import annotations

import functools
import os
import re
import threading

from recursa.tasks.base import Grade, Problem, Task, no_reference, not_text, outside_think

_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_INTEGER = re.compile(r"[+-]?\d+")
#: Answers longer than this are compared by normal form only: math-verify's parser is slow
#: on long inputs, and a real final answer is short.
MAX_VERIFY_CHARS = 1000


def extract_boxed(text: str) -> str | None:
    """The content of the last complete, non-empty `\\boxed{...}` (nested braces balanced).

    Searched from the end, so a completion full of unclosed boxes costs linear time: a box
    still open at the end of the text means every earlier box that reaches it is open too.
    Only the text outside `<think>` blocks is searched (`outside_think`)."""
    text = outside_think(text)
    limit = len(text)
    for match in reversed(list(_BOX_START.finditer(text))):
        if match.start() >= limit:
            continue
        depth, i = 1, match.end()
        while i < limit and depth:
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            i += 1
        if depth:
            limit = match.start()
            continue
        content = text[match.end() : i - 1].strip()
        if content:
            return content
    return None


_STRIP = [
    (re.compile(r"\\left|\\right|\\!|\\,|\\;|\\:|\\displaystyle"), ""),
    (re.compile(r"\\[dt]frac"), r"\\frac"),
    (re.compile(r"\^\{?\\circ\}?"), ""),
    (re.compile(r"\\text\{\s*([^{}]*)\}"), r"\1"),
    (re.compile(r"\\mathrm\{\s*([^{}]*)\}"), r"\1"),
    (re.compile(r"\s+"), ""),
]


@functools.lru_cache(maxsize=16384)
def math_key(answer: str) -> str:
    """A cheap normal form (spacing, \\left/\\right, dfrac, degree signs, trailing dots).
    Cached: a vote or a grade asks for the same few answers' keys over and over."""
    s = answer.strip().strip("$")
    for pattern, repl in _STRIP:
        s = pattern.sub(repl, s)
    return s.rstrip(".")


def math_verify_here(gold: str, target: str) -> bool:
    """math-verify in this thread, with its default time limits (main thread only: they use
    `signal.alarm`). A time limit hit or a parse failure counts as not equal."""
    from math_verify import parse, verify

    try:
        g = parse(f"${gold}$")
        t = parse(f"${target}$")
        return bool(g) and bool(t) and bool(verify(g, t))
    except Exception:  # math-verify raises many kinds on adversarial input; never propagate
        return False


#: Answers whose parsing or comparison may build huge numbers (powers, factorials, binomials).
#: On the main thread math-verify's `signal.alarm` limit usually stops them, but an alarm that
#: lands in a finaliser or a garbage-collector callback is swallowed and the work goes on, so
#: these always go to the helper process, whose deadline nothing can swallow.
_HEAVY = re.compile(r"\^|!|\*\*|\\exp|\\binom|\\choose")


def _math_verify_equal(gold: str, target: str) -> bool:
    """math-verify equivalence with a time limit in every thread: here on the main thread, in
    a helper process (`math_worker`) elsewhere, where `signal.alarm` cannot interrupt, and for
    answers that may build huge numbers (`_HEAVY`) everywhere."""
    heavy = _HEAVY.search(gold) is not None or _HEAVY.search(target) is not None
    main = threading.current_thread() is threading.main_thread()
    if os.name != "posix" or (main and not heavy):
        return math_verify_here(gold, target)
    from recursa.tasks.math_worker import verify_in_child

    return bool(verify_in_child(gold, target))


def math_reference_error(reference: str) -> str | None:
    """Why a reference answer cannot be graded as math (None when it can): empty, unbalanced
    braces, or (checked on the main thread, where math-verify's time limits work) no
    expression math-verify can parse. Integers need no parser."""
    key = math_key(reference)
    if not key:
        return "the reference answer is empty"
    if _INTEGER.fullmatch(key):
        return None
    depth = 0
    for ch in key:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            break
    if depth != 0:
        return f"the reference answer {reference[:60]!r} has unbalanced braces"
    if threading.current_thread() is threading.main_thread():
        from math_verify import parse

        try:
            parsed = parse(f"${reference}$")
        except Exception:  # math-verify raises many kinds on odd input
            parsed = []
        if len(parsed) < 2:  # only the raw string back: nothing was parsed
            return f"the reference answer {reference[:60]!r} cannot be parsed as math"
    return None


def math_equivalent(a: str, b: str) -> bool:
    """Same normal form, or mathematically equal according to math-verify. Two integers are
    compared as integers; over-long answers by normal form only."""
    ka, kb = math_key(a), math_key(b)
    if ka == kb:
        return True
    if _INTEGER.fullmatch(ka) and _INTEGER.fullmatch(kb):
        return int(ka) == int(kb)
    if len(a) > MAX_VERIFY_CHARS or len(b) > MAX_VERIFY_CHARS:
        return False
    return _math_verify_equal(a, b)


def grade_math(completion: str, reference: object) -> Grade:
    """1.0 when the last boxed answer equals the reference (math-verify), else 0.0 and why."""
    if not isinstance(completion, str):
        return not_text(completion)
    answer = extract_boxed(completion)
    if answer is None:
        return Grade(0.0, None, "no complete \\boxed{...} answer in the completion")
    if reference is None or str(reference).strip() == "":
        return no_reference(answer)
    ok = math_equivalent(str(reference), answer)
    return Grade(1.0 if ok else 0.0, answer, "" if ok else "answer differs from the reference")


class MathTask(Task):
    name = "math"
    problem_kind = "math problem"
    format_hint = "\\boxed{}"

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
