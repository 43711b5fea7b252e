"""End to end on the bundled SmolLM2-135M-Instruct: a 2-problem Reasoning Gym evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.evalkit import read_jsonl

pytestmark = pytest.mark.e2e


def test_eval_and_report_on_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "recursa",
            "eval",
            "rg:basic_arithmetic",
            "--size",
            "2",
            "-n",
            "2",
            "-k",
            "2",
            "-t",
            "2",
            "--max-tokens",
            "48",
            "--n-ctx",
            "2048",
            "--seed",
            "1",
            "--out",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["problems"] == 2 and summary["metrics"]["generations"] == 8
    assert summary["run"]["requested_this_session"] == 8
    lines = read_jsonl(out / "metrics.jsonl")
    assert [line["step"] for line in lines] == [1, 2]
    for line in lines:
        assert 0.0 <= line["mean_acc"] <= line["pass_at_n"] <= 1.0
        assert 0 < line["completion_tokens"] <= 4 * 48
        assert line["prompt_tokens"] > 0
    # Aggregation prompts hold the problem and two candidates: longer than plain prompts.
    assert lines[1]["prompt_tokens"] > lines[0]["prompt_tokens"]
    for record in read_jsonl(out / "problems.jsonl"):
        assert len(record["steps"]) == 2
        for step in record["steps"]:
            assert len(step["answers"]) == 2 and len(step["scores"]) == 2
            assert all(0.0 <= s <= 1.0 for s in step["scores"])
    report = subprocess.run(
        [sys.executable, "-m", "recursa", "report", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    assert "| 2 |" in report.stdout
    for name in ("accuracy_vs_step.png", "accuracy_vs_tokens.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
