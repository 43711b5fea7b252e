"""Helpers for the evaluation tests: small Reasoning Gym sets and run-directory readers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recursa.benchmarks import load_benchmark
from recursa.tasks import Problem


def rg_problems(name: str = "basic_arithmetic", size: int = 6, seed: int = 0) -> list[Problem]:
    """A small Reasoning Gym set, loaded as `recursa eval rg:NAME --size N --seed S` loads it."""
    return load_benchmark(f"rg:{name}", size=size, seed=seed).problems


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def outputs(run_dir: Path) -> dict[str, Any]:
    """What must be identical between two runs of the same settings (timings excluded)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.pop("run")
    return {
        "metrics": read_jsonl(run_dir / "metrics.jsonl"),
        "problems": read_jsonl(run_dir / "problems.jsonl"),
        "summary": summary,
    }
