"""Where build-data's problems (and perhaps candidates) come from: a benchmark or an eval run.

A benchmark source is anything `recursa eval` accepts, loaded with
`recursa.benchmarks.load_benchmark` (the same problems, ids, tasks and grading data as
evaluation). An eval run directory (it holds `journal.sqlite` and `settings.json`) is
re-loaded from its recorded benchmark settings, checked against the recorded fingerprint of
its problems, and its journal's completions of one step become the candidates: no model is
asked for anything.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recursa.errors import RecursaError, UsageError
from recursa.tasks import Problem

log = logging.getLogger("recursa")

Candidates = dict[str, list[str]]


@dataclass
class Source:
    """Problems to build rows from; `candidates` is set when they come from an eval run."""

    name: str
    problems: list[Problem]
    candidates: Candidates | None = None
    skipped: list[tuple[int, str]] = field(default_factory=list)
    #: In a mixture: each problem's own source (its rows' data_source), by problem id.
    origins: dict[str, str] = field(default_factory=dict)


def parse_entry(entry: str) -> tuple[str, int | None]:
    """`SOURCE@COUNT` -> (SOURCE, COUNT); a plain SOURCE -> (SOURCE, None)."""
    spec, at, count = entry.strip().rpartition("@")
    if at and count.strip().isdigit():
        if int(count) < 1:
            raise UsageError(f"--source {entry!r}: the count must be at least 1")
        return spec.strip(), int(count)
    return entry.strip(), None


def _sample(problems: list[Problem], count: int | None, seed: int, spec: str) -> list[Problem]:
    """`count` problems of a source, a seeded sample kept in the source's order."""
    if count is None or count >= len(problems):
        return problems
    from recursa.hashing import stable_rng

    picked = sorted(stable_rng("rl-source", seed, spec).sample(range(len(problems)), count))
    return [problems[i] for i in picked]


def load_sources(
    entries: list[str],
    *,
    size: int | None,
    limit: int | None,
    seed: int,
    run_step: int = 1,
    max_candidates: int | None = None,
) -> Source:
    """The problems of one or more SOURCE[@COUNT] entries, in entry order. COUNT takes that
    many problems from the source (a seeded sample; for `rg:TASKS` that many generated per
    task, as --size means there). A problem id that another source already used becomes
    `SOURCE#ID`. One entry without a count is `load_source` itself."""
    single = len(entries) == 1 and parse_entry(entries[0])[1] is None
    problems: list[Problem] = []
    candidates: Candidates = {}
    skipped: list[tuple[int, str]] = []
    origins: dict[str, str] = {}
    for entry in entries:
        spec, count = parse_entry(entry)
        procedural = spec.startswith("rg:")
        part = load_source(
            spec,
            size=count if procedural and count is not None else size,
            limit=limit if single else None,
            seed=seed,
            run_step=run_step,
            max_candidates=max_candidates,
        )
        chosen = part.problems if procedural else _sample(part.problems, count, seed, spec)
        skipped += part.skipped
        for problem in chosen:
            own = problem.id
            if own in origins:
                problem.id = f"{spec}#{own}"
            origins[problem.id] = part.name
            if part.candidates and own in part.candidates:
                candidates[problem.id] = part.candidates[own]
            problems.append(problem)
    if limit is not None:
        problems = problems[:limit]
    if single:
        origins = {}  # one source: rows are named after it, as Source.name says
    name = " + ".join(entries)
    return Source(name, problems, candidates or None, skipped, origins)


def is_run_dir(spec: str) -> bool:
    """Whether SOURCE names an eval run directory (one holding a journal)."""
    from recursa.runs.rundir import JOURNAL

    path = Path(spec).expanduser()
    return path.is_dir() and (path / JOURNAL).is_file()


def load_source(
    spec: str,
    *,
    size: int | None,
    limit: int | None,
    seed: int,
    run_step: int = 1,
    max_candidates: int | None = None,
) -> Source:
    """The problems of SOURCE; for an eval run, with the candidates its journal holds."""
    if is_run_dir(spec):
        return load_run(spec, run_step=run_step, limit=limit, max_candidates=max_candidates)
    from recursa.benchmarks import load_benchmark

    dataset = load_benchmark(spec, size=size, limit=limit, seed=seed)
    if dataset.skipped:
        row, why = dataset.skipped[0]
        log.warning(
            "skipped %d rows of %s that lack what their task needs (row %d: %s)",
            len(dataset.skipped),
            spec,
            row,
            why,
        )
    if not dataset.problems:
        raise UsageError(f"{spec} holds no usable problems")
    return Source(spec, list(dataset.problems), None, list(dataset.skipped))


def _recorded(path: Path) -> dict[str, Any]:
    from recursa.runs.rundir import SETTINGS

    file = path / SETTINGS
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecursaError(f"cannot read the run's settings {file}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("benchmark"), str):
        raise RecursaError(f"{file} does not name the run's benchmark")
    return data


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}


def load_run(
    spec: str,
    *,
    run_step: int = 1,
    limit: int | None = None,
    max_candidates: int | None = None,
) -> Source:
    """An eval run's problems (re-loaded as it recorded them) and its step's completions."""
    from recursa.benchmarks import load_benchmark
    from recursa.runs.journal import GENERATE, Journal
    from recursa.runs.rundir import JOURNAL
    from recursa.runs.settings import dataset_fingerprint

    path = Path(spec).expanduser()
    data = _recorded(path)
    ev, rsa = _section(data, "eval"), _section(data, "rsa")
    dataset = load_benchmark(
        str(data["benchmark"]),
        limit=ev.get("limit"),
        size=ev.get("size"),
        seed=int(rsa.get("seed", 0)),
        strict=bool(ev.get("strict", False)),
    )
    problems = list(dataset.problems)
    recorded = _section(data, "dataset").get("fingerprint")
    if recorded is not None and recorded != dataset_fingerprint(problems):
        raise UsageError(
            f"the problems of {data['benchmark']} no longer match those of the run in {path} "
            "(the data file or the generator changed)"
        )
    if limit is not None:
        problems = problems[:limit]
    n = int(rsa.get("n", 0))
    slots = min(n, max_candidates) if max_candidates else n
    journal = Journal(path / JOURNAL)
    candidates: Candidates = {}
    incomplete = 0
    try:
        for problem in problems:
            texts = []
            for slot in range(slots):
                completion = journal.get(problem.id, GENERATE, run_step, slot)
                if completion is None:
                    break
                texts.append(completion.text)
            if len(texts) == slots and slots:
                candidates[problem.id] = texts
            else:
                incomplete += 1
    finally:
        journal.close()
    if incomplete:
        log.warning(
            "%d of %d problems of the run in %s lack a complete step-%d population; they are "
            "left out",
            incomplete,
            len(problems),
            path,
            run_step,
        )
    kept = [p for p in problems if p.id in candidates]
    if not kept:
        raise UsageError(f"the run in {path} holds no complete step-{run_step} population")
    return Source(str(data["benchmark"]), kept, candidates)
