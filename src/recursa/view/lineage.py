"""One problem's population lineage as page data: nodes, edges, clusters and prompts.

A node is one candidate (step, slot): its text, extracted answer, grade, tokens, the slots of
the previous step it aggregated (`parents`, the engine's `draw_subset`), its answer cluster
(task equivalence over all the problem's candidates, largest first) and its prompt as
segments: literal strings (an index into the problem's string table) or `[slot]`, "the text
of that parent as the prompt showed it" (its `shown` text when that differs from its text),
so a page of thousands of problems does not repeat every candidate K times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from recursa.context import strip_think
from recursa.prompts import aggregation_text
from recursa.selection import cluster_answers
from recursa.tasks import Problem, Task
from recursa.tasks.arc import as_grid, parse_grid
from recursa.verification import verification_text
from recursa.view.rebuild import PromptRebuilder, Rebuilt

_FAILED_TEST = re.compile(r"^test (\d+) of \d+ \((public|private)\)")
#: Characters kept of each public code test shown beside a failing candidate.
_TEST_CHARS = 2000


@dataclass
class NodeIn:
    """What the page needs of one candidate, from a run directory or a solve result."""

    step: int
    slot: int
    text: str
    answer: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    parents: list[int] = field(default_factory=list)
    score: float | None = None
    reason: str = ""
    row: Any = None  # the JournalRow it came from, for the prompt check
    verdict: bool | None = None
    verify_text: str | None = None
    verify_row: Any = None
    #: The model's summary of this candidate, shown instead of it to the next step
    #: (`--summarize-candidates`).
    summary: str | None = None


@dataclass
class StepIn:
    step: int
    nodes: list[NodeIn]
    agreement: float | None = None
    majority_answer: str | None = None
    majority_correct: bool | None = None


class _Strings:
    def __init__(self) -> None:
        self.items: list[str] = []
        self._index: dict[str, int] = {}

    def add(self, text: str) -> int:
        found = self._index.get(text)
        if found is None:
            found = self._index[text] = len(self.items)
            self.items.append(text)
        return found


def _sentinel(i: int) -> str:
    return f"\x00cand{i}\x00"


def _segments(
    content: str, template: str, shown: list[str], parents: list[int], strings: _Strings
) -> list[Any]:
    """`content` as literal pieces and references to the parents' shown texts, using the
    prompt built with sentinels in place of the candidates; the whole text as one literal
    when it does not split (a cut candidate becomes a literal piece)."""
    pieces = template
    literals: list[str] = []
    for i in range(len(parents)):
        head, _, pieces = pieces.partition(_sentinel(i))
        literals.append(head)
    literals.append(pieces)
    out: list[Any] = []
    pos = 0
    for i, parent in enumerate(parents):
        lit, nxt = literals[i], literals[i + 1]
        if not content.startswith(lit, pos):
            return [strings.add(content)]
        pos += len(lit)
        if lit:
            out.append(strings.add(lit))
        want = shown[i]
        last = i == len(parents) - 1
        if content.startswith(want, pos) and (
            content.endswith(nxt) and pos + len(want) == len(content) - len(nxt)
            if last
            else content.startswith(nxt, pos + len(want))
        ):
            out.append([parent])
            pos += len(want)
            continue
        end = len(content) - len(nxt) if last else content.find(nxt, pos)
        if end < pos or (last and not content.endswith(nxt)):
            return [strings.add(content)]
        out.append(strings.add(content[pos:end]))
        pos = end
    tail = literals[-1]
    if content[pos:] != tail:
        return [strings.add(content)]
    if tail:
        out.append(strings.add(tail))
    return out


def _prompt(rebuilt: Rebuilt, segments: list[list[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "messages": [
            {"role": m["role"], "seg": seg}
            for m, seg in zip(rebuilt.messages, segments, strict=True)
        ],
        "check": rebuilt.check,
    }
    if rebuilt.note:
        out["note"] = rebuilt.note
    return out


def _shown(text: str, think: str) -> str:
    """A candidate's text as an aggregation prompt shows it when nothing is cut (`auto`
    keeps it whole then); a prompt that shows it otherwise holds it as a literal piece."""
    return (strip_think(text) if think == "strip" else text).strip()


def _failed_test(reason: str) -> dict[str, Any] | None:
    match = _FAILED_TEST.match(reason or "")
    if match is None:
        return None
    return {"index": int(match.group(1)) - 1, "public": match.group(2) == "public"}


def _public_tests(problem: Problem | None) -> list[dict[str, str]] | None:
    if problem is None:
        return None
    tests = problem.meta.get("public_tests")
    if not isinstance(tests, list):
        return None
    return [
        {
            "input": str(t.get("input", ""))[:_TEST_CHARS],
            "output": str(t.get("output", ""))[:_TEST_CHARS],
        }
        for t in tests
        if isinstance(t, dict)
    ]


def _arc(problem: Problem | None, reference: Any) -> dict[str, Any] | None:
    ref = as_grid(reference) if reference is not None else None
    out: dict[str, Any] = {"reference": ref}
    if problem is not None:
        train = problem.meta.get("train") or []
        out["train"] = [
            {"input": as_grid(p.get("input")), "output": as_grid(p.get("output"))}
            for p in train
            if isinstance(p, dict)
        ]
        out["test_input"] = as_grid(problem.meta.get("test_input"))
    return out


def build_lineage(
    task: Task,
    problem: Problem | None,
    steps: list[StepIn],
    rebuilder: PromptRebuilder | None,
    *,
    verify_max_tokens: int = 16,
) -> dict[str, Any]:
    """The page data of one problem in one run (see the module docstring)."""
    strings = _Strings()
    think = rebuilder.think if rebuilder is not None else "auto"
    everyone = [n for s in steps for n in s.nodes]
    clusters = cluster_answers(task, [n.answer for n in everyone])
    clusters.sort(key=lambda c: -len(c.members))
    cluster_of: dict[tuple[int, int], int] = {}
    for ci, cluster in enumerate(clusters):
        for m in cluster.members:
            cluster_of[(everyone[m].step, everyone[m].slot)] = ci
    shown_by_step: dict[int, list[str]] = {}
    texts_by_step: dict[int, list[str]] = {}
    out_steps = []
    plain: dict[str, Any] | None = None
    for step in steps:
        texts_by_step[step.step] = [
            n.summary if n.summary is not None else n.text for n in step.nodes
        ]
        shown_by_step[step.step] = [_shown(t, think) for t in texts_by_step[step.step]]
        nodes = []
        for n in step.nodes:
            node: dict[str, Any] = {
                "slot": n.slot,
                "text": n.text,
                "answer": n.answer,
                "score": n.score,
                "ok": None if n.score is None else int(n.score >= 1.0),
                "reason": n.reason,
                "pt": n.prompt_tokens,
                "ct": n.completion_tokens,
                "fin": n.finish_reason,
                "parents": list(n.parents),
                "cl": cluster_of.get((n.step, n.slot), -1),
            }
            shown = shown_by_step[step.step][n.slot]
            if shown != n.text:
                node["shown"] = shown
            if n.summary is not None:
                node["summary"] = n.summary
            if task.name == "arc" and n.answer is not None:
                node["grid"] = parse_grid(n.answer)[0]
            failed = _failed_test(n.reason)
            if failed is not None:
                node["failed_test"] = failed
            if problem is not None and rebuilder is not None:
                node["prompt"] = _node_prompt(
                    task, problem, n, texts_by_step, shown_by_step, rebuilder, strings
                )
                if n.step == 1 and plain is None:
                    plain = node["prompt"]
            if n.verdict is not None or n.verify_text is not None:
                node["verdict"] = n.verdict
                node["vtext"] = n.verify_text
                if problem is not None and rebuilder is not None:
                    rebuilt = rebuilder.verification(
                        task, problem, n.text, verify_max_tokens, n.verify_row
                    )
                    template = verification_text(task, problem, _sentinel(0))
                    segs = [
                        _segments(m["content"], template, [shown], [n.slot], strings)
                        for m in rebuilt.messages
                    ]
                    node["vprompt"] = _prompt(rebuilt, segs)
                    node["vprompt"]["same_step"] = 1
            nodes.append(node)
        out_steps.append(
            {
                "step": step.step,
                "agreement": step.agreement,
                "majority_answer": step.majority_answer,
                "majority_correct": step.majority_correct,
                "nodes": nodes,
            }
        )
    data: dict[str, Any] = {
        "task": task.name,
        "steps": out_steps,
        "clusters": [{"answer": c.answer, "size": len(c.members)} for c in clusters],
        "strings": strings.items,
    }
    if task.name == "arc":
        data["arc"] = _arc(problem, problem.answer if problem is not None else None)
    tests = _public_tests(problem) if task.name == "code" else None
    if tests is not None:
        data["tests"] = tests
    return data


def _node_prompt(
    task: Task,
    problem: Problem,
    node: NodeIn,
    texts_by_step: dict[int, list[str]],
    shown_by_step: dict[int, list[str]],
    rebuilder: PromptRebuilder,
    strings: _Strings,
) -> dict[str, Any]:
    if node.step == 1 or not node.parents:
        rebuilt = rebuilder.plain(task, problem, node.row)
        return _prompt(rebuilt, [[strings.add(m["content"])] for m in rebuilt.messages])
    texts = texts_by_step.get(node.step - 1, [])
    shown = shown_by_step.get(node.step - 1, [])
    raw = [texts[p] for p in node.parents]
    rebuilt = rebuilder.aggregation(task, problem, raw, node.row)
    template = aggregation_text(task, problem, [_sentinel(i) for i in range(len(raw))])
    parents_shown = [shown[p] for p in node.parents]
    segs = [
        _segments(m["content"], template, parents_shown, node.parents, strings)
        for m in rebuilt.messages
    ]
    return _prompt(rebuilt, segs)
