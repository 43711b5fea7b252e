"""`recursa rl verl-config`: the launch script parses, and carries the paper's overrides.

Nothing imports verl (it needs GPUs). Running the script with a stand-in `python3` on PATH
shows exactly the arguments verl would receive; tests/test_rl_verl_hydra.py composes them
with verl's own trainer configuration."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from recursa.cli import main
from recursa.rl.rows import build_row, write_parquet
from recursa.tasks import Problem


def write_script(tmp_path: Path, *extra: str, val_rows: int = 1) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    row = build_row(Problem("p", "What is 1+1?", "2", "math"), "unit", 0, "train", None, 4, 0)
    write_parquet([row], data / "train.parquet")
    write_parquet([row] * val_rows, data / "val.parquet")
    out = tmp_path / "launch.sh"
    code = main(
        [
            "-q",
            "rl",
            "verl-config",
            "--data",
            str(data),
            "--model",
            "Qwen/Qwen3-4B-Instruct-2507",
            "--out",
            str(out),
            *extra,
        ]
    )
    assert code == 0
    return out


def run_with_fake_python(script: Path, tmp_path: Path, *args: str) -> list[str]:
    """Run the script with a `python3` that records its arguments instead of training."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "argv.txt"
    fake = bin_dir / "python3"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "REWARD_FILE": "/r/rw.py"}
    proc = subprocess.run(
        ["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return record.read_text().splitlines()


def test_script_passes_bash_syntax_check(tmp_path: Path) -> None:
    script = write_script(tmp_path, "--nodes", "2", "--gpus-per-node", "8")
    assert os.access(script, os.X_OK)
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_script_hands_verl_the_paper_settings(tmp_path: Path) -> None:
    script = write_script(tmp_path, "--nodes", "2", "--gpus-per-node", "4", "-k", "4")
    argv = run_with_fake_python(script, tmp_path, "trainer.resume_mode=disable")
    assert argv[:2] == ["-m", "verl.trainer.main_ppo"]
    given = dict(a.split("=", 1) for a in argv[2:])
    data = tmp_path / "data"
    expected = {
        "algorithm.adv_estimator": "rloo",
        "algorithm.use_kl_in_reward": "False",
        "actor_rollout_ref.actor.use_kl_loss": "False",
        "actor_rollout_ref.actor.optim.lr": "1e-06",
        "actor_rollout_ref.rollout.n": "4",
        "actor_rollout_ref.rollout.name": "vllm",
        "data.train_files": f"{data.resolve()}/train.parquet",
        "data.val_files": f"{data.resolve()}/val.parquet",
        "data.max_prompt_length": str(4 * 8192 + 1024),
        "data.max_response_length": "8192",
        "data.train_batch_size": "256",
        "actor_rollout_ref.model.path": "Qwen/Qwen3-4B-Instruct-2507",
        "reward.custom_reward_function.path": "/r/rw.py",
        "reward.custom_reward_function.name": "compute_score",
        "actor_rollout_ref.rollout.max_model_len": str(4 * 8192 + 1024 + 8192),
        "trainer.nnodes": "2",
        "trainer.n_gpus_per_node": "4",
        "trainer.total_training_steps": "300",
        "trainer.test_freq": "50",
        "trainer.resume_mode": "disable",
    }
    for key, value in expected.items():
        assert given.get(key) == value, key
    assert "custom_reward_function.path" not in given  # verl >= 0.9 ignores the top-level key


def test_an_empty_validation_file_is_not_used(tmp_path: Path) -> None:
    script = write_script(tmp_path, "--gpus-per-node", "1", val_rows=0)
    given = dict(a.split("=", 1) for a in run_with_fake_python(script, tmp_path)[2:])
    assert given["data.val_files"].endswith("/train.parquet")
    assert given["trainer.test_freq"] == "-1"


def test_prompt_length_follows_k_and_max_tokens(tmp_path: Path) -> None:
    script = write_script(tmp_path, "-k", "2", "--max-tokens", "1000", "--gpus-per-node", "1")
    given = dict(a.split("=", 1) for a in run_with_fake_python(script, tmp_path)[2:])
    assert given["data.max_prompt_length"] == str(2 * 1000 + 1024)
    assert given["data.max_response_length"] == "1000"


def test_the_default_reward_file_is_the_installed_rewards_module(tmp_path: Path) -> None:
    script = write_script(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "REWARD_FILE"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    # Evaluate only the variable block: everything before the verl call.
    head = script.read_text().split("python3 -m verl")[0] + 'echo "$REWARD_FILE"\n'
    proc = subprocess.run(["bash", "-c", head], env=env, capture_output=True, text=True)
    import recursa.rl.rewards as rewards

    assert proc.stdout.strip() == str(Path(rewards.__file__))


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["--gpus-per-node", "3"], "multiple of the GPU count"),
        (["--tensor-parallel", "3"], "multiple of tensor_parallel"),
        (["--rollouts", "1"], "rollouts"),
    ],
)
def test_impossible_layouts_are_one_sentence(
    tmp_path: Path, args: list[str], phrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["rl", "verl-config", "--data", "d", "--model", "m", "--out", str(tmp_path / "x.sh"), *args]
    )
    assert code == 2
    assert phrase in capsys.readouterr().err
    assert not (tmp_path / "x.sh").exists()


def test_missing_model_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rl", "verl-config", "--data", "d", "--out", str(tmp_path / "x.sh")]) == 2
    assert "--model is required" in capsys.readouterr().err
