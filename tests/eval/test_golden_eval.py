"""`recursa eval` on the mock backend gives byte-identical files to a run stored as a fixture.

The fixture under tests/fixtures/golden/ was made with the code without the restructuring of
issue 12 (registries, options models, methods as strategies), by the same commands this test
runs: first at the issue's start, then again from main's code each time the branch merged
main's own intended changes of the outputs (issue 13: raw scores, quartiles, the reference's
verification; issue 14: empty_completions in summary.json), so that what is compared is the
restructuring alone.

What is compared, byte for byte: metrics.jsonl, problems.jsonl, summary.json and report.md.
Left out, because they vary from run to run: summary.json's `run.wall_s` and
`run.finished_at`, and report.md's "- wall time:" line. settings.json is not compared: it
records the settings models themselves, whose layout issue 12 changes (each backend's
options apart from the shared ones).

RECURSA_WRITE_GOLDEN=1 rewrites the fixture instead of comparing (only on purpose).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden"
#: Run from GOLDEN, so the benchmark name recorded in the files is this relative path.
BENCH = "bench.jsonl"
COMMON = ["--backend", "mock", "-n", "4", "-k", "2", "-t", "3", "--seed", "0"]

#: run name -> the eval arguments (benchmark first).
RUNS: dict[str, list[str]] = {
    "local-rsa": [BENCH, *COMMON],
    "local-majority": [BENCH, "--method", "majority", "-n", "4", "--backend", "mock"],
    "local-self-verify": [BENCH, "--method", "self-verify", "-n", "4", "--backend", "mock"],
    "rg-rsa": ["rg:basic_arithmetic", "--size", "3", *COMMON],
}
FILES = ("metrics.jsonl", "problems.jsonl", "summary.json", "report.md")


def normalised(path: Path) -> str:
    """The file's text without what varies between runs (see the module docstring)."""
    text = path.read_text(encoding="utf-8")
    if path.name == "summary.json":
        summary = json.loads(text)
        summary["run"].pop("wall_s")
        summary["run"].pop("finished_at")
        return json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
    if path.name == "report.md":
        return "".join(
            line for line in text.splitlines(keepends=True) if not line.startswith("- wall time:")
        )
    return text


def run_eval(args: list[str], out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "recursa", "-q", "eval", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=GOLDEN,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", sorted(RUNS))
def test_eval_on_the_mock_matches_the_stored_run(name: str, tmp_path: Path) -> None:
    if name.startswith("rg-"):
        pytest.importorskip("reasoning_gym")
    out = tmp_path / name
    run_eval(RUNS[name], out)
    stored = GOLDEN / name
    if os.environ.get("RECURSA_WRITE_GOLDEN") == "1":
        stored.mkdir(parents=True, exist_ok=True)
        for file in FILES:
            (stored / file).write_text(normalised(out / file), encoding="utf-8")
    for file in FILES:
        expected = (stored / file).read_bytes()
        assert normalised(out / file).encode("utf-8") == expected, f"{name}/{file} differs"
