"""`recursa eval BENCHMARK --out RUN_DIR`: a benchmark, journaled, with per-step metrics."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from recursa.cli.options import (
    add_model_flags,
    add_settings_flags,
    sandbox_from_args,
    settings_from_args,
)
from recursa.errors import RecursaError, UsageError
from recursa.runs import EvalConfig, evaluate
from recursa.runs.report import steps_table, uses_scores
from recursa.sandbox import SandboxConfig

BENCHMARK_HELP = (
    "aime25, hmmt25, supergpqa, arc-agi-2, lcb-v6, deepscaler, rg:TASK[,TASK...], rg-games, "
    "rg-cognition, paper:NAME (the paper's released file: aime25, hmmt25, rg_games, "
    "rg_cognition, supergpqa; downloaded and checked by sha256), or a local "
    ".jsonl/.json/.parquet file (LiveCodeBench rows are detected by their columns)"
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a benchmark into a run directory",
        description="Run a benchmark with RSA (or a baseline --method) and leave in RUN_DIR: "
        "settings.json, the journal of every completion (journal.sqlite), metrics.jsonl (one "
        "line per step), problems.jsonl, summary.json and report.md. An interrupted run "
        "continues with --resume and ends exactly as an uninterrupted one would.",
    )
    p.add_argument("benchmark", metavar="BENCHMARK", help=BENCHMARK_HELP)
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="the run directory")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in RUN_DIR (same settings), asking only for what is missing",
    )
    p.add_argument("--json", action="store_true", help="print summary.json on stdout")
    group = p.add_argument_group("evaluation settings")
    add_model_flags(group, EvalConfig, skip=frozenset({"sandbox"}))
    add_model_flags(p.add_argument_group("code sandbox (docs/SANDBOX.md)"), SandboxConfig)
    add_settings_flags(p, skip=frozenset({"task"}))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    values = settings_from_args(args)
    for name in EvalConfig.model_fields:
        if name in vars(args):
            values[name] = getattr(args, name)
    # Sandbox settings: a config file may hold them flat (flag names) or under `sandbox:`;
    # flags override either, one setting at a time.
    nested = values.pop("sandbox", None)
    sandbox = dict(nested) if isinstance(nested, dict) else {}
    if nested is not None and not isinstance(nested, dict):
        raise UsageError("the config file's 'sandbox' setting must be a mapping of settings")
    for name in SandboxConfig.model_fields:
        if name in values:
            sandbox[name] = values.pop(name)
    sandbox.update(sandbox_from_args(args))
    if sandbox:
        values["sandbox"] = sandbox
    try:
        result = evaluate(
            args.benchmark, out=args.out, resume=args.resume, progress=not args.quiet, **values
        )
    except KeyboardInterrupt:
        print(
            f"recursa: interrupted; every completion so far is journaled in {args.out}: "
            "continue with the same command and --resume",
            file=sys.stderr,
        )
        return 130
    except RecursaError as exc:
        if args.json:  # scripts reading stdout get the failure too (the sentence goes to stderr)
            print(json.dumps({"error": str(exc), "exit_code": exc.exit_code}, ensure_ascii=False))
        raise
    if args.json:
        print(json.dumps(result.summary, ensure_ascii=False, default=str))
        return 0
    final = result.summary["metrics"]
    scores = uses_scores(result.summary)
    paper = (
        f", mean score {100 * final['mean_score']:.1f}% (the paper's number for Reasoning "
        f"Gym), majority score {100 * final['majority_score']:.1f}%"
        if scores
        else ""
    )
    print(
        f"{result.summary['benchmark']} ({result.summary['method']}, "
        f"{result.summary['problems']} problems): final answer accuracy "
        f"{100 * final['final_acc']:.1f}%, mean {100 * final['mean_acc']:.1f}%, majority "
        f"{100 * final['majority_acc']:.1f}%, pass@N {100 * final['pass_at_n']:.1f}%{paper}"
    )
    empty = result.summary["run"].get("empty_completions", 0)
    if empty:
        print(f"({empty} completions were empty: candidates without an answer)")
    print(steps_table(result.steps, scores))
    print(f"\nresults in {result.run_dir}")
    return 0
