"""Helpers for the `recursa view` tests: real mock runs, and reading a page's data blocks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import recursa
from recursa.runs.journal import JournalReader
from recursa.view.rebuild import journaled_hash

_BLOCK = re.compile(r'<script type="application/json" id="([^"]+)">(.*?)</script>', re.S)


def mock_run(out: Path, method: str = "rsa", size: int = 6, **settings: Any) -> Path:
    """A real evaluation of rg:basic_arithmetic on the mock backend into `out`."""
    values: dict[str, Any] = {"n": 4, "k": 2, "t": 3, "max_tokens": 64, "seed": 0}
    if method != "rsa":
        values = {"n": 4, "max_tokens": 64, "seed": 0}
    values.update(settings)
    recursa.evaluate(
        "rg:basic_arithmetic", out=out, size=size, backend="mock", method=method, **values
    )
    return out


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def page_blocks(html: str) -> dict[str, Any]:
    """Every JSON data block of a page, by element id."""
    return {bid: json.loads(text) for bid, text in _BLOCK.findall(html)}


def prompt_text(lineage: dict[str, Any], step: int, prompt: dict[str, Any]) -> list[dict[str, str]]:
    """A node's prompt messages from its segments, as the page's script joins them."""
    same = prompt.get("same_step")
    nodes = next(
        (s["nodes"] for s in lineage["steps"] if s["step"] == (step if same else step - 1)), []
    )
    out = []
    for m in prompt["messages"]:
        parts = []
        for seg in m["seg"]:
            if isinstance(seg, int):
                parts.append(lineage["strings"][seg])
            else:
                node = nodes[seg[0]]
                parts.append(node.get("shown", node["text"]))
        out.append({"role": m["role"], "content": "".join(parts)})
    return out


def journal_hashes(run_dir: Path) -> dict[tuple[str, str, int, int], Any]:
    reader = JournalReader(run_dir / "journal.sqlite")
    try:
        return {(r.problem_id, r.phase, r.step, r.slot): r for r in reader.rows()}
    finally:
        reader.close()


def hash_of(messages: list[dict[str, str]], row: Any, top_p: float | None = None) -> str:
    return journaled_hash(messages, row, top_p)
