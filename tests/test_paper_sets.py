"""`paper:NAME`: the paper's released files, downloaded (from a local HTTP server here, via
RECURSA_PAPER_DATA_URL), checked by sha256, cached and evaluated."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recursa.benchmarks import paper
from recursa.cli import main
from recursa.errors import RecursaError

PROMPT = "What is $1+{i}$? Let's think step by step and output the final answer within \\boxed{{}}."


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


def aime_rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "data_source": "aime25",
            "prompt": [{"role": "user", "content": PROMPT.format(i=i)}],
            "ability": "math",
            "reward_model": {"ground_truth": str(1 + i), "style": "rule"},
            "extra_info": {"split": "test", "index": i},
        }
        for i in range(count)
    ]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    """A directory served on 127.0.0.1 (a free port) as RECURSA_PAPER_DATA_URL."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(paper.BASE_URL_ENV, f"http://127.0.0.1:{server.server_address[1]}/")
        mp.setenv(paper.CACHE_ENV, str(tmp_path / "cache"))
        yield root
    server.shutdown()
    server.server_close()


def publish(root: Path, path: str, data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve `data` as the paper's `path`, and make the expected checksum that of `expected`."""
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(data)
    facts = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "rows": 0}
    monkeypatch.setitem(paper.facts()["files"], path, facts)


def test_the_shipped_facts_are_the_papers() -> None:
    assert paper.commit() == "537ec6065f21a5d128a164d14c0de6f4ed79de1f"
    assert len(paper.supergpqa_uuids()) == len(set(paper.supergpqa_uuids())) == 1000
    assert paper.paper_sets()["supergpqa"] == [
        f"supergpqa/supergpqa_test_{i}.parquet" for i in range(1, 6)
    ]
    assert paper.facts()["files"]["aime25/test.parquet"]["sha256"].startswith("19df862b")


def test_downloads_come_from_the_pinned_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(paper.BASE_URL_ENV, raising=False)
    assert paper.base_url() == (
        "https://raw.githubusercontent.com/HyperPotatoNeo/RSA/"
        "537ec6065f21a5d128a164d14c0de6f4ed79de1f/data"
    )


def test_paper_aime25_is_downloaded_checked_cached_and_evaluated(
    served: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish(served, "aime25/test.parquet", parquet_bytes(aime_rows(3)), monkeypatch)
    argv = ["--quiet", "eval", "paper:aime25", "--backend", "mock", "-n", "2", "-k", "2", "-t", "2"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    assert "paper:aime25 (rsa, 3 problems)" in capsys.readouterr().out
    cached = tmp_path / "cache" / "paper" / paper.commit() / "aime25" / "test.parquet"
    assert cached.read_bytes() == (served / "aime25" / "test.parquet").read_bytes()
    # The cache serves the next run: the server's copy may go.
    (served / "aime25" / "test.parquet").unlink()
    assert main([*argv, "--out", str(tmp_path / "again")]) == 0


def test_a_wrong_file_is_refused_in_one_sentence(
    served: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    publish(served, "hmmt25/test.parquet", parquet_bytes(aime_rows(2)), monkeypatch)
    (served / "hmmt25" / "test.parquet").write_bytes(parquet_bytes(aime_rows(1)))  # tampered
    with pytest.raises(RecursaError, match="refusing the file downloaded from") as err:
        paper.fetch("hmmt25/test.parquet")
    assert "\n" not in str(err.value) and "not the paper's hmmt25/test.parquet" in str(err.value)
    assert not (tmp_path / "cache" / "paper" / paper.commit() / "hmmt25" / "test.parquet").exists()
    code = main(["eval", "paper:hmmt25", "--backend", "mock", "--out", str(tmp_path / "r")])
    err_text = capsys.readouterr().err.strip()
    assert code != 0 and err_text.count("\n") == 0 and "refusing the file" in err_text


def test_paper_supergpqa_reads_its_five_files_in_order(
    served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for part in range(1, 6):
        rows = [
            {
                "data_source": "m-a-p/SuperGPQA",
                "prompt": [{"role": "user", "content": f"Q{part}.{i}?\nA) x\nB) y\n\\boxed{{}}"}],
                "ability": "science",
                "reward_model": {"ground_truth": "B", "style": "rule"},
                "extra_info": {"uuid": f"u{part}-{i}", "index": i},
            }
            for i in range(2)
        ]
        publish(
            served, f"supergpqa/supergpqa_test_{part}.parquet", parquet_bytes(rows), monkeypatch
        )
    data = paper.load_paper("paper:supergpqa", limit=None, strict=True)
    assert [p.id for p in data.problems] == [f"u{p}-{i}" for p in range(1, 6) for i in range(2)]
    assert {p.task for p in data.problems} == {"mcq"}


def test_an_unknown_paper_set_names_the_known_ones() -> None:
    with pytest.raises(Exception, match="paper:aime25"):
        paper.load_paper("paper:aime24", limit=None, strict=False)
