"""The paper's own evaluation sets: facts shipped with recursa, and its released files.

`data/paper_sets.json` (a copy of the facts about github.com/HyperPotatoNeo/RSA's `data/`
folder at one commit) holds each released file's sha256, size and row count, the 1,000
SuperGPQA question uuids the paper evaluated (in file order) and the per-task composition of
its two Reasoning Gym mixes. `supergpqa`, `rg-games` and `rg-cognition` use those facts;
`paper:NAME` (aime25, hmmt25, rg_games, rg_cognition, supergpqa) evaluates the released
file itself: downloaded once from the reference repository pinned to that commit, checked
against its sha256 (a file that differs is refused), cached, and read as verl rows.

`RECURSA_PAPER_DATA_URL` replaces the download's base URL (a mirror; the files keep their
paths under it and must still match the checksums); `RECURSA_CACHE_DIR` the cache
directory (default `$XDG_CACHE_HOME/recursa`, else `~/.cache/recursa`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from recursa.benchmarks.base import Dataset, RowSkip, collect
from recursa.errors import RecursaError, UsageError
from recursa.tasks import Problem

BASE_URL_ENV = "RECURSA_PAPER_DATA_URL"
CACHE_ENV = "RECURSA_CACHE_DIR"
REPOSITORY = "HyperPotatoNeo/RSA"
_TIMEOUT_S = 60.0


@functools.cache
def facts() -> dict[str, Any]:
    """The shipped facts (`data/paper_sets.json`)."""
    text = resources.files("recursa.benchmarks").joinpath("data/paper_sets.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def commit() -> str:
    """The reference repository's commit the facts (and downloads) are pinned to."""
    about = str(facts()["about"])
    marker = "commit "
    start = about.index(marker) + len(marker)
    return about[start : start + 40]


def supergpqa_uuids() -> list[str]:
    """The 1,000 SuperGPQA question uuids the paper evaluated, in its files' order."""
    return [str(u) for u in facts()["supergpqa_uuids"]]


def rg_composition(mix: str) -> dict[str, int]:
    """Problems per Reasoning Gym task in the paper's mix ("rg-games" or "rg-cognition")."""
    key = {"rg-games": "rg_games_composition", "rg-cognition": "rg_cognition_composition"}[mix]
    return {str(k): int(v) for k, v in facts()[key].items()}


def paper_sets() -> dict[str, list[str]]:
    """`paper:NAME` -> the released files it reads (supergpqa: its five files, in order)."""
    sets: dict[str, list[str]] = {}
    for path in facts()["files"]:
        sets.setdefault(path.split("/", 1)[0], []).append(path)
    return sets


def base_url() -> str:
    """Where the released files are downloaded from (`RECURSA_PAPER_DATA_URL` overrides)."""
    override = os.environ.get(BASE_URL_ENV, "").strip()
    if override:
        return override.rstrip("/")
    return f"https://raw.githubusercontent.com/{REPOSITORY}/{commit()}/data"


def cache_dir() -> Path:
    """The download cache for this commit's files."""
    root = os.environ.get(CACHE_ENV, "").strip()
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "recursa"
    return base / "paper" / commit()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _matches(data: bytes, expected: dict[str, Any]) -> bool:
    return len(data) == int(expected["bytes"]) and _sha256(data) == expected["sha256"]


def fetch(path: str) -> Path:
    """The released file `path` (e.g. "aime25/test.parquet"), from the cache when a copy with
    the right checksum is there, else downloaded, checked and cached. A download that does
    not match the recorded sha256 and size is refused (RecursaError) and not kept."""
    expected = facts()["files"][path]
    target = cache_dir() / path
    if target.is_file() and _matches(target.read_bytes(), expected):
        return target
    url = f"{base_url()}/{path}"
    import httpx

    try:
        response = httpx.get(url, timeout=_TIMEOUT_S, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise RecursaError(
            f"could not download the paper's file {path} from {url} ({type(exc).__name__}); "
            f"set {BASE_URL_ENV} to a mirror, or place the file in {target}"
        ) from exc
    if response.status_code != 200:
        raise RecursaError(
            f"could not download the paper's file {path}: {url} answered HTTP "
            f"{response.status_code}"
        )
    data = response.content
    if not _matches(data, expected):
        raise RecursaError(
            f"refusing the file downloaded from {url}: it is not the paper's {path} (sha256 "
            f"{_sha256(data)[:16]}..., {len(data)} bytes; expected {expected['sha256'][:16]}..., "
            f"{expected['bytes']} bytes)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def load_paper(spec: str, *, limit: int | None, strict: bool) -> Dataset:
    """`paper:NAME`: the paper's released file(s) as verl rows, in file order."""
    from recursa.benchmarks.local import read_rows
    from recursa.benchmarks.rows import row_problem

    name = spec.split(":", 1)[1].strip().replace("-", "_")
    sets = paper_sets()
    if name not in sets:
        raise UsageError(
            f"unknown paper set {name!r}; choose one of {', '.join('paper:' + n for n in sets)}"
        )
    paths = [fetch(p) for p in sets[name]]

    def problems() -> Iterator[tuple[int, Problem | RowSkip]]:
        index = 0
        for path in paths:
            for _, row in read_rows(path):
                yield index, row if isinstance(row, RowSkip) else row_problem(index, row)
                index += 1

    return collect(spec, problems(), strict=strict, limit=limit)
