"""Fidelity to the reference code: raw scores (Reasoning Gym partial credit), length
quartiles, and the sandbox limits its harness accepts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import reasoning_gym

from recursa import GenerationRequest, evaluate
from recursa.backends.mock import MockBackend
from recursa.config import BackendConfig
from recursa.rl.rewards import compute_score
from recursa.runs.metrics import TokenCounts
from recursa.sandbox import Sandbox, SandboxConfig
from recursa.tasks.code_grading import grade_code
from tests.evalkit import read_jsonl


def futoshiki_file(path: Path, count: int) -> tuple[Path, list[dict]]:
    """Reasoning Gym rows in the paper's verl schema (extra_info: dataset_name, entry)."""
    entries = [dict(e) for e in reasoning_gym.create_dataset("futoshiki", size=count, seed=3)]
    rows = [
        {
            "data_source": "reasoning_gym",
            "prompt": [{"role": "user", "content": e["question"]}],
            "ability": "reasoning",
            "reward_model": {"ground_truth": e["answer"], "style": "rule"},
            "extra_info": {"dataset_name": "futoshiki", "entry": json.dumps(e), "index": i},
        }
        for i, e in enumerate(entries)
    ]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path, entries


def near_miss(answer: str) -> str:
    i = next(i for i, c in enumerate(answer) if c.isdigit())
    return answer[:i] + ("1" if answer[i] != "1" else "2") + answer[i + 1 :]


def test_a_near_miss_gives_the_scorers_partial_score_in_mean_score(tmp_path: Path) -> None:
    path, entries = futoshiki_file(tmp_path / "games.parquet", 2)
    answers = {str(i): e["answer"] for i, e in enumerate(entries)}

    def script(request: GenerationRequest) -> str:
        return f"<answer>{near_miss(answers[request.meta['problem_id']])}</answer>"

    result = evaluate(str(path), out=tmp_path / "run", n=2, k=2, t=1, backend=MockBackend(script),
                      backend_config=BackendConfig(backend="mock"))  # fmt: skip
    scorer = reasoning_gym.get_score_answer_fn("futoshiki")
    partial = [scorer(near_miss(e["answer"]), e) for e in entries]
    assert all(0.0 < p < 1.0 for p in partial)
    metrics = result.summary["metrics"]
    assert metrics["mean_acc"] == 0.0 and metrics["majority_acc"] == 0.0
    assert abs(metrics["mean_score"] - sum(partial) / 2) < 1e-12
    assert abs(metrics["majority_score"] - sum(partial) / 2) < 1e-12
    assert metrics["paper_metric"] == "mean_score"
    assert "mean score % (paper)" in (tmp_path / "run" / "report.md").read_text()
    # The RL reward pays the same raw score as the evaluation.
    row = pq.read_table(path).to_pylist()[0]
    text = f"<answer>{near_miss(entries[0]['answer'])}</answer>"
    reward = compute_score(
        row["data_source"], text, row["reward_model"]["ground_truth"], row["extra_info"]
    )
    assert reward == read_jsonl(tmp_path / "run" / "problems.jsonl")[0]["steps"][0]["scores"][0]


def test_length_quartiles_are_numpys() -> None:
    rng = random.Random(5)
    for n in (1, 2, 7, 100):
        values = [rng.randrange(1, 500) for _ in range(n)]
        counts = TokenCounts()
        counts.add(values)
        for q in (25, 50, 75):
            assert counts.percentile(q) == float(np.percentile(values, q))
        assert counts.median() == float(np.percentile(values, 50))


DEEP = """\
import sys
def depth(n):
    return 0 if n == 0 else 1 + depth(n - 1)
print(depth(int(sys.stdin.read())))
"""


@pytest.mark.parametrize("isolation", ["auto", "process"])
def test_a_depth_5000_recursive_program_passes(isolation: str) -> None:
    config = SandboxConfig(isolation=isolation)  # type: ignore[arg-type]
    assert (config.memory_mb, config.test_timeout) == (4096, 6.0)
    tests = [{"input": "5000", "output": "5000", "testtype": "stdin"}]
    grade = grade_code(f"```python\n{DEEP}```", tests, sandbox=Sandbox(config))
    assert grade.score == 1.0, grade.reason
