"""Code: the answer is the last fenced Python block; it is graded by running the problem's
tests in the sandbox.

A code problem keeps its tests in `meta`: `public_tests` (shown in the statement) and
`private_tests`, each a list of {"input", "output", "testtype"} records ("stdin" or
"functional"), and `func_name` for functional problems (`starter_code` shapes the prompt).
Majority voting clusters programs by what they output on the public tests' inputs
(`vote_keys`), not by their text; see docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Sequence

from recursa.sandbox import Sandbox, SandboxConfig, run_blocking
from recursa.tasks.base import Grade, Problem, Task, no_answer, not_text, outside_think
from recursa.tasks.code_grading import as_tests, default_sandbox, grade_code_async, output_signature
from recursa.tasks.code_tests import CodeTest

_FENCE = re.compile(r"`{3,}")
_LANGUAGE = re.compile(r"[ \t]*([\w+-]*)")
_PYTHON = {"", "python", "py", "python3"}
_CACHE_SIZE = 4096

#: The reference code's LiveCodeBench preamble (eval_code.py), before the question.
CODE_PREAMBLE = (
    "You will be given a question (problem specification) and will generate a correct Python "
    "program that matches the specification and passes all tests."
)
#: Its instruction for stdin/stdout problems, after the question (and after the candidates).
STDIN_INSTRUCTION = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not "
    "directly test on the sample inputs). Enclose your code within delimiters as follows. "
    "Ensure that when the python program runs, it reads the inputs, runs the algorithm and "
    "writes output to STDOUT.\n\n```python\n# YOUR CODE HERE\n```"
)
#: Its instruction for problems with starter code.
STARTER_INSTRUCTION = (
    "You will use the following starter code to write the solution to the problem and enclose "
    "your code within delimiters.\n```python\n{starter}\n```"
)


def extract_code(text: str) -> str | None:
    """The body of the last non-empty fenced block marked python (or unmarked), outside
    `<think>` blocks. Fences may open or close mid-line (`Here it is: ```python` ...,
    `print(x)````): each run of three or more backticks opens a block, the next one closes
    it, and the word right after an opening fence is the block's language. One pass over the
    fences, so an unclosed fence cannot make it slow; an unclosed last block is ignored."""
    text = outside_think(text)
    fences = list(_FENCE.finditer(text))
    blocks: list[str] = []
    for opening, closing in zip(fences[0::2], fences[1::2], strict=False):
        language = _LANGUAGE.match(text, opening.end())
        assert language is not None  # the pattern matches the empty string
        after = text[language.end() : language.end() + 1]
        if after and not after.isspace():
            tag, start = "", opening.end()  # e.g. ```{...}: no language word
        else:
            tag, start = language.group(1).lower(), language.end()
        if tag not in _PYTHON:
            continue
        body = text[start : closing.start()]
        first, nl, rest = body.partition("\n")
        body = rest if nl and not first.strip() else body.lstrip(" \t")
        if body.strip():
            blocks.append(body)
    return blocks[-1].rstrip() + "\n" if blocks else None


def io_instruction(problem: Problem) -> str:
    """The problem's own I/O instructions in the reference's words: stdin/stdout, or the
    starter code to complete."""
    starter = str(problem.meta.get("starter_code") or "").strip("\n")
    if starter.strip():
        return STARTER_INSTRUCTION.format(starter=starter)
    return STDIN_INSTRUCTION


def problem_tests(problem: Problem) -> list[CodeTest]:
    """Public tests first, then private ones (or a list of tests given as the answer)."""
    public = [dict(t, public=True) for t in problem.meta.get("public_tests") or []]
    private = [dict(t, public=False) for t in problem.meta.get("private_tests") or []]
    if not public and not private and isinstance(problem.answer, list):
        private = [dict(t) for t in problem.answer if isinstance(t, dict)]
    return as_tests([*public, *private])


def _fingerprint(tests: list[CodeTest], name: str | None, code: str) -> tuple[str, str]:
    """A cache key for (program, tests): the same program on the same tests, same result."""
    spec = json.dumps([[t.input, t.output, t.kind, t.public] for t in tests] + [name])
    return (
        hashlib.sha256(spec.encode()).hexdigest(),
        hashlib.sha256(code.encode()).hexdigest(),
    )


def func_name(problem: Problem) -> str | None:
    name = problem.meta.get("func_name")
    return str(name) if name else None


class CodeTask(Task):
    name = "code"
    problem_kind = "python code implementation problem"
    format_hint = "a complete Python program in a ```python fenced code block"

    def __init__(self, sandbox: Sandbox | None = None) -> None:
        self._sandbox = sandbox
        self._signatures: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._grades: OrderedDict[tuple[str, str], Grade] = OrderedDict()

    @property
    def sandbox(self) -> Sandbox:
        return self._sandbox or default_sandbox()

    def configure_sandbox(self, config: SandboxConfig) -> None:
        """Use a sandbox with these limits for grading and voting from now on."""
        self._sandbox = Sandbox(config)
        self._signatures.clear()
        self._grades.clear()

    def problem_text(self, problem: Problem) -> str:
        """The reference's preamble, then the question."""
        return f"{CODE_PREAMBLE}\n\nQuestion:\n{problem.question}"

    def format_instruction(self, problem: Problem) -> str:
        return io_instruction(problem)

    def closing_instruction(self, problem: Problem) -> str:
        return io_instruction(problem)

    def extract(self, text: str) -> str | None:
        return extract_code(text)

    def key(self, answer: str) -> str:
        return "\n".join(line.rstrip() for line in answer.strip().splitlines())

    async def grade_async(self, problem: Problem, completion: str) -> Grade:
        if not isinstance(completion, str):
            return not_text(completion)
        code = extract_code(completion)
        if code is None:
            return no_answer()
        tests = problem_tests(problem)
        if not tests:
            return Grade(0.0, code, "the problem has no tests")
        # Populations converge: the same program is graded once per problem.
        key = _fingerprint(tests, func_name(problem), code)
        cached = self._grades.get(key)
        if cached is not None:
            self._grades.move_to_end(key)
            return cached
        grade = await grade_code_async(
            code, tests, func_name=func_name(problem), sandbox=self.sandbox, extract=False
        )
        if grade.detail.get("status") != "sandbox_error" and "could not be run" not in grade.reason:
            self._grades[key] = grade
            while len(self._grades) > _CACHE_SIZE:
                self._grades.popitem(last=False)
        return grade

    def grade(self, problem: Problem, completion: str) -> Grade:
        return run_blocking(self.grade_async(problem, completion))

    async def _signature(self, problem: Problem, code: str, public: list[CodeTest]) -> str | None:
        key = _fingerprint(public, func_name(problem), code)
        if key in self._signatures:
            self._signatures.move_to_end(key)
            return self._signatures[key]
        signature = await output_signature(
            code, public, func_name=func_name(problem), sandbox=self.sandbox
        )
        self._signatures[key] = signature
        while len(self._signatures) > _CACHE_SIZE:
            self._signatures.popitem(last=False)
        return signature

    async def vote_keys(
        self, problem: Problem, answers: Sequence[str | None]
    ) -> list[str | None] | None:
        public = [t for t in problem_tests(problem) if t.public]
        if not public:
            return None
        distinct = list(dict.fromkeys(a for a in answers if a is not None))
        signatures = await asyncio.gather(*(self._signature(problem, a, public) for a in distinct))
        found = dict(zip(distinct, signatures, strict=True))
        return [found[a] if a is not None else None for a in answers]
