"""`recursa solve QUESTION`: RSA on one question."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from recursa.api import solve_async
from recursa.backends import create_backend
from recursa.cli.options import add_settings_flags, configs_from_args
from recursa.cli.progress import SolveProgress
from recursa.errors import RecursaError, UsageError
from recursa.result import SolveResult


def register(sub: Any) -> None:
    p = sub.add_parser(
        "solve",
        help="run RSA on one question",
        description="Run Recursive Self-Aggregation on one question and print the selected "
        "answer. Defaults follow the paper (N 16, K 4, T 10, temperature 1.0) and the "
        "bundled SmolLM2-135M-Instruct model.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("question", help="the question; '-' reads it from standard input")
    p.add_argument(
        "--show-population", action="store_true", help="print every candidate of every step"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (answer, text, steps, usage, config)",
    )
    p.add_argument(
        "--reference",
        metavar="ANSWER",
        default=None,
        help="the correct answer, if known: candidates are graded against it (in --view)",
    )
    p.add_argument(
        "--view",
        metavar="PAGE",
        default=None,
        help="also write the population's lineage as a self-contained HTML page "
        "(see 'recursa view') and print its path",
    )
    add_settings_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    question = sys.stdin.read() if args.question == "-" else args.question
    if not question.strip():
        raise UsageError("the question is empty")
    rsa, backend = configs_from_args(args)
    if args.view and Path(args.view).is_dir():
        raise UsageError(f"--view {args.view} is a directory; name the HTML file to write")
    model = create_backend(backend)  # load first: a bad model fails before any progress bar
    progress = SolveProgress(
        total=rsa.n * rsa.t,
        steps=rsa.t,
        enabled=not args.quiet and not args.json,
        show_population=args.show_population,
    )
    page = None

    async def session() -> SolveResult:
        # One event loop for the whole command: the backend is closed on the loop that
        # owns its keep-alive connections.
        nonlocal page
        try:
            result = await solve_async(
                question,
                backend=model,
                rsa=rsa,
                backend_config=backend,
                reference=args.reference,
                on_step=progress.on_step,
                on_generation=progress.on_generation,
            )
            if args.view:  # before the model closes: prompts are rebuilt with its tokenizer
                from recursa.tasks import Problem
                from recursa.view import write_solve_view

                problem = Problem("question", question, args.reference, rsa.task)
                # In a thread: the page grades with its own event loop.
                page = await asyncio.to_thread(
                    write_solve_view, args.view, problem, result, model, rsa, backend
                )
            return result
        finally:
            await model.aclose()

    try:
        result = asyncio.run(session())
    except RecursaError as exc:
        if args.json:  # scripts reading stdout get the failure too (the sentence goes to stderr)
            print(json.dumps({"error": str(exc), "exit_code": exc.exit_code}, ensure_ascii=False))
        raise
    finally:
        progress.close()
    if args.json:
        out = result.to_dict()
        out["config"] = {**out["config"], **backend.model_dump(mode="json", exclude={"api_key"})}
        out["backend"] = model.details()
        print(json.dumps(out, ensure_ascii=False))
        if page is not None:
            print(f"wrote {page}", file=sys.stderr)
        return 0
    print(f"Final answer: {result.answer if result.answer is not None else '(none extracted)'}")
    print(
        f"({result.usage['generations']} generations, {result.usage['prompt_tokens']} prompt "
        f"+ {result.usage['completion_tokens']} completion tokens)"
    )
    empty = result.usage.get("empty_completions", 0)
    if empty:
        print(f"({empty} of {result.usage['generations']} completions were empty: no answer)")
    if rsa.early_stop:
        print(early_stop_line(result.steps_run, rsa.t, result.generations_saved))
    print("\n" + result.text.strip())
    if page is not None:
        print(f"\nThe population, step by step: {page.resolve()}")
    return 0


def early_stop_line(steps_run: int, steps: int, saved: int) -> str:
    """What early stop did, in one line."""
    if saved:
        return (
            f"(early stop: the population agreed at steps {steps_run - 1} and {steps_run}; "
            f"stopped after step {steps_run} of {steps}, {saved} generations saved)"
        )
    return f"(early stop: no consensus before step {steps}; 0 generations saved)"
