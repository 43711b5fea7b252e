"""The sandbox's ordinary behaviour: runs, limits, classification, parallelism, tiers."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from recursa.sandbox import Sandbox, SandboxConfig, SandboxUnavailable, Status
from recursa.sandbox.execution import classify, last_line
from recursa.sandbox.isolation import candidate_modes


def small(**kw: object) -> SandboxConfig:
    values: dict[str, object] = {"test_timeout": 5.0, "memory_mb": 256, **kw}
    return SandboxConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def box() -> Sandbox:
    return Sandbox(small())


def test_runs_a_program_with_its_input(box: Sandbox) -> None:
    run = box.run_sync("import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))", "4 5 6")
    assert run.status is Status.OK
    assert run.stdout.strip() == "15"
    assert run.exit_code == 0
    assert run.wall_s > 0 and run.cpu_s is not None


def test_runtime_error_reports_the_last_traceback_line(box: Sandbox) -> None:
    run = box.run_sync("def f(x):\n    return x[3]\nf([1])\n")
    assert run.status is Status.RUNTIME_ERROR
    assert run.message == "IndexError: list index out of range"
    assert "Traceback" in run.stderr_tail


def test_nonzero_exit_without_traceback(box: Sandbox) -> None:
    run = box.run_sync("import sys\nsys.exit(3)")
    assert run.status is Status.RUNTIME_ERROR
    assert run.exit_code == 3
    assert "code 3" in run.message


def test_environment_is_scrubbed_and_home_is_the_workdir(box: Sandbox) -> None:
    run = box.run_sync("import os, json\nprint(json.dumps(dict(os.environ)))\nprint(os.getcwd())")
    assert run.ok
    env_line, cwd = run.stdout.strip().splitlines()
    import json

    env = json.loads(env_line)
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "RECURSA_SANDBOX"}
    assert env["HOME"] == cwd and env["TMPDIR"] == cwd


def test_working_directory_is_fresh_and_removed(box: Sandbox) -> None:
    first = box.run_sync("import os\nopen('left.txt', 'w').write('x')\nprint(os.getcwd())")
    second = box.run_sync("import os\nprint(sorted(os.listdir('.')))\nprint(os.getcwd())")
    assert first.ok and second.ok
    assert "left.txt" not in second.stdout
    assert not os.path.exists(first.stdout.strip())


def test_prelude_names_and_extra_files_are_visible(box: Sandbox) -> None:
    run = box.run_sync(
        "print(gcd(12, 18), open('data.txt').read())",
        prelude="from math import gcd\n",
        files={"data.txt": "hello"},
    )
    assert run.ok, run.message
    assert run.stdout.strip() == "6 hello"


def test_cpu_limit_is_a_timeout() -> None:
    box = Sandbox(small(test_timeout=20.0, cpu_seconds=1))
    run = box.run_sync("while True:\n    pass\n")
    assert run.status is Status.TIMEOUT
    assert "CPU" in run.message
    assert run.wall_s < 15


def test_file_size_limit() -> None:
    box = Sandbox(small(disk_mb=1))
    run = box.run_sync("open('big', 'wb').write(b'x' * 3_000_000)")
    assert run.status is Status.RUNTIME_ERROR


def test_parallel_runs_are_bounded() -> None:
    box = Sandbox(small(max_parallel_tests=2))

    async def four() -> list[float]:
        start = time.monotonic()
        runs = await asyncio.gather(*(box.run("import time\ntime.sleep(1)") for _ in range(4)))
        assert all(r.ok for r in runs)
        return [time.monotonic() - start]

    (elapsed,) = asyncio.run(four())
    # Four one-second sleeps two at a time cannot finish in under two seconds.
    assert elapsed >= 2.0


def test_sync_run_inside_a_running_loop(box: Sandbox) -> None:
    async def inside() -> str:
        return box.run_sync("print('from a loop')").stdout

    assert asyncio.run(inside()).strip() == "from a loop"


def test_auto_picks_a_tier_that_works(box: Sandbox) -> None:
    tier = asyncio.run(box.isolation())
    assert tier.mode in candidate_modes("auto")
    if os.geteuid() == 0 and tier.mode == "namespaces":
        assert tier.own_uid


def test_classification_rules() -> None:
    common = {"wall_limit": 2.0, "cpu_limit": 2, "output_limit_mb": 1.0}
    ok = classify(timed_out=False, output_over=False, launcher={"exit": 0}, stderr="", **common)
    assert ok == (Status.OK, "")
    mem = classify(
        timed_out=False,
        output_over=False,
        launcher={"exit": 1},
        stderr="Traceback...\nMemoryError\n",
        **common,
    )
    assert mem[0] is Status.MEMORY
    cpu = classify(
        timed_out=False, output_over=False, launcher={"signal": 24, "cpu": 2.0}, stderr="", **common
    )
    assert cpu[0] is Status.TIMEOUT
    segv = classify(
        timed_out=False, output_over=False, launcher={"signal": 11, "cpu": 0.1}, stderr="", **common
    )
    assert segv == (Status.RUNTIME_ERROR, "killed by SIGSEGV")
    gone = classify(timed_out=False, output_over=False, launcher=None, stderr="", **common)
    assert gone[0] is Status.RUNTIME_ERROR
    setup = classify(
        timed_out=False, output_over=False, launcher={"error": "boom"}, stderr="", **common
    )
    assert setup == (Status.SANDBOX_ERROR, "boom")
    assert last_line("a\nb\n\n") == "b"


def test_unavailable_isolation_is_one_clear_error_and_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import recursa.sandbox.runner as runner

    box = Sandbox(small(isolation="namespaces"))
    monkeypatch.setattr(runner, "launcher_command", lambda mode: ["/nonexistent/unshare"])
    calls = []
    real_execute = box._execute

    async def counting(*args: object) -> object:
        calls.append(args)
        return await real_execute(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(box, "_execute", counting)
    with pytest.raises(SandboxUnavailable, match="cannot run programs on this machine"):
        box.run_sync("print(1)")
    with pytest.raises(SandboxUnavailable):
        box.run_sync("print(1)")
    assert len(calls) == 1
