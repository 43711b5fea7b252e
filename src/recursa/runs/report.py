"""Reports of finished runs: a Markdown table per run and PNG plots comparing runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recursa.errors import MissingDependencyError, RecursaError, UsageError
from recursa.runs.rundir import METRICS, SUMMARY, RunDir, read_jsonl

STEP_PLOT = "accuracy_vs_step.png"
TOKEN_PLOT = "accuracy_vs_tokens.png"


@dataclass
class RunData:
    """A finished run as the report sees it."""

    path: Path
    settings: dict[str, Any]
    lines: list[dict[str, Any]]
    summary: dict[str, Any]

    @property
    def method(self) -> str:
        return str(self.summary.get("method") or self.settings.get("eval", {}).get("method", "?"))

    @property
    def scores(self) -> bool:
        """Whether the paper's number for this run is the raw score (Reasoning Gym)."""
        return uses_scores(self.summary)

    @property
    def label(self) -> str:
        return f"{self.path.name} ({self.method})"


def load_run(path: str | Path) -> RunData:
    """Read a run directory's settings, per-step metrics and summary."""
    run = RunDir(path)
    settings = run.require_settings()
    metrics, summary = run.file(METRICS), run.file(SUMMARY)
    if not metrics.is_file() or not summary.is_file():
        raise UsageError(
            f"the run in {run.path} has not finished (no metrics yet); finish it with "
            "'recursa eval ... --resume'"
        )
    return RunData(run.path, settings, read_jsonl(metrics), _read_json(summary))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RecursaError(f"{path} is not valid JSON") from exc
    if not isinstance(data, dict):
        raise RecursaError(f"{path} does not hold a JSON object")
    return data


def uses_scores(summary: dict[str, Any]) -> bool:
    """Reasoning Gym runs report the scorer's raw score (the reference's mean and majority)."""
    return summary.get("metrics", {}).get("paper_metric") == "mean_score"


def _pct(value: Any) -> str:
    return "" if value is None else f"{100.0 * float(value):.1f}"


def steps_table(lines: list[dict[str, Any]], scores: bool = False) -> str:
    """Per step: mean accuracy (pass@1), majority accuracy, pass@N (pass@2 on ARC), tokens;
    with `scores` (Reasoning Gym), the mean and majority raw scores first: the paper's."""
    arc = any("pass_at_2" in line for line in lines)
    head = ["step"]
    head += ["mean score % (paper)", "majority score %"] if scores else []
    head += ["mean acc %", "majority acc %", "pass@N %"]
    head += ["pass@2 %"] if arc else []
    head += ["tokens", "cumulative tokens"]
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for line in lines:
        cells = [str(line["step"])]
        if scores:
            cells += [_pct(line.get("mean_score")), _pct(line.get("majority_score"))]
        cells += [
            _pct(line["mean_acc"]),
            _pct(line["majority_acc"]),
            _pct(line["pass_at_n"]),
        ]
        cells += [_pct(line.get("pass_at_2"))] if arc else []
        cells += [
            str(line["prompt_tokens"] + line["completion_tokens"]),
            str(line["cumulative_tokens"]),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def markdown_report(
    settings: dict[str, Any], lines: list[dict[str, Any]], summary: dict[str, Any]
) -> str:
    """report.md: what ran, the final numbers, and the per-step table."""
    rsa, backend = settings.get("rsa", {}), settings.get("backend", {})
    final = summary.get("metrics", {})
    model = backend.get("model") or "(default)"
    out = [
        f"# recursa evaluation: {settings.get('benchmark')}",
        "",
        f"- method: {summary.get('method')}; N = {rsa.get('n')}, K = {rsa.get('k')}, "
        f"T = {rsa.get('t')}, temperature {rsa.get('temperature')}, seed {rsa.get('seed')}",
        f"- backend: {backend.get('backend')}, model {model}",
        f"- problems: {summary.get('problems')} (rows skipped: {summary.get('skipped', 0)})",
        f"- final answer accuracy: {_pct(final.get('final_acc'))}%",
    ]
    if uses_scores(summary):
        out.append(
            f"- mean score (the paper's number for Reasoning Gym): "
            f"{_pct(final.get('mean_score'))}%, majority score "
            f"{_pct(final.get('majority_score'))}%"
        )
    if "verified_acc" in final:
        out.append(f"- self-verified accuracy: {_pct(final['verified_acc'])}%")
    if "pass_at_2" in final:
        out.append(f"- pass@2: {_pct(final['pass_at_2'])}%")
    out += [
        f"- tokens: {final.get('prompt_tokens')} prompt + {final.get('completion_tokens')} "
        f"completion over {final.get('generations')} generations (median completion "
        f"{final.get('completion_tokens_median')})",
        f"- wall time: {summary.get('run', {}).get('wall_s', 0):.1f} s",
        "",
        "## Per step",
        "",
        steps_table(lines, uses_scores(summary)),
        "",
    ]
    return "\n".join(out)


def comparison_table(runs: list[RunData]) -> str:
    """The per-step table of each run, under its label."""
    parts = []
    for run in runs:
        parts += [f"## {run.label}", "", steps_table(run.lines, run.scores), ""]
    return "\n".join(parts)


def _curves(scores: bool) -> list[tuple[str, ...]]:
    """The per-step curves: the paper's mean and majority (raw scores for Reasoning Gym)."""
    if scores:
        return [
            ("mean_score", "-", "mean score"),
            ("majority_score", "--", "majority score"),
            ("pass_at_n", ":"),
        ]
    return [("mean_acc", "-", "mean"), ("majority_acc", "--", "majority"), ("pass_at_n", ":")]


def write_plots(runs: list[RunData], out_dir: str | Path) -> list[Path]:
    """accuracy_vs_step.png (mean, majority, pass@N per run) and accuracy_vs_tokens.png
    (mean accuracy against cumulative tokens, one line per run)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "eval") from exc
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, run in enumerate(runs):
        steps = [line["step"] for line in run.lines]
        for key, style, *name in _curves(run.scores):
            label = f"{run.label}: {name[0] if name else 'pass@N'}"
            ys = [100.0 * line.get(key, 0.0) for line in run.lines]
            ax.plot(steps, ys, style, marker="o", color=colors[i % len(colors)], label=label)
    ax.set(xlabel="step", ylabel="accuracy (%)", title="Accuracy by step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    step_path = out / STEP_PLOT
    fig.savefig(step_path, dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, run in enumerate(runs):
        xs = [line["cumulative_tokens"] for line in run.lines]
        key = "mean_score" if run.scores else "mean_acc"
        ys = [100.0 * line.get(key, line["mean_acc"]) for line in run.lines]
        ax.plot(xs, ys, "-", marker="o", color=colors[i % len(colors)], label=run.label)
    ax.set(
        xlabel="cumulative tokens (prompt + completion)",
        ylabel="mean accuracy or score (%)",
        title="Accuracy by compute",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    token_path = out / TOKEN_PLOT
    fig.savefig(token_path, dpi=120)
    plt.close(fig)
    return [step_path, token_path]
