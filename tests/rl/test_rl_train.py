"""`recursa rl train`: a real RLOO run on CPU with the bundled SmolLM2 (GGUF, dequantised),
and the settings checks that stop a run before any model is loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recursa.cli import main
from recursa.rl.rewards import completion_text
from recursa.rl.rows import build_row, write_parquet
from recursa.tasks import Problem

pytest.importorskip("trl")
pytest.importorskip("gguf")


def tiny_data(directory: Path) -> Path:
    """Two short rows: a plain prompt and an aggregation prompt over two candidates."""
    directory.mkdir(parents=True, exist_ok=True)
    problems = [
        Problem("p0", "What is 2 + 2?", "4", "math"),
        Problem("p1", "What is 3 + 4?", "7", "math"),
    ]
    rows = [
        build_row(problems[0], "tiny-math", 0, "train", None, 2, 0),
        build_row(problems[1], "tiny-math", 1, "train", ["3+4 = \\boxed{7}", "\\boxed{8}"], 2, 0),
    ]
    write_parquet(rows, directory / "train.parquet")
    return directory


def brevity(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
    """A shaping reward that differs between completions. A 135M model almost never gives a
    boxed answer within 16 tokens, so correctness alone is all zeros, RLOO's leave-one-out
    advantages vanish and no parameter would move: this keeps the smoke test meaningful."""
    return [-len(completion_text(c)) / 100.0 for c in completions]


@pytest.mark.e2e
def test_two_rloo_steps_on_the_bundled_model(tmp_path: Path, bundled_model: Path) -> None:
    import gguf
    from safetensors.numpy import load_file

    from recursa.rl.rewards import correctness
    from recursa.rl.train import TrainSettings, train

    data = tiny_data(tmp_path / "data")
    out = tmp_path / "out"
    settings = TrainSettings(
        data=str(data),
        model=str(bundled_model),
        out=str(out),
        prompts_per_step=1,  # 1 prompt x 4 rollouts (the paper's group size) per step
        micro_batch_size=4,
        steps=2,
        save_steps=2,
        max_prompt_length=1024,
        max_response_length=16,
        gradient_checkpointing=False,
    )
    result = train(settings, reward_funcs=[correctness, brevity], quiet=True)

    assert result.steps == 2 and result.rows == 2 and result.dropped_rows == 0
    assert (out / "checkpoint-2" / "model.safetensors").is_file()
    assert (result.final_dir / "config.json").is_file()
    config = json.loads((result.final_dir / "config.json").read_text())
    assert "quantization_config" not in config  # a plain, reloadable checkpoint

    log = [json.loads(line) for line in result.reward_log.read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]
    for record in log:
        assert {"reward", "reward_std", "rewards/correctness/mean"} <= set(record)
        assert 0.0 <= record["rewards/correctness/mean"] <= 1.0

    # The trained weights moved away from the dequantised GGUF weights, but only slightly
    # (so the comparison is between the same tensor, in the same layout).
    reader = gguf.GGUFReader(str(bundled_model))
    tensor = next(t for t in reader.tensors if t.name == "blk.0.ffn_down.weight")
    before = gguf.dequantize(tensor.data, tensor.tensor_type)
    after = load_file(str(result.final_dir / "model.safetensors"))[
        "model.layers.0.mlp.down_proj.weight"
    ]
    assert after.shape == before.shape
    change = float(abs(after - before).max())
    assert 0.0 < change < 0.05


def test_missing_data_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["rl", "train", "--data", str(tmp_path / "none"), "--model", "m", "--out", str(tmp_path)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "build-data" in err and "Traceback" not in err


def test_batch_layout_is_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tiny_data(tmp_path / "data")
    code = main(
        [
            "rl",
            "train",
            "--data",
            str(data),
            "--model",
            "m",
            "--out",
            str(tmp_path / "o"),
            "--prompts-per-step",
            "3",
            "--micro-batch-size",
            "8",
        ]
    )
    assert code == 2
    assert "multiple of micro_batch_size" in capsys.readouterr().err


def test_config_file_and_unknown_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "train.yaml"
    cfg.write_text("data: nowhere\nmodel: m\nout: o\nrolouts: 4\n")
    assert main(["rl", "train", "--config", str(cfg)]) == 2
    assert "rolouts" in capsys.readouterr().err
    cfg.write_text(f"data: {tmp_path / 'nowhere'}\nmodel: m\nout: o\nrollouts: 1\n")
    assert main(["rl", "train", "--config", str(cfg)]) == 2
    assert "rollouts" in capsys.readouterr().err
