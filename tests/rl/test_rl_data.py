"""`recursa rl build-data`: the mixture, the aggregation prompts, the verl schema, determinism,
resuming, and reuse of an eval run's candidates without any backend call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recursa.cli import main
from recursa.config import BackendConfig
from recursa.context import strip_think
from recursa.prompts import aggregation_messages, plain_messages
from recursa.rl.rewards import compute_score
from recursa.rl.rows import pick_count
from recursa.tasks import get_task

pytest.importorskip("reasoning_gym")
pq = pytest.importorskip("pyarrow.parquet")
benchmarks = pytest.importorskip("recursa.benchmarks")

SOURCE = "rg:basic_arithmetic,leg_counting"
SIZE = 10
K, M, SEED = 3, 5, 7


def cli_build(out: Path, *extra: str) -> int:
    return main(
        [
            "-q",
            "rl",
            "build-data",
            "--source",
            SOURCE,
            "--size",
            str(SIZE),
            "--backend",
            "mock",
            "-k",
            str(K),
            "--candidates-per-problem",
            str(M),
            "--seed",
            str(SEED),
            "--val-fraction",
            "0.2",
            "--max-tokens",
            "64",
            "--out",
            str(out),
            *extra,
        ]
    )


def rows(path: Path) -> list[dict[str, Any]]:
    return list(pq.read_table(path).to_pylist())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rl-data") / "mix"
    assert cli_build(out) == 0
    return out


def test_mixture_proportion_holds_in_each_split(built: Path) -> None:
    train, val = rows(built / "train.parquet"), rows(built / "val.parquet")
    assert len(train) + len(val) == 2 * SIZE
    assert len(val) == pick_count(2 * SIZE, 0.2)
    for split in (train, val):
        kinds = [r["extra_info"]["prompt_kind"] for r in split]
        assert kinds.count("aggregation") == pick_count(len(split), 0.5)
        assert set(kinds) == {"aggregation", "plain"}
    problems = [r["extra_info"]["problem_id"] for r in train + val]
    assert len(set(problems)) == len(problems)  # one row per problem, no leak across splits


def test_aggregation_prompts_show_exactly_k_candidates_of_their_problem(built: Path) -> None:
    from recursa.runs.journal import GENERATE, Journal

    dataset = benchmarks.load_benchmark(SOURCE, size=SIZE, seed=SEED)
    by_id = {p.id: p for p in dataset.problems}
    journal = Journal(built / "journal.sqlite")
    seen = 0
    try:
        for row in rows(built / "train.parquet") + rows(built / "val.parquet"):
            info = row["extra_info"]
            problem = by_id[info["problem_id"]]
            task = get_task(problem.task)
            if info["prompt_kind"] == "plain":
                assert info["k"] == 0 and info["candidate_slots"] == []
                assert row["prompt"] == plain_messages(task, problem)
                continue
            seen += 1
            slots = info["candidate_slots"]
            assert info["k"] == K and len(set(slots)) == K and all(0 <= s < M for s in slots)
            texts = []
            for slot in slots:
                completion = journal.get(problem.id, GENERATE, 1, slot)
                assert completion is not None
                texts.append(strip_think(completion.text))
            # Exactly the inference prompt builder over that problem's own candidates.
            assert row["prompt"] == aggregation_messages(task, problem, texts)
            assert row["prompt"][0]["content"].count("---- Solution ") == K
    finally:
        journal.close()
    assert seen > 0


def test_rows_carry_what_the_reward_needs(built: Path) -> None:
    for row in rows(built / "train.parquet"):
        info = row["extra_info"]
        assert info["task"] == "rg" and row["ability"] == "reasoning"
        assert row["data_source"] == f"reasoning_gym/{info['dataset_name']}"
        assert row["reward_model"]["style"] == "rule"
        entry = json.loads(info["entry"])
        assert entry["answer"] == row["reward_model"]["ground_truth"]
        right = f"I think <answer>{entry['answer']}</answer>"
        args = (row["data_source"], row["reward_model"]["ground_truth"], info)
        assert compute_score(args[0], right, args[1], args[2]) == 1.0
        assert compute_score(args[0], "<answer>not it</answer>", args[1], args[2]) == 0.0


def test_parquet_loads_with_datasets_and_pandas(built: Path, tmp_path: Path) -> None:
    import pandas as pd
    from datasets import Dataset

    path = built / "train.parquet"
    ds = Dataset.from_parquet(str(path), cache_dir=str(tmp_path / "hf"))
    assert {"data_source", "prompt", "ability", "reward_model", "extra_info"} <= set(
        ds.column_names
    )
    first = ds[0]
    assert first["prompt"][0]["role"] == "user" and first["prompt"][0]["content"]
    assert first["reward_model"]["style"] == "rule"
    frame = pd.read_parquet(path)
    assert len(frame) == len(ds)
    assert frame.iloc[0]["extra_info"]["problem_id"] == first["extra_info"]["problem_id"]


def test_same_seed_gives_byte_identical_files(built: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert cli_build(again) == 0
    for name in ("train.parquet", "val.parquet"):
        assert (again / name).read_bytes() == (built / name).read_bytes()
    other = tmp_path / "other"
    assert cli_build(other, "--seed", str(SEED + 1)) == 0
    assert (other / "train.parquet").read_bytes() != (built / "train.parquet").read_bytes()
    meta = pq.read_metadata(built / "train.parquet").metadata or {}
    assert b"pandas" not in meta  # no pandas block (it carries library versions, index)


def test_resume_reuses_the_journal_and_may_change_the_mixture(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from recursa.rl import data
    from recursa.rl.data import BuildSettings, build_data

    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    settings = BuildSettings(
        source=SOURCE,
        out=str(copy),
        size=SIZE,
        k=2,
        agg_fraction=0.25,
        candidates_per_problem=M,
        seed=SEED,
        val_fraction=0.2,
        max_tokens=64,
        resume=True,
    )

    def no_backend(_: BackendConfig) -> Any:
        raise AssertionError("a backend was created although every candidate is journaled")

    monkeypatch.setattr(data, "create_backend", no_backend)
    result = build_data(settings, BackendConfig(backend="mock"), quiet=True)
    assert result.generated == 0 and result.reused > 0
    kinds = [r["extra_info"]["k"] for r in rows(copy / "train.parquet")]
    assert set(kinds) == {0, 2}
    # A generation setting cannot change on resume.
    changed = settings.model_copy(update={"max_tokens": 65})
    with pytest.raises(Exception, match="max_tokens"):
        build_data(changed, BackendConfig(backend="mock"), quiet=True)


def test_an_existing_build_is_not_overwritten(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_build(built) == 2
    assert "--resume" in capsys.readouterr().err


def test_eval_run_directory_source_makes_no_backend_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recursa.backends.mock import MockBackend
    from recursa.rl import data
    from recursa.rl.data import BuildSettings, build_data
    from recursa.runs import evaluate
    from recursa.runs.journal import GENERATE, Journal

    run = tmp_path / "eval-run"
    evaluate("rg:basic_arithmetic", out=run, backend="mock", n=4, k=2, t=2, size=6, seed=3)

    calls: list[Any] = []
    original = MockBackend.generate

    async def counting(self: MockBackend, request: Any) -> Any:
        calls.append(request)
        return await original(self, request)

    monkeypatch.setattr(MockBackend, "generate", counting)

    def no_backend(_: BackendConfig) -> Any:
        raise AssertionError("build-data created a backend for an eval run source")

    monkeypatch.setattr(data, "create_backend", no_backend)
    out = tmp_path / "from-run"
    settings = BuildSettings(source=str(run), out=str(out), k=2, seed=3, val_fraction=0.0)
    result = build_data(settings, BackendConfig(backend="mock"), quiet=True)
    assert calls == [] and result.generated == 0
    assert result.train_rows == 6 and result.aggregation_rows == 3

    journal = Journal(run / "journal.sqlite")
    try:
        for row in rows(out / "train.parquet"):
            info = row["extra_info"]
            if info["prompt_kind"] != "aggregation":
                continue
            shown = row["prompt"][0]["content"]
            for slot in info["candidate_slots"]:
                completion = journal.get(info["problem_id"], GENERATE, 1, slot)
                assert completion is not None
                assert strip_think(completion.text).strip() in shown
    finally:
        journal.close()


def test_eval_loader_and_rewards_read_the_rows_alike(built: Path) -> None:
    """One mapping: `recursa eval`'s loader and the RL reward agree on family and grade."""
    dataset = benchmarks.load_benchmark(SOURCE, size=SIZE, seed=SEED)
    originals = {p.id: p for p in dataset.problems}
    loaded = benchmarks.load_benchmark(str(built / "train.parquet"))
    assert not loaded.skipped
    table = {r["extra_info"]["problem_id"]: r for r in rows(built / "train.parquet")}
    assert [p.id for p in loaded.problems] == list(table)
    for problem in loaded.problems:
        row = table[problem.id]
        # the bare problem, not the aggregation prompt, is what evaluation poses
        assert problem.question == originals[problem.id].question.strip()
        assert problem.task == "rg"
        entry = json.loads(row["extra_info"]["entry"])
        for text in (f"<answer>{entry['answer']}</answer>", "<answer>x</answer>", "no tags"):
            expected = get_task(problem.task).grade(problem, text).score
            got = compute_score(
                row["data_source"], text, row["reward_model"]["ground_truth"], row["extra_info"]
            )
            assert got == expected
