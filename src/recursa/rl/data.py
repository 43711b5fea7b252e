"""`recursa rl build-data`: the paper's aggregation-aware training mixture, as verl parquet.

1. Problems come from one or more SOURCEs (anything `recursa eval` accepts, or an eval
   RUN_DIR), each optionally weighted as `SOURCE@COUNT` (COUNT problems from it: a seeded
   sample, or for `rg:TASKS` COUNT generated per task); `--preset paper` is the paper's
   mixture (16,000 DeepScaleR problems and 2,048 each of six Reasoning Gym tasks).
2. The problems are split into train and validation (`val_fraction`, by problem, seeded),
   and in each split `agg_fraction` of them (rounded) get an aggregation prompt, the rest
   a plain prompt.
3. Problems with an aggregation prompt need M candidates from the reference model: sampled
   with the engine at T = 1 (N = M, temperature 1), each completion journaled in
   OUT/journal.sqlite as it arrives, so an interrupted build resumes with `--resume` and
   never asks twice; or, for a RUN_DIR source, read from that run's journal (step 1 by
   default) without calling any model.
4. Rows (see `recursa.rl.rows`) go to OUT/train.parquet and OUT/val.parquet, and a
   summary to OUT/summary.json. The same settings and candidates give byte-identical files.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from tqdm import tqdm

from recursa.backends import Dispatcher, create_backend
from recursa.config import BackendConfig, RSAConfig
from recursa.engine import CompletionStore, Engine
from recursa.errors import UsageError
from recursa.result import Candidate
from recursa.rl.rows import build_row, mixture, split_validation, write_parquet
from recursa.tasks import Problem
from recursa.think import keep_think_alias

TRAIN_FILE = "train.parquet"
VAL_FILE = "val.parquet"


class BuildSettings(BaseModel):
    """`recursa rl build-data`: the training mixture of plain and aggregation prompts."""

    model_config = ConfigDict(extra="forbid")

    source: list[str] = Field(
        default_factory=list,
        description="Problems: anything 'recursa eval' accepts (a benchmark name, rg:TASKS, "
        "a local file), or an eval run directory whose journal holds candidates; repeat for "
        "a mixture, each as SOURCE@COUNT to take COUNT problems from it (rg:TASKS: COUNT "
        "per task).",
        json_schema_extra={"metavar": "SOURCE[@COUNT]"},
    )
    preset: Literal["paper"] | None = Field(
        None,
        description="A named mixture instead of --source: 'paper' is the paper's RL data "
        "(deepscaler@16000 and 2,048 each of tower_of_hanoi, sokoban, knight_swap, "
        "rush_hour, arc_1d, sentence_reordering).",
    )
    out: str = Field(description="Output directory: train.parquet, val.parquet, journal.")
    k: int = Field(4, ge=1, description="Candidates shown in each aggregation prompt, K.")
    agg_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="Share of rows that are aggregation prompts."
    )
    candidates_per_problem: int | None = Field(
        None, ge=1, description="Candidates sampled per problem, M >= K (default: K)."
    )
    seed: int = Field(0, description="Seed: splits, mixture, subsets and sampling.")
    val_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="Share of problems held out for val.parquet."
    )
    size: int | None = Field(
        None, ge=1, description="Procedural sources (rg:TASKS): problems per task."
    )
    limit: int | None = Field(None, ge=1, description="Use at most this many problems.")
    max_tokens: int = Field(8192, ge=1, description="Maximum new tokens per candidate.")
    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature of candidates.")
    think: Literal["keep", "strip", "auto"] = Field(
        "auto",
        description="<think> blocks of candidates in aggregation rows: 'auto' keeps them, as "
        "inference does when K candidates fit (training prompts are sized for K whole "
        "candidates: K x max tokens + 1024), 'keep' the same, 'strip' removes them.",
    )
    keep_think: bool | None = Field(None, description="Deprecated: --think keep / strip.")
    run_step: int = Field(
        1, ge=1, description="RUN_DIR source: the step whose population gives the candidates."
    )
    resume: bool = Field(False, description="Continue an interrupted build in --out.")

    @model_validator(mode="before")
    @classmethod
    def _keep_think_alias(cls, data: Any) -> Any:
        return keep_think_alias(data)

    @field_validator("source", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _enough_candidates(self) -> BuildSettings:
        if self.preset is not None and self.source:
            raise ValueError("give --source or --preset, not both")
        if self.preset is None and not self.source:
            raise ValueError("--source (or --preset paper) is required")
        if self.candidates_per_problem is not None and self.candidates_per_problem < self.k:
            raise ValueError(
                f"candidates_per_problem ({self.candidates_per_problem}) must be at least "
                f"K ({self.k})"
            )
        return self

    @property
    def m(self) -> int:
        return self.candidates_per_problem or self.k

    @property
    def sources(self) -> list[str]:
        """The SOURCE[@COUNT] entries: the given ones, or the preset's."""
        return list(PRESETS[self.preset]) if self.preset else list(self.source)


#: Named mixtures. The paper: "16,000 DeepScaleR math problems plus 2,048 each from six
#: Reasoning Gym tasks" (PAPER.md).
PRESETS: dict[str, tuple[str, ...]] = {
    "paper": (
        "deepscaler@16000",
        "rg:tower_of_hanoi,sokoban,knight_swap,rush_hour,arc_1d,sentence_reordering@2048",
    )
}


@dataclass
class BuildResult:
    """What a build wrote."""

    out_dir: Path
    train_rows: int
    val_rows: int
    aggregation_rows: int
    generated: int
    reused: int


Candidates = dict[str, list[str]]


@dataclass
class Plan:
    """Which problems are held out and which get aggregation prompts."""

    val_ids: set[str]
    agg_ids: set[str]

    def split(self, problem: Problem) -> str:
        return "val" if problem.id in self.val_ids else "train"


def plan_mixture(problems: Sequence[Problem], s: BuildSettings) -> Plan:
    """Validation split by problem; then the aggregation share within each split."""
    ids = [p.id for p in problems]
    if len(set(ids)) != len(ids):
        raise UsageError("the source holds two problems with the same id")
    val_ids = split_validation(ids, s.val_fraction, s.seed)
    train_ids = [i for i in ids if i not in val_ids]
    held = [i for i in ids if i in val_ids]
    agg_ids = mixture(train_ids, s.agg_fraction, s.seed) | mixture(held, s.agg_fraction, s.seed)
    return Plan(val_ids, agg_ids)


def assemble(
    problems: Sequence[Problem],
    candidates: Candidates,
    plan: Plan,
    s: BuildSettings,
    source: str,
    origins: Mapping[str, str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train rows, val rows), in the problems' order; `origins` names each problem's own
    source in a mixture (its rows' `data_source`)."""
    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    for problem in problems:
        split = plan.split(problem)
        rows = val if split == "val" else train
        shown = candidates.get(problem.id) if problem.id in plan.agg_ids else None
        if problem.id in plan.agg_ids and shown is None:
            raise UsageError(f"no candidates for problem {problem.id!r}")
        origin = (origins or {}).get(problem.id, source)
        rows.append(build_row(problem, origin, len(rows), split, shown, s.k, s.seed, s.think))
    return train, val


async def sample_candidates(
    problems: Sequence[Problem],
    dispatcher: Dispatcher,
    s: BuildSettings,
    *,
    context_tokens: int | None = None,
    store: CompletionStore | None = None,
    on_generation: Callable[[Problem, Candidate], None] | None = None,
) -> Candidates:
    """M candidates per problem from the reference model: the engine at T = 1 with N = M."""
    if not problems:
        return {}
    config = RSAConfig(
        n=s.m,
        k=1,
        t=1,
        seed=s.seed,
        temperature=s.temperature,
        max_tokens=s.max_tokens,
    )
    engine = Engine(
        dispatcher,
        config,
        context_tokens=context_tokens,
        store=store,
        on_generation=on_generation,
    )
    results = await engine.run_many(list(problems))
    return {r.problem_id: [c.text for c in r.steps[0].candidates] for r in results}


def generate_candidates(
    problems: Sequence[Problem],
    backend_config: BackendConfig,
    s: BuildSettings,
    store: CompletionStore | None,
    quiet: bool,
) -> Candidates:
    """Sample candidates with a progress bar; the backend is loaded only if work remains."""
    if not problems:
        return {}
    model = create_backend(backend_config)
    bar = tqdm(
        total=len(problems) * s.m,
        desc="candidates",
        unit="gen",
        file=sys.stderr,
        disable=quiet,
        dynamic_ncols=True,
    )

    async def run() -> Candidates:
        dispatcher = Dispatcher(
            model, concurrency=backend_config.concurrency, max_retries=backend_config.max_retries
        )
        try:
            return await sample_candidates(
                problems,
                dispatcher,
                s,
                context_tokens=backend_config.context_tokens,
                store=store,
                on_generation=lambda _p, _c: _tick(bar),
            )
        finally:
            await model.aclose()

    try:
        return asyncio.run(run())
    finally:
        bar.close()


def _tick(bar: tqdm[Any]) -> None:
    bar.update(1)


def write_splits(out: Path, train: list[dict[str, Any]], val: list[dict[str, Any]]) -> None:
    """train.parquet and val.parquet (val may be empty)."""
    if not train:
        raise UsageError("no problems left for training; lower --val-fraction or add problems")
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(train, out / TRAIN_FILE)
    write_parquet(val, out / VAL_FILE)


#: Build settings that change which candidates are sampled: a resume must keep them.
GENERATION_SETTINGS = frozenset(
    {
        "source",
        "preset",
        "size",
        "limit",
        "seed",
        "candidates_per_problem",
        "max_tokens",
        "temperature",
    }
)


def journaled(
    store: CompletionStore, problems: Sequence[Problem], m: int
) -> tuple[Candidates, int]:
    """The problems whose M candidates are all in the store already (no backend needed for
    them), and how many stored candidates there are in all (partial populations too)."""
    complete: Candidates = {}
    found = 0
    for problem in problems:
        texts = []
        for slot in range(m):
            completion = store.lookup(problem.id, 1, slot)
            if completion is not None:
                texts.append(completion.text)
        found += len(texts)
        if len(texts) == m:
            complete[problem.id] = texts
    return complete, found


def recorded_settings(
    s: BuildSettings, backend_config: BackendConfig, fingerprint: str
) -> dict[str, Any]:
    """What OUT/settings.json records: the generation settings, backend and problems."""
    return {
        "build": s.model_dump(mode="json", include=set(GENERATION_SETTINGS)),
        "backend": backend_config.model_dump(mode="json", exclude={"api_key"}),
        "dataset": {"fingerprint": fingerprint},
    }


def build_data(
    s: BuildSettings, backend_config: BackendConfig, *, quiet: bool = False
) -> BuildResult:
    """Build OUT/train.parquet and OUT/val.parquet (see the module docstring)."""
    from recursa.rl.source import load_sources
    from recursa.runs.journal import Journal
    from recursa.runs.rundir import JOURNAL, SETTINGS, RunDir, write_json
    from recursa.runs.settings import check_same_run, dataset_fingerprint

    run_dir = RunDir(Path(s.out).expanduser())
    run_dir.prepare(s.resume)
    run_dir.lock()
    try:
        source = load_sources(
            s.sources,
            size=s.size,
            limit=s.limit,
            seed=s.seed,
            run_step=s.run_step,
            max_candidates=s.candidates_per_problem,
        )
        problems = source.problems
        current = recorded_settings(s, backend_config, dataset_fingerprint(problems))
        if s.resume:
            recorded = run_dir.read_settings()
            if recorded is not None:
                check_same_run(recorded, current)
        write_json(run_dir.file(SETTINGS), current)
        plan = plan_mixture(problems, s)
        generated = 0
        candidates = dict(source.candidates or {})
        reused = sum(len(candidates[i]) for i in plan.agg_ids if i in candidates)
        wanted = [p for p in problems if p.id in plan.agg_ids and p.id not in candidates]
        if wanted:
            journal = Journal(run_dir.file(JOURNAL))
            journal.begin_session()
            try:
                stored, found = journaled(journal, wanted, s.m)
                candidates.update(stored)
                reused += found
                missing = [p for p in wanted if p.id not in candidates]
                candidates.update(generate_candidates(missing, backend_config, s, journal, quiet))
                generated = journal.requested
            finally:
                journal.end_session()
                journal.close()
        train, val = assemble(problems, candidates, plan, s, source.name, source.origins)
        write_splits(run_dir.path, train, val)
        aggregation = sum(1 for r in train + val if r["extra_info"]["prompt_kind"] == "aggregation")
        write_json(
            run_dir.file("summary.json"),
            {
                "source": source.name,
                "problems": len(problems),
                "skipped": len(source.skipped),
                "train_rows": len(train),
                "val_rows": len(val),
                "aggregation_rows": aggregation,
                "k": s.k,
                "agg_fraction": s.agg_fraction,
                "candidates_generated": generated,
                "candidates_reused": reused,
            },
        )
    finally:
        run_dir.unlock()
    return BuildResult(run_dir.path, len(train), len(val), aggregation, generated, reused)
