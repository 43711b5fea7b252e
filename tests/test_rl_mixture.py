"""`rl build-data` mixtures (several weighted sources, `--preset paper`) and the paper's
released RL dataset as `--data` for `rl train` and `rl verl-config`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recursa.cli import main
from recursa.errors import UsageError
from recursa.rl.data import BuildSettings
from recursa.rl.hub_data import PAPER_RL_DATASET, is_hub_name
from recursa.rl.verl import VerlSettings, render_script


def math_file(path: Path, count: int, prefix: str) -> Path:
    rows = [{"id": f"{i}", "question": f"{prefix}: what is {i}+1?", "answer": str(i + 1)}
            for i in range(count)]  # fmt: skip
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_the_paper_preset_is_the_papers_mixture() -> None:
    sources = BuildSettings(preset="paper", out="x").sources
    assert sources == [
        "deepscaler@16000",
        "rg:tower_of_hanoi,sokoban,knight_swap,rush_hour,arc_1d,sentence_reordering@2048",
    ]
    with pytest.raises(ValueError, match="not both"):
        BuildSettings(preset="paper", source="a.jsonl", out="x")
    with pytest.raises(ValueError, match="required"):
        BuildSettings(out="x")


def test_several_weighted_sources_make_one_mixture(tmp_path: Path) -> None:
    a = math_file(tmp_path / "a.jsonl", 10, "A")
    b = math_file(tmp_path / "b.jsonl", 10, "B")  # the same ids as a: they are told apart
    out = tmp_path / "mix"
    code = main(["-q", "rl", "build-data", "--source", f"{a}@4", "--source", str(b),
                 "--source", "rg:maze@3", "--backend", "mock", "-k", "2", "--max-tokens", "32",
                 "--val-fraction", "0", "--out", str(out)])  # fmt: skip
    assert code == 0
    rows = pq.read_table(out / "train.parquet").to_pylist()
    sources = Counter(r["data_source"] for r in rows)
    assert sources == {str(a): 4, str(b): 10, "reasoning_gym/maze": 3}
    ids = [r["extra_info"]["problem_id"] for r in rows]
    assert len(set(ids)) == len(ids) == 17
    aggregation = sum(r["extra_info"]["prompt_kind"] == "aggregation" for r in rows)
    assert aggregation == 9  # half of 17, rounded half up
    again = main(["-q", "rl", "build-data", "--source", f"{a}@4", "--source", str(b),
                  "--source", "rg:maze@3", "--backend", "mock", "-k", "2", "--max-tokens", "32",
                  "--val-fraction", "0", "--out", str(out), "--resume"])  # fmt: skip
    assert again == 0 and pq.read_table(out / "train.parquet").to_pylist() == rows


def test_a_count_below_one_is_refused(tmp_path: Path) -> None:
    from recursa.rl.source import parse_entry

    assert parse_entry("rg:maze,sokoban@12") == ("rg:maze,sokoban", 12)
    assert parse_entry("data.jsonl") == ("data.jsonl", None)
    with pytest.raises(UsageError, match="at least 1"):
        parse_entry("data.jsonl@0")


FAKE_HUB = """
from pathlib import Path
def snapshot_download(repo_id, repo_type, allow_patterns):
    assert repo_type == "dataset" and allow_patterns == ["*.parquet"]
    return {root!r}
"""


def released_layout(root: Path) -> list[Path]:
    """A hub dataset laid out as the released one is (data/train-*.parquet)."""
    rows = [{"data_source": "DeepScaleR", "prompt": [{"role": "user", "content": f"{i}+1?"}],
             "ability": "math", "reward_model": {"ground_truth": str(i + 1), "style": "rule"},
             "extra_info": {"index": i}} for i in range(4)]  # fmt: skip
    (root / "data").mkdir(parents=True)
    files = [root / "data" / f"train-0000{i}-of-00002.parquet" for i in range(2)]
    for i, f in enumerate(files):
        pq.write_table(pa.Table.from_pylist(rows[2 * i : 2 * i + 2]), f)
    return files


def test_verl_config_downloads_the_papers_rl_dataset(tmp_path: Path) -> None:
    assert is_hub_name(PAPER_RL_DATASET) and not is_hub_name(str(tmp_path))
    script = render_script(VerlSettings(data=PAPER_RL_DATASET, model="m", out="x"))
    assert 'data.train_files="$TRAIN_FILES"' in script and "DATA_DIR" not in script
    path = tmp_path / "run.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0
    # Run the script's own download line against a stand-in for huggingface_hub.
    files = released_layout(tmp_path / "snapshot")
    fake = tmp_path / "fake"
    (fake / "huggingface_hub").mkdir(parents=True)
    (fake / "huggingface_hub" / "__init__.py").write_text(
        FAKE_HUB.format(root=str(tmp_path / "snapshot"))
    )
    line = next(x for x in script.splitlines() if x.startswith("TRAIN_FILES="))
    shown = subprocess.run(
        ["bash", "-c", f'{line}\necho "$TRAIN_FILES"'],
        env={**os.environ, "PYTHONPATH": str(fake)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert shown == "[" + ",".join(str(f) for f in files) + "]"


def test_rl_train_reads_the_papers_rl_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    from recursa.rl.train import data_files, load_rows

    files = released_layout(tmp_path / "snapshot")
    calls: list[str] = []

    def snapshot_download(repo_id: str, repo_type: str, allow_patterns: list[str]) -> str:
        calls.append(repo_id)
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    assert data_files(PAPER_RL_DATASET) == files and calls == [PAPER_RL_DATASET]
    dataset = load_rows(data_files(PAPER_RL_DATASET))
    assert len(dataset) == 4 and dataset[3]["reward_model"]["ground_truth"] == "4"
    assert sys.modules["huggingface_hub"] is huggingface_hub
