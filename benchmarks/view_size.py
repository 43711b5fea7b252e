"""How big a `recursa view` page gets and how fast it opens, for runs of thousands of problems.

A real evaluation on the mock backend (a local jsonl benchmark of general questions, so the
view loads the problems again and rebuilds every prompt, checking each against the journal's
request hash) is written once per size; then this measures building the page
(`recursa.view.write_view`), its size, and in Debian's headless chromium (tests/browser.py)
the time from navigation to the overview rendered (charts, table, filters: the page's
`data-ready`), and the time to open one problem's lineage (its data parsed on demand).

    .venv/bin/python benchmarks/view_size.py [--problems 200 2000] [-n 4] [-k 2] [-t 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/browser.py


def make_run(size: int, n: int, k: int, t: int, root: Path) -> Path:
    import recursa

    data = root / f"questions-{size}.jsonl"
    with data.open("w") as fh:
        for i in range(size):
            row = {"id": f"q{i}", "question": f"What is {i} + {i % 7}?", "answer": str(i + i % 7)}
            fh.write(json.dumps(row) + "\n")
    out = root / f"run-{size}"
    recursa.evaluate(str(data), out=out, backend="mock", n=n, k=k, t=t, max_tokens=64)
    return out


def measure(run: Path, root: Path) -> dict[str, float]:
    from tests.browser import Browser, chromium_path

    from recursa.view import write_view

    start = time.perf_counter()
    page = write_view([run], root / f"{run.name}.html")
    build = time.perf_counter() - start
    result = {"build_s": build, "size_mib": page.stat().st_size / 2**20}
    if chromium_path() is None:
        print("chromium is not installed: page opening not measured", file=sys.stderr)
        return result
    browser = Browser()
    try:
        opened = []
        for _ in range(3):  # the first load includes chromium's own warm-up
            browser.send("Page.navigate", {"url": "about:blank"})
            opened.append(browser.open(page.resolve().as_uri()))
        result["open_s"] = min(opened[1:])
        result["open_first_s"] = opened[0]
        last = browser.eval(
            "document.querySelector('#problem-table tbody tr:last-child').dataset.problem"
        )
        start = time.perf_counter()
        browser.click(f'#problem-table tbody tr[data-problem="{last}"]')
        browser.wait_for(f"document.querySelectorAll('.node[data-problem=\"{last}\"]').length > 0")
        result["problem_s"] = time.perf_counter() - start
        result["heap_mib"] = (
            browser.eval("performance.memory ? performance.memory.usedJSHeapSize : 0") / 2**20
        )
    finally:
        browser.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("-n", type=int, default=4)
    parser.add_argument("-k", type=int, default=2)
    parser.add_argument("-t", type=int, default=3)
    args = parser.parse_args()
    print(f"N = {args.n}, K = {args.k}, T = {args.t}; mock backend, general questions")
    print()
    head = ["problems", "candidates", "page MiB", "build s", "open s (first)", "open problem s"]
    print("| " + " | ".join([*head, "JS heap MiB"]) + " |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for size in args.problems:
            run = make_run(size, args.n, args.k, args.t, root)
            r = measure(run, root)
            opened = f"{r['open_s']:.2f} ({r['open_first_s']:.2f})" if "open_s" in r else "-"
            problem = f"{r['problem_s']:.2f}" if "problem_s" in r else "-"
            heap = f"{r['heap_mib']:.0f}" if "heap_mib" in r else "-"
            print(
                f"| {size} | {size * args.n * args.t} | {r['size_mib']:.1f} | {r['build_s']:.1f} "
                f"| {opened} | {problem} | {heap} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
