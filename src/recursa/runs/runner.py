"""`evaluate`: a benchmark through the engine, journaled, graded, resumable.

Problems enter the engine through a window (a few more than keep the dispatcher busy), so
each finishes early, its record is streamed to problems.jsonl and memory stays bounded; with
`sync_steps` the whole set goes through the engine's `run_many` (the reference barrier).
Every completion is committed to the journal as it arrives; a resumed run replays the journal
through the same keyed engine and asks the model only for what is missing, so it ends with
exactly the files an uninterrupted run would write (wall time aside).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, cast

from pydantic import ValidationError

from recursa.backends import Backend, Dispatcher, create_backend
from recursa.config import (
    BackendConfig,
    RSAConfig,
    build_configs,
    merge_settings,
    validation_message,
)
from recursa.engine import Engine
from recursa.errors import RecursaError, UsageError
from recursa.final_selection import SELECTIONS
from recursa.result import SolveResult, StepResult
from recursa.runs.journal import Journal
from recursa.runs.methods import apply_method, generations_per_problem
from recursa.runs.metrics import MetricsBook, Outcome, StepRecord, grade_step
from recursa.runs.progress import EvalProgress
from recursa.runs.report import markdown_report
from recursa.runs.rundir import (
    JOURNAL,
    METRICS,
    PROBLEMS,
    REPORT,
    SETTINGS,
    SUMMARY,
    RunDir,
    sort_records,
    write_json,
    write_jsonl,
    write_text_atomic,
)
from recursa.runs.session import journal_session, run_directory
from recursa.runs.settings import EvalConfig, check_same_run, dataset_fingerprint, run_settings
from recursa.tasks import Problem, TaskSet


class ProblemSet(Protocol):
    """What a benchmark loader returns (recursa.benchmarks.Dataset)."""

    name: str
    problems: list[Problem]
    skipped: list[tuple[int, str]]


@dataclass
class EvalResult:
    """A finished evaluation: its directory, summary.json and the metrics.jsonl lines."""

    run_dir: Path
    summary: dict[str, Any]
    steps: list[dict[str, Any]]


@dataclass
class _Loaded:
    name: str
    problems: list[Problem]
    skipped: list[tuple[int, str]]


def _load(
    benchmark: str | ProblemSet | Sequence[Problem], ev: EvalConfig, seed: int
) -> tuple[str, ProblemSet]:
    """The benchmark's name (the spec, for a spec) and its problems."""
    if isinstance(benchmark, str):
        from recursa.benchmarks import load_benchmark

        dataset = load_benchmark(
            benchmark,
            limit=ev.limit,
            size=ev.size,
            seed=seed,
            strict=ev.strict,
            since=ev.since,
            until=ev.until,
            benchmark_format=ev.benchmark_format,
        )
        return benchmark, dataset
    if isinstance(benchmark, Sequence):
        name, problems, skipped = "problems", list(cast(Sequence[Problem], benchmark)), []
    else:
        name, problems, skipped = benchmark.name, list(benchmark.problems), benchmark.skipped
    limit = ev.limit or len(problems)
    return name, _Loaded(name, problems[:limit], list(skipped))


def resolve_settings(
    rsa: RSAConfig | None,
    backend_config: BackendConfig | None,
    evaluation: EvalConfig | None,
    settings: dict[str, Any],
) -> tuple[RSAConfig, BackendConfig, EvalConfig]:
    """Flat settings (RSA, backend and evaluation names) into the three models, with the
    method's N, K, T applied."""
    eval_names = set(EvalConfig.model_fields)
    mine = {k: v for k, v in settings.items() if k in eval_names}
    try:
        ev = EvalConfig(**merge_settings([evaluation], mine))
    except ValidationError as exc:
        raise UsageError(validation_message(exc)) from exc
    rest = {k: v for k, v in settings.items() if k not in eval_names}
    values = merge_settings([rsa, backend_config], rest)
    cfg, bcfg = build_configs(apply_method(ev.method, values, ev.budget))
    return cfg, bcfg, ev


def _check_problems(name: str, problems: list[Problem], skipped: list[tuple[int, str]]) -> None:
    if not problems and skipped:
        row, why = skipped[0]
        raise UsageError(
            f"the benchmark {name} has no problems to evaluate: all {len(skipped)} rows were "
            f"skipped (row {row}: {why})"
        )
    if not problems:
        raise UsageError(f"the benchmark {name} has no problems to evaluate")
    seen: set[str] = set()
    for p in problems:
        if p.id in seen:
            raise UsageError(f"the benchmark {name} has two problems with the id {p.id!r}")
        seen.add(p.id)


class _Run:
    """One session of an evaluation: the engine, the journal, the records."""

    def __init__(
        self,
        problems: list[Problem],
        cfg: RSAConfig,
        bcfg: BackendConfig,
        ev: EvalConfig,
        journal: Journal,
        dispatcher: Dispatcher,
        progress: EvalProgress,
        problems_out: IO[str],
    ) -> None:
        self.problems, self.cfg, self.bcfg, self.ev = problems, cfg, bcfg, ev
        self.journal, self.dispatcher, self.progress = journal, dispatcher, progress
        self.out = problems_out
        self.book = MetricsBook(cfg.t)
        self.index = {p.id: i for i, p in enumerate(problems)}
        self.graded: dict[str, list[StepRecord]] = {}
        # This run's task instances, built with its resources (the code sandbox settings).
        self.tasks = TaskSet({"sandbox": ev.sandbox})
        self.selection = SELECTIONS.get(cfg.selection)
        #: Completions without text outside <think> blocks (candidates without an answer).
        self.empty_completions = 0
        self.engine = Engine(
            dispatcher,
            cfg,
            context_tokens=bcfg.context_tokens,
            store=journal,
            on_step=self.on_step,
            on_generation=progress.on_generation,
            keep_history=False,
            tasks=self.tasks,
        )

    async def on_step(self, problem: Problem, step: StepResult) -> None:
        record = await grade_step(self.tasks(problem.task), problem, step, self.cfg.seed)
        self.graded.setdefault(problem.id, []).append(record)
        self.progress.on_step(problem, step)

    async def finish(self, problem: Problem, result: SolveResult) -> None:
        """Record the problem (with what its final selection found) and hand its numbers to
        the book."""
        records = self.graded.pop(problem.id)
        last = records[-1]
        final = result.steps[-1].candidates
        slot = result.selected_slot
        details = result.selection_details
        metrics = self.selection.problem_metrics(details, last.scores, last.correct)
        usage = result.selection_usage
        outcome = Outcome(
            records,
            last.correct[slot],
            selection=self.selection.name,
            selection_metrics=metrics,
            selection_prompt_tokens=usage.get("prompt_tokens", 0),
            selection_completion_tokens=usage.get("completion_tokens", 0),
            selection_generations=usage.get("generations", 0),
            paper_metric=self.tasks(problem.task).paper_metric,
        )
        record: dict[str, Any] = {
            "index": self.index[problem.id],
            "id": problem.id,
            "task": problem.task,
            "reference": problem.answer,
            "steps_run": result.steps_run,
            "final": {
                "answer": final[slot].answer,
                "slot": slot,
                "score": last.scores[slot],
                "correct": last.correct[slot],
                "reason": last.reasons[slot],
            },
            "steps": [r.to_dict() for r in records],
            "usage": dict(result.usage),
        }
        self.empty_completions += result.usage.get("empty_completions", 0)
        if details is not None:
            record[self.selection.name] = {**details, **metrics}
        self.out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self.out.flush()
        self.book.add(self.index[problem.id], outcome)
        self.progress.done(problem)

    async def run(self) -> None:
        window = min(self.engine.window(), len(self.problems))
        await self.engine.run_each(
            self.problems, self.finish, on_start=self.progress.start, window=window
        )


async def evaluate_async(
    benchmark: str | ProblemSet | Sequence[Problem],
    *,
    out: str | Path,
    resume: bool = False,
    backend: Backend | str | None = None,
    rsa: RSAConfig | None = None,
    backend_config: BackendConfig | None = None,
    evaluation: EvalConfig | None = None,
    progress: bool = False,
    **settings: Any,
) -> EvalResult:
    """Evaluate a benchmark (a spec such as "rg:basic_arithmetic" or "aime25", a loaded
    dataset, or a list of Problems) into the run directory `out`. Settings are RSAConfig,
    BackendConfig and EvalConfig fields by name (method, budget, limit, size, n, k, t, ...).
    `resume=True` continues the run in `out`, which must have the same settings."""
    if isinstance(backend, str):
        settings = {**settings, "backend": backend}
    cfg, bcfg, ev = resolve_settings(rsa, backend_config, evaluation, settings)
    with run_directory(out, resume) as run_dir:
        return await _evaluate(benchmark, run_dir, resume, backend, cfg, bcfg, ev, progress)


async def _evaluate(
    benchmark: str | ProblemSet | Sequence[Problem],
    run_dir: RunDir,
    resume: bool,
    backend: Backend | str | None,
    cfg: RSAConfig,
    bcfg: BackendConfig,
    ev: EvalConfig,
    show_progress: bool,
) -> EvalResult:
    spec = benchmark if isinstance(benchmark, str) else None
    recorded = _recorded_settings(run_dir) if resume else None
    if recorded is not None and spec is not None:
        check_same_run(recorded, run_settings(spec, cfg, bcfg, ev, {}))
    name, dataset = _load(benchmark, ev, cfg.seed)
    problems: list[Problem] = list(dataset.problems)
    _check_problems(name, problems, list(dataset.skipped))
    info = {
        "name": name,
        "problems": len(problems),
        "skipped": len(dataset.skipped),
        "fingerprint": dataset_fingerprint(problems),
    }
    current = run_settings(name, cfg, bcfg, ev, info)
    if recorded is not None:
        check_same_run(recorded, current)
    # settings.json first: a process killed at any later point leaves a resumable run.
    write_json(run_dir.file(SETTINGS), current)
    with journal_session(run_dir.file(JOURNAL), recorded or current) as journal:
        return await _execute(
            problems, dataset, current, run_dir, journal, backend, cfg, bcfg, ev, show_progress
        )


def _recorded_settings(run_dir: RunDir) -> dict[str, Any]:
    journal_path = run_dir.file(JOURNAL)
    stored: str | None = None
    if journal_path.exists():
        journal = Journal(journal_path)  # checks integrity: a damaged journal stops here
        try:
            stored = journal.get_meta("settings")
        finally:
            journal.close()
    if stored is not None:
        data: dict[str, Any] = json.loads(stored)
        return data
    from_file = run_dir.read_settings()
    if from_file is None:
        raise RecursaError(f"the run in {run_dir.path} has no recorded settings to resume with")
    return from_file


async def _execute(
    problems: list[Problem],
    dataset: ProblemSet,
    settings: dict[str, Any],
    run_dir: RunDir,
    journal: Journal,
    backend: Backend | str | None,
    cfg: RSAConfig,
    bcfg: BackendConfig,
    ev: EvalConfig,
    show_progress: bool,
) -> EvalResult:
    model = backend if isinstance(backend, Backend) else create_backend(bcfg)
    progress = EvalProgress(len(problems), cfg.t, show_progress, lambda: journal.requested_tokens)
    try:
        dispatcher = Dispatcher.from_config(model, bcfg)
        with run_dir.file(PROBLEMS).open("w", encoding="utf-8") as out:
            session = _Run(problems, cfg, bcfg, ev, journal, dispatcher, progress, out)
            await session.run()
    finally:
        progress.close()
        if not isinstance(backend, Backend):
            await model.aclose()
    sort_records(run_dir.file(PROBLEMS))
    lines = session.book.step_lines()
    write_jsonl(run_dir.file(METRICS), lines)
    journal.end_session()
    summary = {
        "benchmark": settings["benchmark"],
        "method": ev.method,
        "problems": len(problems),
        "skipped": len(dataset.skipped),
        "skipped_rows": [list(s) for s in dataset.skipped[:50]],
        "n": cfg.n,
        "k": cfg.k,
        "t": cfg.t,
        "budget": ev.budget,
        "generations_per_problem": generations_per_problem(ev.method, cfg),
        "metrics": session.book.final(),
        "run": {
            "wall_s": round(journal.wall_seconds(), 3),
            "sessions": journal.sessions(),
            "requested_this_session": journal.requested,
            "reused_from_journal": journal.reused,
            "journaled": journal.count(),
            "retries_this_session": dispatcher.usage.retries,
            "empty_completions": session.empty_completions,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
    write_json(run_dir.file(SUMMARY), summary)
    write_text_atomic(run_dir.file(REPORT), markdown_report(settings, lines, summary))
    return EvalResult(run_dir.path, summary, lines)


def evaluate(benchmark: str | ProblemSet | Sequence[Problem], **kwargs: Any) -> EvalResult:
    """Synchronous `evaluate_async` (same arguments, same result)."""
    return asyncio.run(evaluate_async(benchmark, **kwargs))
