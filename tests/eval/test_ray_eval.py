"""`recursa eval` / `recursa.evaluate` on Ray replicas: same metrics, same journal, no duplicates.

Every run here is compared with the same evaluation on the mock backend in one process (the
mock is deterministic per request), down to the journal's rows.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from recursa import evaluate, evaluate_async
from recursa.backends.ray import RayBackend
from recursa.cli import main
from recursa.config import BackendConfig
from tests.helpers.evalkit import outputs, rg_problems

pytestmark = pytest.mark.ray

QUALITY = {"mock_accuracy": 0.3, "mock_quality": 0.8}
RSA = {"n": 4, "k": 2, "t": 3, "seed": 1}
RAY = {"backend": "ray", "engine": "mock", "replicas": 2}


def journal_rows(run_dir: Path) -> list[tuple[Any, ...]]:
    """Every journaled completion with what was asked and answered (no timings, no session)."""
    db = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        return db.execute(
            "SELECT problem_id, phase, step, slot, text, finish_reason, prompt_tokens, "
            "completion_tokens, request_key, request_seed, request_hash, max_tokens "
            "FROM completions ORDER BY problem_id, phase, step, slot"
        ).fetchall()
    finally:
        db.close()


def results(run_dir: Path) -> dict[str, Any]:
    """What the run decided: metrics per step, per-problem records, final metrics."""
    out = outputs(run_dir)
    return {
        "metrics": out["metrics"],
        "problems": out["problems"],
        "final": out["summary"]["metrics"],
    }


def assert_same_run(ray_dir: Path, one_dir: Path, expected_rows: int) -> None:
    assert results(ray_dir) == results(one_dir)
    rows = journal_rows(ray_dir)
    assert rows == journal_rows(one_dir)
    assert len(rows) == expected_rows
    assert len({row[:4] for row in rows}) == len(rows)  # each (problem, phase, step, slot) once


def test_eval_on_two_mock_replicas_matches_one_process(ray_local: Any, tmp_path: Path) -> None:
    pytest.importorskip("reasoning_gym")
    problems = rg_problems(size=6)
    evaluate(problems, out=tmp_path / "one", backend="mock", mock_latency=0.01, **QUALITY, **RSA)
    backend = RayBackend(BackendConfig(**RAY, mock_latency=0.01, **QUALITY))
    try:
        evaluate(
            problems,
            out=tmp_path / "ray",
            backend=backend,
            backend_config=BackendConfig(**RAY, mock_latency=0.01, **QUALITY),
            **RSA,
        )
    finally:
        asyncio.run(backend.aclose())
    assert_same_run(tmp_path / "ray", tmp_path / "one", expected_rows=6 * 4 * 3)
    served = [s["served"] for s in backend.stats()]
    assert sum(served) == 6 * 4 * 3 and min(served) >= 6 * 4 * 3 // 4, served
    recorded = json.loads((tmp_path / "ray" / "settings.json").read_text())["backend"]
    assert (recorded["backend"], recorded["engine"], recorded["replicas"]) == ("ray", "mock", 2)


def test_eval_survives_a_replica_killed_mid_run(ray_local: Any, tmp_path: Path) -> None:
    pytest.importorskip("reasoning_gym")
    problems = rg_problems(size=6)
    total = 6 * 4 * 3
    evaluate(problems, out=tmp_path / "one", backend="mock", **QUALITY, **RSA)
    settings = BackendConfig(**RAY, mock_latency=0.05, **QUALITY)

    async def go() -> tuple[RayBackend, bool, bool]:
        backend = RayBackend(settings)
        victim = backend.router.slots[0]
        killed = False

        async def killer() -> None:
            nonlocal killed
            while not killed:
                if victim.served >= total // 6 and victim.in_flight > 0:
                    ray_local.kill(victim.actor, no_restart=False)
                    killed = True
                await asyncio.sleep(0.005)

        watch = asyncio.ensure_future(killer())
        try:
            await evaluate_async(
                problems, out=tmp_path / "ray", backend=backend, backend_config=settings, **RSA
            )
            back = await backend.wait_up(0, timeout=120)
        finally:
            watch.cancel()
            await backend.aclose()
        return backend, killed, back

    backend, killed, back = asyncio.run(go())
    assert killed, "the replica was never busy when the test meant to kill it"
    stats = backend.stats()
    assert stats[0]["failures"] >= 1, stats
    assert back, "Ray did not restart the killed replica"
    assert_same_run(tmp_path / "ray", tmp_path / "one", expected_rows=total)
    assert sum(s["served"] for s in stats) == total  # the driver received each completion once
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert summary["run"]["requested_this_session"] == total


def test_recursa_eval_cli_on_ray_matches_mock_and_resumes_with_other_replicas(
    ray_local: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("reasoning_gym")
    common = ["rg:basic_arithmetic", "--size", "4", "-n", "4", "-k", "2", "-t", "2", "--seed", "2"]
    assert main(["-q", "eval", *common, "--out", str(tmp_path / "one"), "--backend", "mock"]) == 0
    ray_flags = ["--backend", "ray", "--engine", "mock", "--replicas", "2"]
    assert main(["-q", "eval", *common, "--out", str(tmp_path / "ray"), *ray_flags]) == 0
    assert_same_run(tmp_path / "ray", tmp_path / "one", expected_rows=4 * 4 * 2)
    capsys.readouterr()
    # Replicas are a speed setting: a resume may use another number of them.
    resumed = ["--replicas", "1", "--resume"]
    assert main(["-q", "eval", *common, "--out", str(tmp_path / "ray"), *ray_flags, *resumed]) == 0
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert summary["run"]["requested_this_session"] == 0
    assert summary["run"]["reused_from_journal"] == 4 * 4 * 2
    assert_same_run(tmp_path / "ray", tmp_path / "one", expected_rows=4 * 4 * 2)
