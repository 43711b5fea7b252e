"""The overview of a run: accuracy curves, settings, and one row per problem with its flags.

Curves are computed from problems.jsonl (so a running eval has them for the problems done so
far) with the definitions of docs/EVALUATION.md: mean accuracy (pass@1), majority accuracy,
pass@N, pass@2 on ARC, and the raw mean score (Reasoning Gym's partial credit); tokens are the
journal's prompt + completion tokens of those problems, cumulated over steps. A problem that
stopped early keeps its last population for the later steps, as in the metrics.

Flags, per problem and run:
- "RSA changed the outcome": the majority answer at step 1 and at the last step differ in
  correctness ("fixed": wrong then right; "broke": right then wrong);
- "population herded": agreement rose from step 1 to the last step while mean accuracy fell.
"""

from __future__ import annotations

from typing import Any

from recursa.runs.journal import GENERATE
from recursa.view.runs import ViewRun

_PREVIEW = 80


def _clip(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text if len(text) <= _PREVIEW else text[: _PREVIEW - 1] + "…"


def _correct(scores: list[float]) -> list[bool]:
    return [float(s) >= 1.0 for s in scores]


def problem_flags(steps: list[dict[str, Any]]) -> tuple[str, bool]:
    """("fixed" | "broke" | "", herded) from a record's graded steps (module docstring)."""
    if len(steps) < 2:
        return "", False
    first, last = steps[0], steps[-1]
    changed = ""
    if not first["majority_correct"] and last["majority_correct"]:
        changed = "fixed"
    elif first["majority_correct"] and not last["majority_correct"]:
        changed = "broke"
    acc0 = sum(_correct(first["scores"])) / max(len(first["scores"]), 1)
    acc1 = sum(_correct(last["scores"])) / max(len(last["scores"]), 1)
    herded = last["agreement"] > first["agreement"] and acc1 < acc0
    return changed, herded


def problem_row(run: ViewRun, pid: str, index: int) -> dict[str, Any]:
    """One problem's line in the overview table."""
    record = run.records.get(pid)
    if record is None:
        steps_seen = {r.step for r in run.rows.get(pid, []) if r.phase == GENERATE}
        return {
            "i": index,
            "id": pid,
            "task": run.task_name(pid),
            "state": "running",
            "ok": None,
            "steps": max(steps_seen, default=0),
        }
    steps = record.get("steps", [])
    changed, herded = problem_flags(steps)
    final = record.get("final", {})
    return {
        "i": index,
        "id": pid,
        "task": record.get("task"),
        "state": "done",
        "ok": bool(final.get("correct")),
        "answer": _clip(final.get("answer")),
        "reference": _clip(record.get("reference")),
        "steps": record.get("steps_run", len(steps)),
        "maj": [int(bool(s["majority_correct"])) for s in steps],
        "acc": [round(sum(_correct(s["scores"])) / max(len(s["scores"]), 1), 4) for s in steps],
        "agr": [round(float(s["agreement"]), 4) for s in steps],
        "changed": changed,
        "herded": herded,
    }


def curves(run: ViewRun) -> list[dict[str, Any]]:
    """Per step over the finished problems: the accuracies and cumulative tokens."""
    t_max = int(run.rsa.get("t", 1))
    records = [run.records[pid] for pid in run.order if pid in run.records]
    for r in records:
        t_max = max(t_max, len(r.get("steps", [])))
    tokens = [0] * t_max
    for r in records:
        for row in run.rows.get(str(r["id"]), []):
            if row.phase == GENERATE and row.step <= t_max:
                tokens[row.step - 1] += row.prompt_tokens + row.completion_tokens
    lines: list[dict[str, Any]] = []
    cumulative = 0
    partial = any(
        0.0 < float(s) < 1.0 for r in records for st in r.get("steps", []) for s in st["scores"]
    ) or any(r.get("task") == "rg" for r in records)
    arc = any(r.get("task") == "arc" for r in records)
    for t in range(t_max):
        mean = score = passn = major = 0.0
        for r in records:
            steps = r.get("steps", [])
            if not steps:
                continue
            st = steps[min(t, len(steps) - 1)]
            ok = _correct(st["scores"])
            mean += sum(ok) / max(len(ok), 1)
            score += sum(float(s) for s in st["scores"]) / max(len(st["scores"]), 1)
            passn += any(ok)
            major += bool(st["majority_correct"])
        cumulative += tokens[t]
        count = len(records)
        line: dict[str, Any] = {
            "step": t + 1,
            "problems": count,
            "mean_acc": mean / count if count else None,
            "majority_acc": major / count if count else None,
            "pass_at_n": passn / count if count else None,
            "cumulative_tokens": cumulative,
        }
        if partial:
            line["mean_score"] = score / count if count else None
        if arc:
            line["pass_at_2"] = _pass_at_2(run, t)
        lines.append(line)
    return lines


def _pass_at_2(run: ViewRun, t: int) -> float | None:
    """pass@2 of the ARC problems at step t+1: taken from metrics.jsonl once the run has
    finished (the records do not keep the second cluster's grade)."""
    if t < len(run.metrics):
        value = run.metrics[t].get("pass_at_2")
        return None if value is None else float(value)
    return None


def settings_summary(run: ViewRun) -> dict[str, Any]:
    """The settings a reader compares runs by, plus the raw settings."""
    rsa, backend, ev = run.rsa, run.settings.get("backend", {}), run.settings.get("eval", {})
    summary = run.summary or {}
    final = summary.get("metrics", {})
    return {
        "benchmark": run.settings.get("benchmark"),
        "method": ev.get("method"),
        "N": rsa.get("n"),
        "K": rsa.get("k"),
        "T": rsa.get("t"),
        "temperature": rsa.get("temperature"),
        "max tokens": rsa.get("max_tokens"),
        "seed": rsa.get("seed"),
        "budget": ev.get("budget"),
        "early stop": rsa.get("early_stop"),
        "backend": backend.get("backend"),
        "model": backend.get("model") or "(default)",
        "problems": run.settings.get("dataset", {}).get("problems"),
        "final accuracy": final.get("final_acc"),
        "wall time (s)": summary.get("run", {}).get("wall_s"),
    }


def run_overview(run: ViewRun, index: int) -> dict[str, Any]:
    """Everything the overview shows of one run (small: no texts)."""
    done = sum(1 for pid in run.order if pid in run.records)
    return {
        "index": index,
        "label": run.label,
        "path": str(run.path),
        "finished": run.finished,
        "done": done,
        "total": run.settings.get("dataset", {}).get("problems", len(run.order)),
        "settings": settings_summary(run),
        "raw_settings": run.settings,
        "curve": curves(run),
        "problems_note": run.problems_note,
        "rows": [problem_row(run, pid, i) for i, pid in enumerate(run.order)],
    }
