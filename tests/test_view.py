"""`recursa view`: the page's data against the run's own files (no browser here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from recursa.engine import draw_subset
from recursa.tasks.arc import arc_problem
from recursa.view import build_view, write_view
from recursa.view.overview import problem_flags
from tests.viewkit import hash_of, journal_hashes, mock_run, page_blocks, prompt_text, read_jsonl

SRC = str(Path(__file__).resolve().parents[1] / "src")


def cli(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run(
        [sys.executable, "-m", "recursa", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def rsa_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mock_run(tmp_path_factory.mktemp("view") / "rsa")


def test_nodes_match_problems_jsonl_and_journal(rsa_run: Path) -> None:
    blocks = page_blocks(build_view([rsa_run]))
    records = read_jsonl(rsa_run / "problems.jsonl")
    rows = journal_hashes(rsa_run)
    overview = blocks["recursa-data"]
    assert [r["id"] for r in overview["runs"][0]["rows"]] == [r["id"] for r in records]
    checked = 0
    for i, record in enumerate(records):
        data = blocks[f"d0-{i}"]
        assert data["id"] == record["id"]
        assert len(data["steps"]) == len(record["steps"]) == 3
        for step, graded in zip(data["steps"], record["steps"], strict=True):
            assert [n["answer"] for n in step["nodes"]] == graded["answers"]
            assert [n["ok"] for n in step["nodes"]] == [int(s >= 1) for s in graded["scores"]]
            for node in step["nodes"]:
                row = rows[(record["id"], "generate", step["step"], node["slot"])]
                assert node["text"] == row.text
                want = (
                    draw_subset(0, record["id"], step["step"], node["slot"], 4, 2)
                    if step["step"] > 1
                    else []
                )
                assert node["parents"] == want
                # the prompt, joined from its segments, is what the engine sent
                assert node["prompt"]["check"] == "match"
                messages = prompt_text(data, step["step"], node["prompt"])
                assert hash_of(messages, row) == row.request_hash
                if step["step"] > 1:
                    assert "---- Solution 1 ----" in messages[0]["content"]
                    # the parents' texts are referenced, not copied into every prompt
                    segs = node["prompt"]["messages"][0]["seg"]
                    assert [s[0] for s in segs if isinstance(s, list)] == node["parents"]
                checked += 1
    assert checked == len(records) * 4 * 3


def test_curves_equal_metrics_jsonl(rsa_run: Path) -> None:
    run = page_blocks(build_view([rsa_run]))["recursa-data"]["runs"][0]
    metrics = read_jsonl(rsa_run / "metrics.jsonl")
    assert run["finished"] and run["done"] == 6
    for line, want in zip(run["curve"], metrics, strict=True):
        for key in ("mean_acc", "majority_acc", "pass_at_n"):
            assert line[key] == pytest.approx(want[key])
        assert line["cumulative_tokens"] == want["cumulative_tokens"]
        assert 0.0 <= line["mean_score"] <= 1.0  # Reasoning Gym: the raw score too


def test_flags_follow_their_definitions() -> None:
    def step(maj: bool, scores: list[float], agreement: float) -> dict[str, object]:
        return {"majority_correct": maj, "scores": scores, "agreement": agreement}

    fixed = [step(False, [0, 0, 1, 0], 0.5), step(True, [1, 1, 1, 0], 0.75)]
    assert problem_flags(fixed) == ("fixed", False)
    herded = [step(True, [1, 1, 0, 0], 0.5), step(False, [0, 0, 0, 1], 0.75)]
    assert problem_flags(herded) == ("broke", True)
    assert problem_flags([step(True, [1], 1.0)]) == ("", False)


def test_a_running_run_shows_finished_and_running_problems(rsa_run: Path, tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    for name in ("settings.json", "journal.sqlite"):
        (live / name).write_bytes((rsa_run / name).read_bytes())
    lines = (rsa_run / "problems.jsonl").read_text().splitlines(keepends=True)
    # two problems finished, a third being written (half a line), the rest only journaled
    (live / "problems.jsonl").write_text("".join(lines[:2]) + lines[2][:40])
    blocks = page_blocks(build_view([live]))
    run = blocks["recursa-data"]["runs"][0]
    assert not run["finished"] and run["done"] == 2 and run["total"] == 6
    states = [r["state"] for r in run["rows"]]
    assert states == ["done", "done"] + ["running"] * 4
    running = blocks["d0-3"]
    assert running["state"] == "running"
    assert all(n["ok"] is None and n["text"] for s in running["steps"] for n in s["nodes"])
    assert run["curve"][0]["problems"] == 2


def test_self_verify_and_majority(tmp_path: Path) -> None:
    verify = mock_run(tmp_path / "verify", method="self-verify")
    majority = mock_run(tmp_path / "majority", method="majority")
    blocks = page_blocks(build_view([verify, majority]))
    records = read_jsonl(verify / "problems.jsonl")
    rows = journal_hashes(verify)
    data = blocks["d0-0"]
    assert len(data["steps"]) == 1
    nodes = data["steps"][0]["nodes"]
    assert [n["verdict"] for n in nodes] == records[0]["verify"]["verdicts"]
    for n in nodes:
        row = rows[(records[0]["id"], "verify", 1, n["slot"])]
        assert n["vtext"] == row.text
        assert n["vprompt"]["check"] == "match"
        assert hash_of(prompt_text(data, 1, n["vprompt"]), row) == row.request_hash
    assert len(blocks["d1-0"]["steps"]) == 1  # majority: one column
    assert len(blocks["recursa-data"]["runs"]) == 2


def test_prompts_cut_by_the_context_window_are_rebuilt(tmp_path: Path) -> None:
    # The mock counts words; 200 tokens (the prompt and 32 for the answer among them) cannot hold
    # two 46-word candidates whole.
    run = mock_run(tmp_path / "cut", size=2, context_tokens=200, max_tokens=32)
    blocks = page_blocks(build_view([run]))
    rows = journal_hashes(run)
    notes = []
    for i in range(2):
        data = blocks[f"d0-{i}"]
        for step in data["steps"]:
            for node in step["nodes"]:
                assert node["prompt"]["check"] == "match", node["prompt"]
                row = rows[(data["id"], "generate", step["step"], node["slot"])]
                assert (
                    hash_of(prompt_text(data, step["step"], node["prompt"]), row)
                    == row.request_hash
                )
                notes.append(node["prompt"].get("note", ""))
    assert any("cut" in note for note in notes)


def test_arc_problems_given_in_code_carry_grids(tmp_path: Path) -> None:
    import recursa

    problems = [
        arc_problem(
            f"arc{i}",
            [{"input": [[i, 1], [1, i]], "output": [[1, i], [i, 1]]}],
            [[0, i], [i, 0]],
            [[i, 0], [0, i]],
        )
        for i in range(2)
    ]
    out = tmp_path / "arc"
    recursa.evaluate(problems, out=out, backend="mock", n=2, k=2, t=2, max_tokens=32)
    without = page_blocks(build_view([out]))["d0-0"]
    assert without["question"] is None and "in code" in without["note"]
    data = page_blocks(build_view([out], problems=problems))["d0-0"]
    assert data["arc"]["test_input"] == [[0, 0], [0, 0]]
    assert data["arc"]["reference"] == [[0, 0], [0, 0]]
    grids = [n.get("grid") for s in data["steps"] for n in s["nodes"] if n["answer"] is not None]
    assert grids and all(isinstance(g, list) for g in grids)
    assert all(n["prompt"]["check"] == "match" for s in data["steps"] for n in s["nodes"])


def test_cli_writes_a_self_contained_page(rsa_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    done = cli("view", str(rsa_run), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out.resolve())
    html = out.read_text()
    assert 'id="accuracy-chart"' in html and "uPlot" in html
    # nothing is fetched: no external script, stylesheet or image
    assert (
        "src=" not in html
        and "<link" not in html
        and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    )
    bad = cli("view", str(tmp_path / "nothing"))
    assert (
        bad.returncode == 2 and bad.stderr.count("\n") == 1 and "is not a directory" in bad.stderr
    )
    port_only = cli("view", str(rsa_run), "--port", "8000")
    assert port_only.returncode == 2 and "--serve" in port_only.stderr
    report = cli("report", str(rsa_run), "--no-plots")
    assert report.returncode == 0 and "recursa view" in report.stderr


def test_write_view_refuses_a_directory(rsa_run: Path, tmp_path: Path) -> None:
    from recursa.errors import UsageError

    with pytest.raises(UsageError, match="is a directory"):
        write_view([rsa_run], tmp_path)


def test_serve_refreshes_while_the_run_grows(rsa_run: Path, tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    for name in ("settings.json", "journal.sqlite"):
        (live / name).write_bytes((rsa_run / name).read_bytes())
    lines = (rsa_run / "problems.jsonl").read_text().splitlines(keepends=True)
    (live / "problems.jsonl").write_text(lines[0])
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "recursa", "view", str(live), "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving http://127.0.0.1:" in line, proc.stderr.read() if proc.stderr else ""
        url = line.split("serving ", 1)[1].split()[0]

        def get(path: str) -> str:
            with urllib.request.urlopen(url + path, timeout=30) as resp:
                return str(resp.read().decode())

        first_version = get("version")
        first = page_blocks(get(""))["recursa-data"]
        assert first["live"] and first["version"] == first_version
        assert first["runs"][0]["done"] == 1
        time.sleep(0.05)
        with (live / "problems.jsonl").open("a") as fh:
            fh.write("".join(lines[1:3]))
        assert get("version") != first_version
        again = page_blocks(get(""))["recursa-data"]
        assert again["runs"][0]["done"] == 3
        assert json.loads(get("overview"))["runs"][0]["done"] == 3
        # the served page holds no lineage: each is built when the page asks for it
        assert not [k for k in page_blocks(get("")) if k.startswith("d0-")]
        lineage = json.loads(get("lineage?run=0&i=1"))
        assert (
            lineage["state"] == "done"
            and lineage["steps"][2]["nodes"][0]["prompt"]["check"] == "match"
        )
        assert json.loads(get("lineage?run=0&i=5"))["state"] == "running"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            get("lineage?run=0&i=99")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_solve_view_page(tmp_path: Path) -> None:
    page = tmp_path / "solve.html"
    done = cli(
        "-q", "solve", "What is 2+3?", "--backend", "mock", "--task", "math",
        "-n", "3", "-k", "2", "-t", "2", "--reference", "5", "--view", str(page),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(page.resolve()) in done.stdout
    blocks = page_blocks(page.read_text())
    data = blocks["d0-0"]
    assert data["question"] == "What is 2+3?" and data["reference"] == "5"
    assert [len(s["nodes"]) for s in data["steps"]] == [3, 3]
    assert all(n["ok"] in (0, 1) for s in data["steps"] for n in s["nodes"])
    assert all(n["prompt"]["check"] == "built" for s in data["steps"] for n in s["nodes"])
    assert json.dumps(blocks["recursa-data"]["runs"][0]["rows"][0]["ok"]) in ("true", "false")


def test_code_nodes_name_the_failing_public_test() -> None:
    from recursa.tasks import Problem, get_task
    from recursa.view.lineage import NodeIn, StepIn, build_lineage

    tests = [{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}] * 2
    problem = Problem("c0", "Add two numbers.", None, "code", {"public_tests": tests})
    node = NodeIn(1, 0, "```python\nprint(0)\n```", "print(0)", score=0.0,
                  reason="test 2 of 5 (public): wrong answer: expected 3, got 0")  # fmt: skip
    data = build_lineage(get_task("code"), problem, [StepIn(1, [node])], None)
    assert data["steps"][0]["nodes"][0]["failed_test"] == {"index": 1, "public": True}
    assert data["tests"][1] == {"input": "1 2\n", "output": "3\n"}


def test_view_reads_a_run_while_eval_writes_it(tmp_path: Path) -> None:
    """A real `recursa eval` in another process, slowed by the mock's latency: the page is
    built from its journal (SQLite WAL) and problems.jsonl mid-run, then again at the end."""
    out = tmp_path / "growing"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "recursa", "-q", "eval", "rg:basic_arithmetic", "--size", "4",
         "--out", str(out), "--backend", "mock", "--mock-latency", "0.15", "--concurrency", "1",
         "-n", "2", "-k", "2", "-t", "2", "--max-tokens", "32"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        mid = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "journal.sqlite").exists() and (out / "settings.json").exists():
                run = page_blocks(build_view([out]))["recursa-data"]["runs"][0]
                if run["rows"]:
                    mid = run
                    break
            time.sleep(0.1)
        assert mid is not None, "the run ended before the view could read it mid-way"
        assert not mid["finished"] and mid["done"] < 4
        assert any(r["state"] == "running" for r in mid["rows"])
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    end = page_blocks(build_view([out]))["recursa-data"]["runs"][0]
    assert end["finished"] and end["done"] == 4
    assert [r["state"] for r in end["rows"]] == ["done"] * 4


@pytest.mark.parametrize(
    ("method", "settings", "steps"),
    [("self-refine", {"n": 2, "t": 2}, 2), ("single-aggregation", {"n": 2, "k": 2}, 2)],
)
def test_refinement_and_single_aggregation_prompts(
    tmp_path: Path, method: str, settings: dict[str, int], steps: int
) -> None:
    run = mock_run(tmp_path / method, method=method, size=2, **settings)
    blocks = page_blocks(build_view([run]))
    rows = journal_hashes(run)
    data = blocks["d0-0"]
    assert len(data["steps"]) == steps
    for step in data["steps"]:
        for node in step["nodes"]:
            row = rows[(data["id"], "generate", step["step"], node["slot"])]
            assert node["prompt"]["check"] == "match"
            assert hash_of(prompt_text(data, step["step"], node["prompt"]), row) == row.request_hash
    header = "---- Candidate ----" if method == "self-refine" else "---- Solution 2 ----"
    assert header in prompt_text(data, 2, data["steps"][1]["nodes"][0]["prompt"])[0]["content"]


def test_summarized_candidates_are_what_the_prompts_show(tmp_path: Path) -> None:
    run = mock_run(tmp_path / "summaries", size=2, summarize_candidates=True, t=2)
    blocks = page_blocks(build_view([run]))
    rows = journal_hashes(run)
    data = blocks["d0-0"]
    first = data["steps"][0]["nodes"]
    assert all(n["summary"] == rows[(data["id"], "summarize", 1, n["slot"])].text for n in first)
    for node in data["steps"][1]["nodes"]:
        row = rows[(data["id"], "generate", 2, node["slot"])]
        assert node["prompt"]["check"] == "match"
        content = prompt_text(data, 2, node["prompt"])[0]["content"]
        assert hash_of([{"role": "user", "content": content}], row) == row.request_hash
        assert first[node["parents"][0]]["summary"].strip() in content
