"""The page of one solved question (`recursa solve ... --view page.html`).

The engine kept every step (`keep_history`), so the lineage comes from the `SolveResult`
itself; prompts are rebuilt with the engine's prompt functions and the same backend's token
counter and context window, in the same process. With a reference answer every candidate is
graded; without one the nodes are shown ungraded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from recursa.backends.base import Backend
from recursa.config import BackendConfig, RSAConfig
from recursa.result import SolveResult
from recursa.runs.journal import GENERATE, JournalRow
from recursa.runs.rundir import write_text_atomic
from recursa.tasks import Problem, get_task
from recursa.view.lineage import NodeIn, StepIn, build_lineage
from recursa.view.overview import curves, problem_row, settings_summary
from recursa.view.page import render_page
from recursa.view.rebuild import Counter, PromptRebuilder
from recursa.view.runs import ViewRun


async def _grades(problem: Problem, result: SolveResult) -> list[list[Any]]:
    task = get_task(problem.task)
    out = []
    for step in result.steps:
        out.append(
            list(
                await asyncio.gather(*(task.grade_async(problem, c.text) for c in step.candidates))
            )
        )
    return out


def solve_page(
    problem: Problem,
    result: SolveResult,
    backend: Backend,
    rsa: RSAConfig,
    backend_config: BackendConfig,
) -> str:
    """The HTML page of one solved problem."""
    task = get_task(problem.task)
    graded = problem.answer is not None
    grades = asyncio.run(_grades(problem, result)) if graded else None
    steps_in, record_steps = [], []
    for t, step in enumerate(result.steps):
        nodes = []
        for c in step.candidates:
            g = grades[t][c.slot] if grades is not None else None
            nodes.append(
                NodeIn(
                    step=c.step,
                    slot=c.slot,
                    text=c.text,
                    answer=c.answer,
                    prompt_tokens=c.prompt_tokens,
                    completion_tokens=c.completion_tokens,
                    finish_reason=c.finish_reason,
                    parents=list(c.parents),
                    score=None if g is None else g.score,
                    reason="" if g is None else g.reason,
                )
            )
        majority = next(
            (
                n
                for n in nodes
                if step.majority_answer is not None
                and n.answer is not None
                and task.equivalent(n.answer, step.majority_answer)
            ),
            None,
        )
        majority_ok = None if majority is None or majority.score is None else majority.score >= 1
        steps_in.append(StepIn(step.step, nodes, step.agreement, step.majority_answer, majority_ok))
        record_steps.append(
            {
                "step": step.step,
                "answers": [n.answer for n in nodes],
                "scores": [n.score for n in nodes],
                "reasons": [n.reason for n in nodes],
                "majority_answer": step.majority_answer,
                "majority_correct": bool(majority_ok),
                "agreement": step.agreement,
            }
        )
    counter = Counter.of_backend(backend, backend_config.context_tokens)
    rebuilder = PromptRebuilder(rsa.model_dump(mode="json"), counter)
    lineage = build_lineage(task, problem, steps_in, rebuilder)
    selected = result.steps[-1].candidates[result.selected_slot]
    final_grade = grades[-1][result.selected_slot] if grades is not None else None
    final = {
        "answer": result.answer,
        "slot": result.selected_slot,
        "score": None if final_grade is None else final_grade.score,
        "correct": None if final_grade is None else final_grade.correct,
        "reason": "" if final_grade is None else final_grade.reason,
    }
    lineage.update(
        id=problem.id,
        question=problem.question,
        reference=None if problem.answer is None else str(problem.answer),
        final=final,
        usage=dict(result.usage),
        state="done",
    )
    assert selected.slot == result.selected_slot
    settings = {
        "benchmark": "(one question)",
        "eval": {"method": "rsa"},
        "rsa": rsa.model_dump(mode="json"),
        "backend": backend_config.model_dump(mode="json", exclude={"api_key"}),
        "dataset": {"problems": 1},
    }
    record = {
        "index": 0,
        "id": problem.id,
        "task": problem.task,
        "reference": lineage["reference"],
        "steps_run": result.steps_run,
        "final": final,
        "steps": record_steps,
    }
    rows = {
        problem.id: [
            JournalRow(
                problem.id,
                GENERATE,
                c.step,
                c.slot,
                c.text,
                c.finish_reason,
                c.prompt_tokens,
                c.completion_tokens,
                None,
                "",
                0,
                0.0,
            )
            for s in result.steps
            for c in s.candidates
        ]
    }
    run = ViewRun(Path("solve"), settings, None, [], {problem.id: record}, [problem.id], rows)
    row = problem_row(run, problem.id, 0)
    curve = curves(run)
    if not graded:
        row.update(ok=None, maj=[], acc=[], changed="", herded=False)
        for line in curve:
            line.update(mean_acc=None, majority_acc=None, pass_at_n=None)
            line.pop("mean_score", None)
    overview = {
        "index": 0,
        "label": "recursa solve",
        "path": "",
        "finished": True,
        "done": 1,
        "total": 1,
        "settings": settings_summary(run),
        "raw_settings": settings,
        "curve": curve,
        "problems_note": ""
        if graded
        else "no reference answer was given (--reference): the candidates are not graded",
        "rows": [row],
    }
    return render_page("recursa view: one question", [overview], [(0, 0, lineage)])


def write_solve_view(
    out: str | Path,
    problem: Problem,
    result: SolveResult,
    backend: Backend,
    rsa: RSAConfig,
    backend_config: BackendConfig,
) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, solve_page(problem, result, backend, rsa, backend_config))
    return path
