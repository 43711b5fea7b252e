"""The `recursa` command: JSON shape, config files, and one-sentence errors with exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recursa.cli import main


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recursa.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=300,
    )


def test_solve_json_on_mock_backend(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "solve",
            "What is 2+3?",
            "--backend",
            "mock",
            "-n",
            "4",
            "-k",
            "2",
            "-t",
            "3",
            "--task",
            "math",
            "--json",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"answer", "text", "steps", "usage", "config"}
    assert len(out["steps"]) == 3 and all(len(s["candidates"]) == 4 for s in out["steps"])
    first = out["steps"][0]["candidates"][0]
    assert set(first) >= {"text", "answer", "prompt_tokens", "completion_tokens"}
    assert out["usage"]["prompt_tokens"] > 0 and out["usage"]["completion_tokens"] > 0
    assert out["config"]["n"] == 4 and out["config"]["backend"] == "mock"
    assert "api_key" not in out["config"]


def test_config_file_is_read_and_flags_override_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "rsa.yaml"
    cfg.write_text("n: 3\nk: 2\nsteps: 2\nbackend: mock\ntask: math\n".replace("steps", "t"))
    assert main(["solve", "q", "--config", str(cfg), "-k", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["config"]["n"], out["config"]["k"], out["config"]["t"]) == (3, 1, 2)


def test_mock_runs_are_identical_for_the_same_seed(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "solve",
        "q",
        "--backend",
        "mock",
        "-n",
        "4",
        "-k",
        "2",
        "-t",
        "2",
        "--json",
        "--mock-latency",
        "0.01",
    ]
    main(args)
    a = capsys.readouterr().out
    main(args)
    assert a == capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "code", "phrase"),
    [
        (["-n", "2", "-k", "3"], 2, "cannot exceed"),
        (["-n", "0"], 2, "greater than or equal to 1"),
        (["-t", "0"], 2, "greater than or equal to 1"),
        (["--temperature", "-0.5"], 2, "temperature"),
        (["--max-tokens", "0"], 2, "max_tokens"),
        (["-n", "many"], 2, "invalid int value"),
        (["--task", "poetry"], 2, "unknown task 'poetry'; choose one of general, math"),
        (["--backend", "llamacpp", "--model", "/nonexistent/model.gguf"], 2, "does not exist"),
        (["--backend", "openai"], 2, "--base-url"),
        (
            ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--max-retries", "0"],
            1,
            "http://127.0.0.1:9/v1",
        ),
        (["--config", "/nonexistent.yaml"], 2, "does not exist"),
    ],
)
def test_bad_input_gets_one_sentence_and_exit_code(args: list[str], code: int, phrase: str) -> None:
    proc = run_cli("solve", "What is 1+1?", "--backend", "mock", *args)
    assert proc.returncode == code, proc.stderr
    assert phrase in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 3


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a model at all")
    proc = run_cli("solve", "q", "--model", str(fake))
    assert proc.returncode == 2
    assert "is not a GGUF file" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_config_key_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("populaton: 3\n")
    proc = run_cli("solve", "q", "--config", str(cfg))
    assert proc.returncode == 2 and "populaton" in proc.stderr


def test_help_explains_the_flags() -> None:
    proc = run_cli("solve", "--help")
    assert proc.returncode == 0
    for flag in (
        "--population",
        "--subset",
        "--steps",
        "--backend",
        "--context-tokens",
        "--show-population",
        "--json",
        "--config",
        "--api-key",
        "--concurrency",
    ):
        assert flag in proc.stdout


def test_a_key_on_the_command_line_is_warned_about_without_echoing_it(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["solve", "What is 2+2?", "--backend", "mock", "-n", "2", "-k", "2", "-t", "1"]
    with caplog.at_level("WARNING", logger="recursa"):
        assert main(["-q", *args, "--api-key", "sk-visible-secret"]) == 0
    warned = [r.getMessage() for r in caplog.records if "--api-key" in r.getMessage()]
    assert len(warned) == 1 and "visible to other users" in warned[0]
    assert "OPENAI_API_KEY" in warned[0] and "--api-key-file" in warned[0]
    everything = " ".join(r.getMessage() for r in caplog.records) + str(capsys.readouterr())
    assert "sk-visible-secret" not in everything
    caplog.clear()
    with caplog.at_level("WARNING", logger="recursa"):
        assert main(["-q", *args]) == 0
    assert not any("--api-key" in r.getMessage() for r in caplog.records)
