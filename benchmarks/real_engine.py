"""Real engine: completion tokens per second of an RSA evaluation against the same server
driven directly with the same requests.

The benchmark starts llama-cpp-python's OpenAI-compatible server with the bundled
SmolLM2-135M-Instruct on 127.0.0.1 and runs, on the same warm server:

- RSA: `recursa.evaluate` with the openai backend (the backend `--backend openai` builds),
  journal, grading and all; an httpx request hook records the exact body of every request it
  sends, in sending order;
- direct: the recorded bodies replayed with plain httpx, in the same order, at the same
  concurrency (an asyncio semaphore of the same size as the dispatcher's limit).

Throughput is completion tokens (the server's `usage`) over wall time, measured around the
whole `evaluate` call on the RSA side and from the first request to the last answer on the
direct side. llama.cpp's server runs one request at a time (later ones wait for its lock), so
both sides use the same concurrency (default 1) and the server does the same work; what
differs is only what recursa does around each request (prompt building, journal commits,
grading, scheduling). One short request warms the server up first; rounds alternate the order
(odd rounds RSA then direct, even rounds direct then RSA) so slow drift on a shared machine
does not favour one side. Besides the throughput ratio, each side's server occupancy (the share
of its wall time with one of its requests at the server) shows how much of any gap is idle
time recursa leaves, as opposed to the server running the same requests more slowly on a
shared machine. The server runs one thread (decode and prompt) by default: on a busy 2-core
machine a second llama.cpp thread that loses its core stalls every token (measured: 10-20x).

    python benchmarks/real_engine.py            # 4 problems, N 4, K 2, T 2, 64 tokens, 4 rounds
    python benchmarks/real_engine.py --quick    # 1 problem, N 2, 16 tokens, 2 rounds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from recursa import evaluate_async
from recursa.backends import create_backend
from recursa.backends.llamacpp import bundled_model_path
from recursa.backends.openai import OpenAIBackend
from recursa.config import BackendConfig
from recursa.tasks import Problem

MODEL_ALIAS = "smollm2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LlamaServer:
    """llama-cpp-python's server with the bundled model, on 127.0.0.1 (as tests/conftest.py)."""

    def __init__(self, n_ctx: int, n_threads: int | None, log: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(bundled_model_path()),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(n_ctx),
            "--model_alias",
            MODEL_ALIAS,
        ]
        if n_threads:
            cmd += ["--n_threads", str(n_threads), "--n_threads_batch", str(n_threads)]
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, seconds: float = 180.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"llama server did not start in {seconds:.0f} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def problems(count: int) -> list[Problem]:
    """Small arithmetic word problems with known answers."""
    return [
        Problem(
            id=f"p{i}",
            question=f"A shop sells {3 + i} boxes with {12 + 5 * i} pens each. How many pens?",
            answer=str((3 + i) * (12 + 5 * i)),
            task="math",
        )
        for i in range(count)
    ]


@dataclass
class Side:
    """One timed run of one side."""

    name: str
    requests: int
    completion_tokens: int
    wall_s: float
    #: Time with at least one request of this side at the server (the union of the
    #: intervals from sending a request to receiving its answer).
    in_flight_s: float
    #: CPU time (user + system) of this process, the client, during the run.
    client_cpu_s: float

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s

    @property
    def occupancy(self) -> float:
        """The share of the wall time the server had work from this side."""
        return self.in_flight_s / self.wall_s


def union_length(intervals: list[tuple[float, float]]) -> float:
    """Total length covered by the intervals."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


async def run_rsa(
    args: argparse.Namespace, base_url: str, out: Path, concurrency: int
) -> tuple[Side, list[bytes]]:
    """An RSA evaluation through the openai backend; returns its numbers and the request
    bodies it sent, in sending order."""
    bcfg = BackendConfig(
        backend="openai",
        base_url=base_url,
        model=MODEL_ALIAS,
        context_tokens=args.n_ctx,
        concurrency=concurrency,
    )
    backend = create_backend(bcfg)  # what `--backend openai` builds
    assert isinstance(backend, OpenAIBackend)
    bodies: list[bytes] = []
    sent: dict[int, float] = {}
    intervals: list[tuple[float, float]] = []

    async def on_request(request: httpx.Request) -> None:
        bodies.append(request.content)
        sent[id(request)] = time.perf_counter()

    async def on_response(response: httpx.Response) -> None:
        intervals.append((sent.pop(id(response.request)), time.perf_counter()))

    # The backend's own httpx client (the benchmark's only look inside it): hooks see the
    # exact bytes sent and when each answer came back (llama.cpp sends a non-streamed answer
    # whole, once generation is done).
    hooks = backend._client.event_hooks
    hooks["request"].append(on_request)
    hooks["response"].append(on_response)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        result = await evaluate_async(
            problems(args.problems),
            out=out,
            backend=backend,
            backend_config=bcfg,
            n=args.n,
            k=args.k,
            t=args.t,
            max_tokens=args.max_tokens,
            seed=args.seed,
        )
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        await backend.aclose()
    tokens = int(result.summary["metrics"]["completion_tokens"])
    side = Side("RSA (recursa evaluate)", len(bodies), tokens, wall, union_length(intervals), cpu)
    return side, bodies


async def run_direct(base_url: str, bodies: list[bytes], concurrency: int) -> Side:
    """The same bodies, in the same order, at the same concurrency, through plain httpx."""
    gate = asyncio.Semaphore(concurrency)
    intervals: list[tuple[float, float]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:

        async def one(body: bytes) -> int:
            async with gate:
                began = time.perf_counter()
                response = await client.post(
                    "/chat/completions",
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                intervals.append((began, time.perf_counter()))
            response.raise_for_status()
            return int(response.json()["usage"]["completion_tokens"])

        start, cpu = time.perf_counter(), time.process_time()
        tokens = await asyncio.gather(*(one(b) for b in bodies))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    busy = union_length(intervals)
    return Side("direct (httpx replay)", len(bodies), sum(tokens), wall, busy, cpu)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with right-aligned columns."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [
        "| " + " | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join(lines)


WARM_UP = {
    "model": MODEL_ALIAS,
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 8,
    "seed": 0,
}


async def measure(args: argparse.Namespace, base_url: str, workdir: Path) -> int:
    c = args.concurrency
    log = sys.stderr
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
        (await client.post("/chat/completions", json=WARM_UP)).raise_for_status()
    rows: list[tuple[int, Side]] = []
    bodies: list[bytes] = []
    reference: list[Any] | None = None
    same_requests = True
    for r in range(1, args.rounds + 1):
        # Odd rounds: RSA, then the replay of what it sent. Even rounds: the replay first
        # (of the previous RSA run's bodies; every run sends the same ones, checked below).
        order = ("rsa", "direct") if r % 2 == 1 else ("direct", "rsa")
        for which in order:
            print(f"round {r}: {which}...", file=log, flush=True)
            if which == "rsa":
                side, bodies = await run_rsa(args, base_url, workdir / f"rsa-{r}", c)
                sent = [json.loads(b) for b in bodies]
                reference = sent if reference is None else reference
                same_requests &= sent == reference
            else:
                side = await run_direct(base_url, bodies, c)
            rows.append((r, side))
    header = [
        "round",
        "side",
        "concurrency",
        "requests",
        "completion tokens",
        "wall s",
        "tok/s",
        "in flight s",
        "server occupancy",
        "client CPU s",
    ]
    print(
        table(
            header,
            [
                [
                    str(r),
                    s.name,
                    str(c),
                    str(s.requests),
                    str(s.completion_tokens),
                    f"{s.wall_s:.2f}",
                    f"{s.tokens_per_s:.1f}",
                    f"{s.in_flight_s:.2f}",
                    f"{s.occupancy:.3f}",
                    f"{s.client_cpu_s:.2f}",
                ]
                for r, s in rows
            ],
        )
    )
    rsa = [s for _, s in rows if s.name.startswith("RSA")]
    direct = [s for _, s in rows if s.name.startswith("direct")]
    rsa_rate = sum(s.completion_tokens for s in rsa) / sum(s.wall_s for s in rsa)
    direct_rate = sum(s.completion_tokens for s in direct) / sum(s.wall_s for s in direct)
    per_round = [a.tokens_per_s / b.tokens_per_s for a, b in zip(rsa, direct, strict=True)]
    rsa_occ = sum(s.in_flight_s for s in rsa) / sum(s.wall_s for s in rsa)
    direct_occ = sum(s.in_flight_s for s in direct) / sum(s.wall_s for s in direct)
    print(
        f"RSA {rsa_rate:.1f} tok/s, direct {direct_rate:.1f} tok/s over {args.rounds} round(s); "
        f"per-round ratios {', '.join(f'{x:.3f}' for x in per_round)}; every RSA run sent the "
        f"same requests: {'yes' if same_requests else 'no'}"
    )
    print(
        f"server occupancy (share of wall time with a request at the server): RSA {rsa_occ:.3f}, "
        f"direct {direct_occ:.3f}"
    )
    print(f"RESULT ratio={rsa_rate / direct_rate:.3f} occupancy_ratio={rsa_occ / direct_occ:.3f}")
    return 0


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 problem, N 2, 16 tokens, 2 rounds")
    p.add_argument("--problems", type=int, default=None, help="problems (default 4)")
    p.add_argument("-n", type=int, default=None, help="population size N (default 4)")
    p.add_argument("-k", type=int, default=2, help="aggregation set size K (default 2)")
    p.add_argument("-t", type=int, default=2, help="steps T (default 2)")
    p.add_argument("--max-tokens", type=int, default=None, help="max tokens (default 64)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 4)")
    p.add_argument("--concurrency", type=int, default=1, help="both sides (default 1)")
    p.add_argument("--seed", type=int, default=0, help="RSA seed (default 0)")
    p.add_argument("--n-ctx", type=int, default=4096, help="server context (default 4096)")
    p.add_argument("--n-threads", type=int, default=1, help="server threads (default 1)")
    args = p.parse_args(argv)
    args.problems = args.problems or (1 if args.quick else 4)
    args.n = args.n or (2 if args.quick else 4)
    args.max_tokens = args.max_tokens or (16 if args.quick else 64)
    args.rounds = args.rounds or (2 if args.quick else 4)
    return args


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # runs the `finally` that stops the server


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _stop)
    workdir = Path(tempfile.mkdtemp(prefix="recursa-real-engine-"))
    server = LlamaServer(args.n_ctx, args.n_threads, workdir / "server.log")
    try:
        server.wait_ready()
        print(
            f"real engine: llama-cpp-python server, bundled SmolLM2-135M-Instruct, "
            f"{args.problems} problems, N {args.n}, K {args.k}, T {args.t}, max tokens "
            f"{args.max_tokens}, seed {args.seed}, concurrency {args.concurrency} on both sides, "
            f"server threads {args.n_threads}, {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f}",
            flush=True,
        )
        try:
            return asyncio.run(measure(args, server.base_url, workdir))
        except httpx.HTTPError:
            code = server.proc.poll()
            state = "running" if code is None else f"exited with status {code}"
            tail = server.log.read_text(errors="replace")[-1500:]
            print(f"the llama server failed ({state}); its log ends:\n{tail}", file=sys.stderr)
            raise
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
