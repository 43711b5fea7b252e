"""Hugging Face hub benchmarks: AIME-25, HMMT-25 (MathArena) and SuperGPQA (m-a-p).

`datasets` is imported lazily. The hub is probed first (a few seconds at most) so that a
machine without network fails with one sentence instead of minutes of retries; with
HF_HUB_OFFLINE=1 the probe is skipped and `datasets` reads its local cache.
"""

from __future__ import annotations

import os
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from recursa.benchmarks.base import Dataset, RowSkip, collect
from recursa.benchmarks.rows import check_problem
from recursa.errors import MissingDependencyError, RecursaError, UsageError
from recursa.hashing import stable_rng
from recursa.tasks import Problem

SUPERGPQA_SIZE = 1000
_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class HubSource:
    repo: str
    split: str
    task: str


SOURCES: dict[str, HubSource] = {
    "aime25": HubSource("MathArena/aime_2025", "train", "math"),
    "hmmt25": HubSource("MathArena/hmmt_feb_2025", "train", "math"),
    "supergpqa": HubSource("m-a-p/SuperGPQA", "train", "mcq"),
    "deepscaler": HubSource("agentica-org/DeepScaleR-Preview-Dataset", "train", "math"),
}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def probe_hub(repo: str) -> None:
    """Raise RecursaError (one sentence) when the hub cannot be reached quickly."""
    import httpx

    try:
        httpx.head(_endpoint(), timeout=_PROBE_TIMEOUT_S, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise RecursaError(
            f"the dataset {repo} needs the Hugging Face hub, which cannot be reached from here "
            f"({type(exc).__name__}); set HF_HUB_OFFLINE=1 to use a cached copy"
        ) from exc


def fetch_rows(source: HubSource) -> list[dict[str, Any]]:
    """The split's rows from the hub (or the local cache when HF_HUB_OFFLINE=1)."""
    try:
        import datasets
    except ImportError as exc:
        raise MissingDependencyError("datasets", "eval") from exc
    if not _offline():
        probe_hub(source.repo)
    try:
        data = datasets.load_dataset(source.repo, split=source.split)
    except Exception as exc:  # datasets raises ConnectionError, FileNotFoundError, ...
        raise RecursaError(
            f"the dataset {source.repo} could not be loaded from the Hugging Face hub "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    return [dict(row) for row in data]


def math_rows(rows: Iterable[Mapping[str, Any]]) -> Iterator[tuple[int, Problem | RowSkip]]:
    """MathArena rows: `problem_idx`, `problem`, `answer`."""
    for index, row in enumerate(rows):
        own = row.get("problem_idx", row.get("id"))
        try:
            yield (
                index,
                check_problem(
                    Problem(
                        id=str(own) if own is not None else str(index),
                        question=str(row.get("problem") or row.get("question") or ""),
                        answer=row.get("answer"),
                        task="math",
                    )
                ),
            )
        except RowSkip as skip:
            yield index, skip


def _letter(row: Mapping[str, Any], options: list[str]) -> str | None:
    letter = str(row.get("answer_letter") or "").strip().upper()
    if letter:
        return letter
    answer = str(row.get("answer") or "").strip()
    if answer in options:
        return string.ascii_uppercase[options.index(answer)]
    return answer.upper() if len(answer) == 1 else None


def supergpqa_rows(rows: Iterable[Mapping[str, Any]]) -> Iterator[tuple[int, Problem | RowSkip]]:
    """SuperGPQA rows: `uuid`, `question`, `options` (up to ten, A-J), `answer_letter`."""
    for index, row in enumerate(rows):
        options = [str(o) for o in (row.get("options") or [])]
        meta: dict[str, Any] = {"options": options}
        for key in ("discipline", "field", "subfield", "difficulty"):
            if row.get(key) is not None:
                meta[key] = row[key]
        try:
            if not options:
                raise RowSkip("no options")
            yield (
                index,
                check_problem(
                    Problem(
                        id=str(row.get("uuid") or row.get("id") or index),
                        question=str(row.get("question") or ""),
                        answer=_letter(row, options),
                        task="mcq",
                        meta=meta,
                    )
                ),
            )
        except RowSkip as skip:
            yield index, skip


def paper_subset(
    rows: list[dict[str, Any]], size: int | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of the paper's SuperGPQA questions (by uuid), in the paper's order: all 1,000,
    or its first `size`; and a note naming uuids the rows lack (none on the real dataset)."""
    from recursa.benchmarks.paper import supergpqa_uuids

    wanted = supergpqa_uuids()[: size or SUPERGPQA_SIZE]
    by_uuid = {str(r.get("uuid")): r for r in rows if r.get("uuid") is not None}
    missing = [u for u in wanted if u not in by_uuid]
    notes = []
    if missing:
        notes.append(
            f"{len(missing)} of the paper's {len(wanted)} SuperGPQA questions are not in this "
            f"copy of the dataset (first: {missing[0]}); running without them"
        )
    return [by_uuid[u] for u in wanted if u in by_uuid], notes


def load_hub(spec: str, *, size: int | None, limit: int | None, strict: bool) -> Dataset:
    source = SOURCES[spec]
    if size is not None and size < 1:
        raise UsageError(f"--size must be at least 1, not {size}")
    rows = fetch_rows(source)
    if source.task == "mcq":
        subset, notes = paper_subset(rows, size)
        return collect(spec, supergpqa_rows(subset), strict=strict, limit=limit, notes=notes)
    if size is not None and spec == "deepscaler" and size < len(rows):
        # A seeded sample of `size` problems (kept in dataset order), as the RL mixture takes.
        picked = sorted(stable_rng("deepscaler-sample", 0).sample(range(len(rows)), size))
        rows = [rows[i] for i in picked]
    return collect(spec, math_rows(rows), strict=strict, limit=limit)
