"""Benchmarks by name: the `BENCHMARKS` registry of specs (plugins: `recursa.benchmarks`).

`load_benchmark(spec)` is the one entry point: `NAME` or `NAME:ARG` (a registered benchmark;
`rg:TASK[,TASK...]`), or a local .jsonl/.json/.parquet file. Every problem it returns carries
its own task family (`Problem.task`), the data its grader needs (`Problem.meta`) and a
stable id.
"""

from __future__ import annotations

from collections.abc import Iterable

from recursa.benchmarks.base import Dataset, RowSkip, collect
from recursa.benchmarks.local import load_file, looks_like_file
from recursa.benchmarks.rows import check_problem
from recursa.benchmarks.spec import BenchmarkSpec, LoadOptions
from recursa.errors import UsageError
from recursa.registry import Registry
from recursa.tasks import Problem

__all__ = [
    "BENCHMARKS",
    "BenchmarkSpec",
    "Dataset",
    "LoadOptions",
    "RowSkip",
    "benchmark_choices",
    "load_benchmark",
]


def _benchmark(name: str, obj: object) -> BenchmarkSpec:
    if isinstance(obj, BenchmarkSpec):
        return obj
    if callable(obj):  # a plugin's bare loader: NAME or NAME:ARG, options as keywords
        doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
        return BenchmarkSpec(name, doc[0] if doc else name, obj, takes_arg=True)
    raise TypeError(f"benchmark {name!r} must be a loader callable, not {obj!r}")


BENCHMARKS: Registry[BenchmarkSpec] = Registry("benchmark", "recursa.benchmarks", check=_benchmark)
BENCHMARKS.add("aime25", "recursa.benchmarks.hub:AIME25")
BENCHMARKS.add("hmmt25", "recursa.benchmarks.hub:HMMT25")
BENCHMARKS.add("supergpqa", "recursa.benchmarks.hub:SUPERGPQA")
BENCHMARKS.add("arc-agi-2", "recursa.benchmarks.arc:SPEC")
BENCHMARKS.add("lcb-v6", "recursa.benchmarks.lcb:SPEC_V6")
BENCHMARKS.add("rg", "recursa.benchmarks.reasoning_gym:SPEC")
BENCHMARKS.add("rg-games", "recursa.benchmarks.reasoning_gym:GAMES_SPEC")
BENCHMARKS.add("rg-cognition", "recursa.benchmarks.reasoning_gym:COGNITION_SPEC")
BENCHMARKS.add("deepscaler", "recursa.benchmarks.hub:DEEPSCALER")
BENCHMARKS.add("paper", "recursa.benchmarks.paper:SPEC")


def benchmark_choices() -> list[tuple[str, str]]:
    """(how it is written, description) of every registered benchmark, for --help."""
    choices = []
    for name in BENCHMARKS.names():
        try:
            spec = BENCHMARKS.get(name)
        except UsageError as exc:  # a plugin that cannot be loaded here: say so, go on
            choices.append((name, f"unavailable ({exc})"))
            continue
        choices.append((spec.shown, spec.description))
    return choices


def _find(spec: str) -> tuple[BenchmarkSpec, str] | None:
    """The registered benchmark a spec names, and the text after `NAME:`."""
    if spec in BENCHMARKS:
        return BENCHMARKS.get(spec), ""
    name, colon, arg = spec.partition(":")
    if colon and name in BENCHMARKS and BENCHMARKS.get(name).takes_arg:
        return BENCHMARKS.get(name), arg
    return None


def _as_dataset(name: str, loaded: Dataset | Iterable[Problem], options: LoadOptions) -> Dataset:
    """A loader's problems as a Dataset: a plugin's are checked by their task families."""
    if isinstance(loaded, Dataset):
        return loaded

    def rows() -> Iterable[tuple[int, Problem | RowSkip]]:
        for index, problem in enumerate(loaded):
            if not isinstance(problem, Problem):
                yield index, RowSkip(f"the loader gave a {type(problem).__name__}, not a Problem")
                continue
            try:
                yield index, check_problem(problem)
            except RowSkip as skip:
                yield index, skip

    return collect(name, rows(), strict=options.strict, limit=options.limit)


def load_benchmark(
    spec: str,
    *,
    limit: int | None = None,
    size: int | None = None,
    seed: int = 0,
    strict: bool = False,
    since: str | None = None,
    until: str | None = None,
    benchmark_format: str = "auto",
) -> Dataset:
    """Load a registered benchmark (`NAME` or `NAME:ARG`, e.g. `rg:TASK[,TASK...]`) or a
    local .jsonl/.json/.parquet file.

    `since`/`until` (YYYY-MM-DD) keep LiveCodeBench problems by contest date;
    `benchmark_format="lcb"` reads every row of a local file as LiveCodeBench. `limit` keeps
    the first problems; `size` is the number of generated problems (per task for
    `rg:`, in all for the mixes and supergpqa); `seed` fixes procedural generation. Rows missing
    what their task needs are listed in `Dataset.skipped`, or raise UsageError when `strict`."""
    spec = spec.strip()
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, not {limit}")
    found = _find(spec)
    is_file = found is None and looks_like_file(spec)
    dates = frozenset({"since", "until"})
    uses = found[0].uses if found is not None else (dates if is_file else frozenset())
    if (since or until) and not dates <= uses:
        specs = [BENCHMARKS.get(n) for n in BENCHMARKS.names()]
        takers = [s.shown for s in specs if dates <= s.uses]
        raise UsageError(
            f"--since/--until apply to {', '.join(takers)} and LiveCodeBench files only"
        )
    if benchmark_format != "auto" and not is_file:
        raise UsageError("--benchmark-format applies to local files only")
    if found is not None:
        options = LoadOptions(
            limit=limit,
            size=size,
            seed=seed,
            strict=strict,
            since=since,
            until=until,
            benchmark_format="auto",
        )
        benchmark, arg = found
        return _as_dataset(spec, benchmark.loader(arg, **options.model_dump()), options)
    if is_file:
        return load_file(
            spec,
            limit=limit,
            strict=strict,
            since=since,
            until=until,
            benchmark_format=benchmark_format,
        )
    names = ", ".join(s for s, _ in benchmark_choices())
    raise UsageError(
        f"unknown benchmark {spec!r}; choose one of {names}, or a .jsonl/.json/.parquet file"
    )
