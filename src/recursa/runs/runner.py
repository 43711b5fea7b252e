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
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, cast

from pydantic import ValidationError

from recursa.backends import Backend, Dispatcher, create_backend
from recursa.config import BackendConfig, RSAConfig, build_configs, validation_message
from recursa.engine import Engine, gather_or_cancel
from recursa.errors import ContextOverflowError, RecursaError, UsageError
from recursa.result import SolveResult, StepResult
from recursa.runs.journal import VERIFY, Journal
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
from recursa.runs.settings import EvalConfig, check_same_run, dataset_fingerprint, run_settings
from recursa.summaries import SUMMARIZE
from recursa.tasks import Problem, get_task
from recursa.tasks.code import CodeTask
from recursa.verification import choose_verified, verified_score, verify_population


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
    eval_values = evaluation.model_dump(exclude_unset=True) if evaluation else {}
    eval_values.update({k: v for k, v in settings.items() if k in eval_names})
    try:
        ev = EvalConfig(**eval_values)
    except ValidationError as exc:
        raise UsageError(validation_message(exc)) from exc
    values: dict[str, Any] = {}
    for given in (rsa, backend_config):
        if given is not None:
            values.update(given.model_dump(exclude_unset=True))
    values.update({k: v for k, v in settings.items() if k not in eval_names})
    cfg, bcfg = build_configs(
        apply_method(ev.method, values, ev.budget, verify_max_tokens=ev.verify_max_tokens)
    )
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
            summary_store=journal.view(SUMMARIZE),
        )

    async def on_step(self, problem: Problem, step: StepResult) -> None:
        task = get_task(problem.task)
        record = await grade_step(task, problem, step, self.cfg.seed)
        self.graded.setdefault(problem.id, []).append(record)
        self.progress.on_step(problem, step)

    async def finish(self, problem: Problem, result: SolveResult) -> None:
        """Verify (self-verify), then record the problem and hand its numbers to the book."""
        task = get_task(problem.task)
        records = self.graded.pop(problem.id)
        last = records[-1]
        final = result.steps[-1].candidates
        slot = result.selected_slot
        verify: dict[str, Any] | None = None
        outcome = Outcome(records, False, problem.task == "arc", is_rg=problem.task == "rg")
        if self.ev.method == "self-verify":
            verdicts = await verify_population(
                self.dispatcher,
                task,
                problem,
                final,
                seed=self.cfg.seed,
                temperature=self.ev.verify_temperature,
                max_tokens=self.ev.verify_max_tokens,
                context_tokens=self.bcfg.context_tokens,
                store=self.journal.view(VERIFY),
            )
            chosen, fallback = choose_verified(task, final, verdicts, self.cfg.seed, problem.id)
            slot = chosen.slot
            # The reference's definition: over the samples judged True, 0 when none is.
            outcome.verified_acc = verified_score([float(c) for c in last.correct], verdicts)
            outcome.verified_score = verified_score(last.scores, verdicts)
            outcome.verify_prompt_tokens = sum(v.prompt_tokens for v in verdicts)
            outcome.verify_completion_tokens = sum(v.completion_tokens for v in verdicts)
            verify = {
                "verdicts": [v.judged for v in verdicts],
                "fallback_to_majority": fallback,
                "verified_acc": outcome.verified_acc,
                "verified_score": outcome.verified_score,
            }
        outcome.final_correct = last.correct[slot]
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
        if verify is not None:
            record["verify"] = verify
        self.out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self.out.flush()
        self.book.add(self.index[problem.id], outcome)
        self.progress.done(problem)

    async def _worker(self, queue: Iterator[Problem]) -> None:
        for problem in queue:  # workers share one iterator: each problem is taken once
            self.progress.start(problem)
            try:
                result = await self.engine.run(problem)
            except ContextOverflowError as exc:
                raise ContextOverflowError(f"problem {problem.id!r}: {exc}") from exc
            await self.finish(problem, result)

    async def run(self) -> None:
        if self.cfg.sync_steps:
            for p in self.problems:
                self.progress.start(p)
            results = await self.engine.run_many(self.problems)
            for p, r in zip(self.problems, results, strict=True):
                await self.finish(p, r)
            return
        active = max(2, math.ceil(4 * self.dispatcher.concurrency / self.cfg.n))
        queue = iter(self.problems)
        workers = min(active, len(self.problems))
        await gather_or_cancel([self._worker(queue) for _ in range(workers)])


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
    run_dir = RunDir(out)
    run_dir.prepare(resume)
    run_dir.lock()
    try:
        return await _evaluate(benchmark, run_dir, resume, backend, cfg, bcfg, ev, progress)
    finally:
        run_dir.unlock()


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
    journal = Journal(run_dir.file(JOURNAL))
    try:
        if journal.get_meta("settings") is None:
            journal.set_meta("settings", json.dumps(recorded or current, sort_keys=True))
        journal.begin_session()
        return await _execute(
            problems, dataset, current, run_dir, journal, backend, cfg, bcfg, ev, show_progress
        )
    finally:
        journal.end_session()
        journal.close()


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
    if any(p.task == "code" for p in problems):
        code_task = get_task("code")
        assert isinstance(code_task, CodeTask)
        code_task.configure_sandbox(ev.sandbox)
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
