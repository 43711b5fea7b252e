"""Helpers for the evaluation tests: small Reasoning Gym sets and run-directory readers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recursa.tasks import Problem


def rg_problems(name: str = "basic_arithmetic", size: int = 6, seed: int = 0) -> list[Problem]:
    """Reasoning Gym problems carrying what their scorer needs (as the loaders build them)."""
    import reasoning_gym

    data = reasoning_gym.create_dataset(name, size=size, seed=seed)
    return [
        Problem(
            f"{name}/{i}",
            entry["question"],
            entry["answer"],
            "rg",
            {"dataset_name": name, "entry": json.dumps(entry, default=str)},
        )
        for i, entry in enumerate(data)
    ]


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
