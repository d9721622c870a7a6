"""Load test of the HTTP endpoint: many concurrent POST /invocations over loopback.

Starts ``flows/serve.py`` as its own process (or targets a running server with ``--url``), waits
for ``GET /ping`` to answer 200, then sends ``--requests`` queries from ``--concurrency`` worker
threads of this process, one ``requests.Session`` (keep-alive connection) per worker. The mix
is half known users, a quarter unknown users (cold start) and a quarter ``similar_to``; the
similar items are drawn from the catalogue as the server reports it (the popularity list).

Prints requests, errors, latency percentiles (ms) and throughput (req/s), writes them to
``benchmarks/results/endpoint_load.json`` and exits with status 1 when any request failed
(a non-200 answer, a non-JSON body, or a connection error).

Examples::

    python benchmarks/load_test_endpoint.py --run-id 1712
    python benchmarks/load_test_endpoint.py --url http://127.0.0.1:8080 --requests 500
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVE = REPO_ROOT / "flows" / "serve.py"
DEFAULT_RESULTS = REPO_ROOT / "benchmarks" / "results" / "endpoint_load.json"
UNKNOWN_USER_BASE = 10_000_000  # far above any MovieLens user id: always a cold start
WARMUP_REQUESTS = 20  # not measured: first calls pay lazy imports and caches


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    run_id: str | None, tag: str | None, threads: int, log_path: Path
) -> tuple[subprocess.Popen, str]:
    """Start flows/serve.py on a free loopback port; returns the process and its base URL."""
    port = free_port()
    command = [sys.executable, str(SERVE), "--port", str(port), "--threads", str(threads)]
    if run_id:
        command += ["--run-id", run_id]
    if tag:
        command += ["--tag", tag]
    log = open(log_path, "w")  # noqa: SIM115 - the server keeps writing after we return
    # the Metaflow settings come from the environment; the datastore root is the working dir
    cwd = os.environ.get("METAFLOW_DATASTORE_SYSROOT_LOCAL") or None
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    return process, f"http://127.0.0.1:{port}"


def wait_ready(url: str, timeout: float, process: subprocess.Popen | None = None) -> dict:
    """Poll GET /ping until 200; raise with the last answer if it fails or times out."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        try:
            answer = requests.get(f"{url}/ping", timeout=5)
            if answer.status_code == 200:
                return answer.json()
            last = f"{answer.status_code} {answer.text}"
            if answer.json().get("status") == "failed":
                raise RuntimeError(f"server could not load the model: {last}")
        except requests.ConnectionError:
            last = "connection refused"
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout:.0f} s: {last}")


def build_queries(
    n: int, known_users: tuple[int, int], items: list, k: int, seed: int
) -> list[tuple[str, dict]]:
    """The request mix: (kind, body) pairs, half known users, a quarter each of the others."""
    rng = random.Random(seed)
    queries = []
    for _ in range(n):
        draw = rng.random()
        if draw < 0.5:
            queries.append(("known_user", {"user_id": rng.randint(*known_users), "k": k}))
        elif draw < 0.75:
            user = UNKNOWN_USER_BASE + rng.randint(0, 1_000_000)
            queries.append(("unknown_user", {"user_id": user, "k": k}))
        else:
            queries.append(("similar_to", {"similar_to": rng.choice(items), "k": k}))
    return queries


def run_load(url: str, queries: list[tuple[str, dict]], concurrency: int) -> dict:
    """Send the queries from `concurrency` threads; per-request latency, status and strategy."""
    latencies = np.zeros(len(queries))
    statuses: list[str] = [""] * len(queries)
    strategies: list[str] = [""] * len(queries)
    next_index = iter(range(len(queries)))
    lock = threading.Lock()

    def worker() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                start = time.perf_counter()
                try:
                    answer = session.post(f"{url}/invocations", json=queries[i][1], timeout=30)
                    body = answer.json()
                    statuses[i] = str(answer.status_code)
                    strategies[i] = body.get("strategy", "") if answer.ok else ""
                except (requests.RequestException, ValueError) as error:
                    statuses[i] = type(error).__name__
                latencies[i] = time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - start
    errors = [s for s in statuses if s != "200"]
    ms = latencies * 1000
    return {
        "requests": len(queries),
        "errors": len(errors),
        "error_kinds": dict(Counter(errors)),
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(queries) / wall, 1),
        "latency_ms": {
            "p50": round(float(np.percentile(ms, 50)), 2),
            "p90": round(float(np.percentile(ms, 90)), 2),
            "p99": round(float(np.percentile(ms, 99)), 2),
            "mean": round(float(ms.mean()), 2),
            "max": round(float(ms.max()), 2),
        },
        "mix": dict(Counter(kind for kind, _ in queries)),
        # e.g. "known_user:model"; a known-range id that is not in train shows as a cold start
        "strategies": dict(
            Counter(f"{kind}:{s}" for (kind, _), s in zip(queries, strategies, strict=True) if s)
        ),
    }


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--run-id", help="run to serve when the script starts the server")
    parser.add_argument("--tag", help="or: latest successful run with this tag")
    parser.add_argument("--server-threads", type=int, default=4, help="waitress threads")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--k", type=int, default=10, help="items per request")
    parser.add_argument(
        "--known-users",
        default="1:943",
        help="raw user id range FIRST:LAST of known users (ML-100k: 1:943; ids not in train "
        "are served as cold starts, see 'strategies' in the result)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--startup-timeout", type=float, default=300, help="seconds for /ping")
    parser.add_argument("--results-file", type=Path, default=DEFAULT_RESULTS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the load test; 0 when every request succeeded, 1 otherwise."""
    args = build_parser().parse_args(argv)
    first, _, last = args.known_users.partition(":")
    known_users = (int(first), int(last))
    process = None
    log_path = Path(tempfile.mkstemp(prefix="endpoint-load-", suffix=".log")[1])
    try:
        if args.url:
            url = args.url.rstrip("/")
        else:
            process, url = start_server(args.run_id, args.tag, args.server_threads, log_path)
            print(f"server: {url} (log {log_path})")
        started = time.perf_counter()
        ping = wait_ready(url, args.startup_timeout, process)
        ready_s = time.perf_counter() - started
        info = requests.get(f"{url}/info", timeout=30).json()
        # similar_to items from the served catalogue: the cold-start list is its most popular
        popular = requests.post(
            f"{url}/invocations", json={"user_id": UNKNOWN_USER_BASE, "k": 100}, timeout=30
        ).json()
        items = [item["item_id"] for item in popular["items"]]
        queries = build_queries(args.requests, known_users, items, args.k, args.seed)
        run_load(url, queries[:WARMUP_REQUESTS], min(args.concurrency, WARMUP_REQUESTS))
        result = run_load(url, queries, args.concurrency)
    except (RuntimeError, requests.RequestException, KeyError, ValueError) as error:
        print(f"load test could not run: {error} (server log: {log_path})", file=sys.stderr)
        return 1
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    result.update(
        {
            "url": url if args.url else "started by the script (loopback)",
            "server_threads": None if args.url else args.server_threads,
            "ready_s": None if args.url else round(ready_s, 2),
            "run": ping.get("run"),
            "family": info.get("family"),
            "k": args.k,
            "warmup_requests": WARMUP_REQUESTS,
            "machine": {
                "cpus": os.cpu_count(),
                # other work on the machine skews the figures: the 1-min load after the run
                "load_average_1min": round(os.getloadavg()[0], 2),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    )
    latency = result["latency_ms"]
    print(
        f"requests {result['requests']}  errors {result['errors']}  "
        f"p50 {latency['p50']} ms  p90 {latency['p90']} ms  p99 {latency['p99']} ms  "
        f"throughput {result['throughput_rps']} req/s  ({args.concurrency} concurrent, "
        f"run {result['run']}, {result['family']})"
    )
    print(f"mix {result['mix']}  strategies {result['strategies']}")
    if result["errors"]:
        print(f"error kinds: {result['error_kinds']}", file=sys.stderr)
    args.results_file.parent.mkdir(parents=True, exist_ok=True)
    args.results_file.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.results_file}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
