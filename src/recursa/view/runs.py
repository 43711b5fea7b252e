"""A run directory as `recursa view` reads it, finished or still being written.

problems.jsonl holds every finished problem (graded); the journal holds every completion,
also those of problems still running (shown ungraded). The problems' texts are not in the
run directory: they are loaded again from the recorded benchmark spec (checked against the
recorded dataset fingerprint), or passed in by a caller that evaluated a list of problems.
Without them the lineage, texts and grades still show; the question and prompts do not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recursa.engine import draw_subset
from recursa.errors import RecursaError
from recursa.runs.journal import GENERATE, VERIFY, JournalReader, JournalRow
from recursa.runs.rundir import JOURNAL, METRICS, PROBLEMS, SUMMARY, RunDir
from recursa.summaries import SUMMARIZE
from recursa.tasks import Problem, get_task
from recursa.view.lineage import NodeIn, StepIn, build_lineage
from recursa.view.rebuild import PromptRebuilder, RecordedCounter

log = logging.getLogger("recursa")


def read_records(path: Path) -> list[dict[str, Any]]:
    """problems.jsonl, tolerating a last line still being written by a running eval."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            if n == len(lines):  # the line a running eval is writing now
                break
            raise RecursaError(f"{path} line {n} is not valid JSON") from exc
    return rows


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None  # being replaced right now: treated as not written yet
    return data if isinstance(data, dict) else None


@dataclass
class ViewRun:
    """One run directory, read once."""

    path: Path
    settings: dict[str, Any]
    summary: dict[str, Any] | None
    metrics: list[dict[str, Any]]
    records: dict[str, dict[str, Any]]
    #: Problem ids in dataset order (finished and running).
    order: list[str]
    rows: dict[str, list[JournalRow]]
    problems: dict[str, Problem] = field(default_factory=dict)
    problems_note: str = ""

    @property
    def label(self) -> str:
        method = (self.summary or {}).get("method") or self.settings.get("eval", {}).get(
            "method", "?"
        )
        return f"{self.path.name} ({method})"

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def rsa(self) -> dict[str, Any]:
        return dict(self.settings.get("rsa", {}))

    def task_name(self, pid: str) -> str:
        record = self.records.get(pid)
        if record is not None:
            return str(record.get("task", "general"))
        problem = self.problems.get(pid)
        return problem.task if problem is not None else str(self.rsa.get("task", "general"))


def _load_problems(settings: dict[str, Any]) -> tuple[dict[str, Problem], str]:
    """The run's problems, loaded again from its benchmark spec; empty and why when not."""
    spec = settings.get("benchmark")
    dataset = settings.get("dataset", {})
    if not isinstance(spec, str) or spec == "problems":
        return {}, "the run was given its problems in code; pass them to recursa.view"
    ev, rsa = settings.get("eval", {}), settings.get("rsa", {})
    try:
        from recursa.benchmarks import load_benchmark
        from recursa.runs.settings import dataset_fingerprint

        loaded = load_benchmark(
            spec,
            limit=ev.get("limit"),
            size=ev.get("size"),
            seed=int(rsa.get("seed", 0)),
            strict=bool(ev.get("strict", False)),
            since=ev.get("since"),
            until=ev.get("until"),
            benchmark_format=ev.get("benchmark_format", "auto"),
        )
    except (RecursaError, OSError, ImportError, ValueError) as exc:
        return {}, f"the benchmark {spec} could not be loaded again: {exc}"
    problems = list(loaded.problems)
    want = dataset.get("fingerprint")
    if want is not None and dataset_fingerprint(problems) != want:
        return {}, f"the benchmark {spec} has changed since the run (its fingerprint differs)"
    return {p.id: p for p in problems}, ""


def load_view_run(path: str | Path, problems: Sequence[Problem] | None = None) -> ViewRun:
    """Read a run directory (finished or running) for the view."""
    run = RunDir(path)
    settings = run.require_settings()
    summary = _read_json(run.file(SUMMARY))
    metrics = read_records(run.file(METRICS)) if summary is not None else []
    records = {str(r["id"]): r for r in read_records(run.file(PROBLEMS))}
    rows: dict[str, list[JournalRow]] = {}
    if run.file(JOURNAL).is_file():
        reader = JournalReader(run.file(JOURNAL))
        try:
            for row in reader.rows():
                rows.setdefault(row.problem_id, []).append(row)
        finally:
            reader.close()
    if problems is not None:
        by_id, note = {p.id: p for p in problems}, ""
    else:
        by_id, note = _load_problems(settings)
    if by_id:
        order = [pid for pid in by_id if pid in records or pid in rows]
    else:
        order = sorted(records, key=lambda pid: int(records[pid].get("index", 0)))
        order += [pid for pid in rows if pid not in records]
    return ViewRun(run.path, settings, summary, metrics, records, order, rows, by_id, note)


def _step_nodes(run: ViewRun, pid: str) -> list[StepIn]:
    """The problem's population per step, from its record and its journal rows."""
    rsa = run.rsa
    n, k, seed = int(rsa.get("n", 1)), int(rsa.get("k", 1)), int(rsa.get("seed", 0))
    generated = [r for r in run.rows.get(pid, []) if r.phase == GENERATE]
    verify_rows = {r.slot: r for r in run.rows.get(pid, []) if r.phase == VERIFY}
    summaries = {(r.step, r.slot): r.text for r in run.rows.get(pid, []) if r.phase == SUMMARIZE}
    by_step: dict[int, dict[int, JournalRow]] = {}
    for r in generated:
        by_step.setdefault(r.step, {})[r.slot] = r
    record = run.records.get(pid)
    graded = {int(s["step"]): s for s in record.get("steps", [])} if record else {}
    verdicts = (record or {}).get("verify", {}).get("verdicts")
    task = get_task(run.task_name(pid))
    steps = []
    for t in sorted(set(by_step) | set(graded)):
        rows, rec = by_step.get(t, {}), graded.get(t)
        size = len(rec["answers"]) if rec else (max(rows) + 1 if rows else 0)
        nodes = []
        for slot in range(size):
            row = rows.get(slot)
            text = row.text if row is not None else ""
            node = NodeIn(
                step=t,
                slot=slot,
                text=text,
                answer=rec["answers"][slot] if rec else task.extract(text),
                prompt_tokens=row.prompt_tokens if row else 0,
                completion_tokens=row.completion_tokens if row else 0,
                finish_reason=row.finish_reason if row else "",
                parents=draw_subset(seed, pid, t, slot, n, k) if t > 1 else [],
                score=float(rec["scores"][slot]) if rec else None,
                reason=str(rec["reasons"][slot]) if rec else "",
                row=row,
                summary=summaries.get((t, slot)),
            )
            if t == max(graded, default=0) and (verdicts is not None or verify_rows):
                vrow = verify_rows.get(slot)
                node.verdict = verdicts[slot] if verdicts is not None else None
                node.verify_text = vrow.text if vrow is not None else None
                node.verify_row = vrow
            nodes.append(node)
        steps.append(
            StepIn(
                step=t,
                nodes=nodes,
                agreement=rec.get("agreement") if rec else None,
                majority_answer=rec.get("majority_answer") if rec else None,
                majority_correct=rec.get("majority_correct") if rec else None,
            )
        )
    return steps


class RunLineages:
    """Builds the lineage data of a run's problems, sharing one prompt rebuilder."""

    def __init__(self, run: ViewRun) -> None:
        self.run = run
        self.counter = RecordedCounter(dict(run.settings.get("backend", {})))
        self.rebuilder = PromptRebuilder(run.rsa, self.counter)
        ev = run.settings.get("eval", {})
        self.verify_max_tokens = int(ev.get("verify_max_tokens", 16))

    def lineage(self, pid: str) -> dict[str, Any]:
        run = self.run
        problem = run.problems.get(pid)
        task = get_task(run.task_name(pid))
        record = run.records.get(pid)
        data = build_lineage(
            task,
            problem,
            _step_nodes(run, pid),
            self.rebuilder if problem is not None else None,
            verify_max_tokens=self.verify_max_tokens,
        )
        data["id"] = pid
        data["question"] = problem.question if problem is not None else None
        if problem is None:
            data["note"] = run.problems_note
        data["reference"] = None if record is None else record.get("reference")
        if data["reference"] is None and problem is not None and problem.answer is not None:
            data["reference"] = str(problem.answer)
        if record is not None:
            data["final"] = record.get("final")
            data["verify"] = record.get("verify")
            data["usage"] = record.get("usage")
        data["state"] = "done" if record is not None else "running"
        return data

    def close(self) -> None:
        self.counter.close()
