"""RL rewards: verl's compute_score and the TRL reward score exactly like the eval graders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recursa.errors import UsageError
from recursa.rl.rewards import compute_score, correctness
from recursa.rl.rows import build_row, write_parquet
from recursa.rl.schema import family_for_data_source
from recursa.tasks import Problem, get_task

reasoning_gym = pytest.importorskip("reasoning_gym")
pytest.importorskip("pyarrow")


def rg_problems() -> list[Problem]:
    problems = []
    for name in ("basic_arithmetic", "tower_of_hanoi"):
        for i, entry in enumerate(reasoning_gym.create_dataset(name, size=2, seed=3)):
            problems.append(
                Problem(
                    id=f"{name}/{i}",
                    question=entry["question"],
                    answer=entry["answer"],
                    task="rg",
                    meta={"dataset_name": name, "entry": entry},
                )
            )
    return problems


PROBLEMS: list[Problem] = [
    Problem("m1", "What is 1/2 + 1/4?", "\\frac{3}{4}", "math"),
    Problem("m2", "What is 6 * 7?", "42", "math"),
    Problem("q1", "Pick the prime.", "C", "mcq", {"options": ["4", "6", "7", "8"]}),
    Problem("g1", "Capital of France?", "Paris", "general"),
]


def completions_for(problem: Problem) -> list[str]:
    """Right, wrong, unformatted and echo-the-instruction completions for a problem."""
    ref = str(problem.answer)
    wrap = {
        "math": lambda a: f"So the result is \\boxed{{{a}}}.",
        "mcq": lambda a: f"The answer is \\boxed{{{a}}}",
        "rg": lambda a: f"Thinking...\n<answer>{a}</answer>",
        "general": lambda a: f"Reasoning.\nFinal answer: {a}",
    }[problem.task]
    return [
        wrap(ref),
        wrap("0.75" if problem.id == "m1" else "wrong"),
        ref,
        "Put the answer between <answer> and </answer>. " + wrap(ref),
        "",
    ]


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    return PROBLEMS + rg_problems()


def test_family_mapping() -> None:
    assert family_for_data_source("whatever", {"task": "mcq"}) == "mcq"
    assert family_for_data_source("custom", {"dataset_name": "x", "entry": "{}"}) == "rg"
    assert family_for_data_source("reasoning_gym/tower_of_hanoi") == "rg"
    assert family_for_data_source("rg:maze") == "rg"
    assert family_for_data_source("MathArena/aime_2025") == "math"
    assert family_for_data_source("m-a-p/SuperGPQA") == "mcq"
    assert family_for_data_source("livecodebench/code_generation_lite") == "code"
    assert family_for_data_source("arc-agi-2") == "arc"
    # verl's own example sets are math, and so is anything unrecognised.
    assert family_for_data_source("openai/gsm8k") == "math"
    assert family_for_data_source("my-private-set") == "math"


def test_verl_compute_score_matches_the_graders(problems: list[Problem]) -> None:
    scores: list[float] = []
    for i, problem in enumerate(problems):
        row = build_row(problem, "unit", i, "train", None, 4, 0)
        for text in completions_for(problem):
            expected = get_task(problem.task).grade(problem, text).score
            got = compute_score(
                row["data_source"], text, row["reward_model"]["ground_truth"], row["extra_info"]
            )
            assert got == expected, (problem.id, text)
            scores.append(got)
    # The cases exercise both outcomes (a grader that always said 0 would pass otherwise).
    assert 1.0 in scores and 0.0 in scores


def test_math_equivalence_is_the_graders(problems: list[Problem]) -> None:
    row = build_row(PROBLEMS[0], "unit", 0, "train", None, 4, 0)
    truth = row["reward_model"]["ground_truth"]
    assert compute_score(row["data_source"], "\\boxed{0.75}", truth, row["extra_info"]) == 1.0
    assert compute_score(row["data_source"], "\\boxed{3/4}", truth, row["extra_info"]) == 1.0
    assert compute_score(row["data_source"], "\\boxed{2/3}", truth, row["extra_info"]) == 0.0


def test_rg_reward_uses_the_generators_scorer(problems: list[Problem]) -> None:
    hanoi = next(p for p in problems if p.id.startswith("tower_of_hanoi"))
    row = build_row(hanoi, "unit", 0, "train", None, 4, 0)
    entry = json.loads(row["extra_info"]["entry"])
    scorer = reasoning_gym.get_score_answer_fn("tower_of_hanoi")
    first_move = hanoi.answer.splitlines()[0]
    for answer in (hanoi.answer, first_move):
        expected = float(scorer(answer, entry))
        got = compute_score(
            row["data_source"],
            f"<answer>{answer}</answer>",
            row["reward_model"]["ground_truth"],
            row["extra_info"],
        )
        assert got == expected
    assert row["data_source"] == "reasoning_gym/tower_of_hanoi"


def test_trl_reward_matches_the_graders_through_a_parquet_file(
    problems: list[Problem], tmp_path: Path
) -> None:
    import pyarrow.parquet as pq
    from datasets import Dataset
    from datasets.table import InMemoryTable

    rows = [build_row(p, "unit", i, "train", None, 4, 0) for i, p in enumerate(problems)]
    path = tmp_path / "train.parquet"
    write_parquet(rows, path)
    data = Dataset(InMemoryTable(pq.read_table(path)))
    # TRL hands the reward every column except the prompt, one value per completion.
    columns: dict[str, list[Any]] = {"data_source": [], "reward_model": [], "extra_info": []}
    prompts: list[Any] = []
    completions: list[Any] = []
    expected: list[float] = []
    for problem, record in zip(problems, data, strict=True):
        for text in completions_for(problem):
            prompts.append(record["prompt"])
            completions.append([{"role": "assistant", "content": text}])
            for key in columns:
                columns[key].append(record[key])
            expected.append(get_task(problem.task).grade(problem, text).score)
    got = correctness(prompts, completions, trainer_state=None, **columns)
    assert got == expected
    # Plain-text completions (a non-chat dataset) score the same.
    texts = [c[0]["content"] for c in completions]
    assert correctness(prompts, texts, **columns) == expected


def test_trl_reward_names_a_missing_column() -> None:
    with pytest.raises(UsageError, match="reward_model"):
        correctness(["p"], ["c"], data_source=["math"])
