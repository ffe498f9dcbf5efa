"""How often mlci's canary judge is wrong, how fast it judges, and how fast it mirrors traffic.

    pip install -e '.[bench]'
    python benchmarks/bench_canary.py simulate [--runs 2000]     # A/A false roll backs, power
    python benchmarks/bench_canary.py judge                      # judge time against the floor
    python benchmarks/bench_canary.py replay [--seconds 3]       # mirrored requests per second
    python benchmarks/bench_canary.py e2e [--runs 10]            # real runs with Prometheus

``simulate`` draws per-interval metrics as Prometheus would report them for a canary at 10%
of 100 requests/s, ten 60 s intervals (benchmarks/canary_simulation.py says how), and judges
each run with mlci's judge, early stop included: the error rate (critical, one point
allowed) and the p99 latency (10% allowed). A/A runs give the false roll-back rate; runs with
a 20% slower canary or a 2-point higher error rate give the power. Rates carry their Monte
Carlo standard error, sqrt(p (1 - p) / runs).

``judge`` times one metric's judgement (Mann-Whitney U, Hodges-Lehmann shift and interval)
against the floor: scipy.stats.mannwhitneyu plus every pairwise difference sorted with numpy.

``replay`` starts two mlci.serve processes of a small scikit-learn model (ONNX) and mirrors
one-row requests to both with mlci's client, against a plain peer (requests.Session in a
thread pool, sending each request to both) and against the same client sending to one
endpoint (not mirrored: the ceiling a mirror halves). Rounds interleave the three.

``e2e`` runs whole canaries against a real Prometheus and serving processes (a primary, an
identical twin, one with a sleep in every inference, one failing 2% of requests), each
receiving the same steady load, repeatedly: real false roll-back rate and power on this
machine, where the noise is what it is. The three canaries are judged at the same time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

from canary_simulation import World, rollback_rate, simulate  # noqa: E402

FEATURES = 8


# -- simulate ------------------------------------------------------------------------------


def run_simulate(runs: int) -> None:
    world = World()
    print(
        f"{runs} simulated canaries per scenario: {world.iterations} intervals of "
        f"{world.interval_s:g} s, {world.rate:g} requests/s at {world.weight:.0%} to the canary, "
        f"early stop from interval {world.min_iterations}\n"
    )
    print("| scenario | promote | hold | roll back (stopped early) | roll-back rate ± MC s.e. |")
    print("|---|---|---|---|---|")
    scenarios = [
        ("A/A (pods differ by 3% s.d.)", world, 0.0, 0.0, 1),
        ("A/A, pods differ by 10% s.d.", World(pod_sd=0.10), 0.0, 0.0, 2),
        ("p99 latency +20%", world, 0.2, 0.0, 3),
        ("p99 latency +10% (the tolerance)", world, 0.1, 0.0, 4),
        ("error rate +2 points (0.5% -> 2.5%)", world, 0.0, 0.02, 5),
        ("error rate +1 point (the tolerance)", world, 0.0, 0.01, 6),
    ]
    for name, w, latency, errors, seed in scenarios:
        counts = simulate(w, runs, seed, latency, errors)
        rate, se = rollback_rate(counts)
        total = sum(counts.values())
        back = counts["rollback"] + counts["stopped"]
        print(
            f"| {name} | {counts['promote'] / total:.1%} | {counts['hold'] / total:.1%} | "
            f"{back / total:.1%} ({counts['stopped'] / total:.1%}) | {rate:.1%} ± {se:.1%} |",
            flush=True,
        )


# -- judge ---------------------------------------------------------------------------------


def floor_judgement(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """scipy's test and the Hodges-Lehmann interval from every difference, sorted."""
    from scipy.stats import mannwhitneyu, norm

    p = float(mannwhitneyu(y, x).pvalue)
    differences = np.sort(np.subtract.outer(y, x).ravel())
    mn = len(differences)
    c = int(round(mn / 2 - norm.ppf(0.975) * np.sqrt(mn * (len(x) + len(y) + 1) / 12)))
    c = max(c, 1)
    return p, float(np.median(differences)), differences[c - 1], differences[mn - c]


def best_of(function: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def run_judge() -> None:
    from mlci.canary.judge import MetricSpec, decide, judge_metric
    from mlci.canary.stats import mann_whitney

    rng = np.random.default_rng(0)
    print(
        "| samples a side | mlci judge_metric | mlci mann_whitney | floor: scipy + sorted differences | ratio |"
    )
    print("|---|---|---|---|---|")  # fmt: skip
    spec = MetricSpec("latency", "live", tolerance=0.1, unit="s")
    for n in (10, 100, 1000, 3000, 30_000):
        x = rng.lognormal(0, 0.3, n)
        y = rng.lognormal(0.05, 0.3, n)
        repeat = 50 if n <= 100 else 5 if n <= 3000 else 2
        mine = best_of(lambda: judge_metric(spec, list(x), list(y), 0.95), repeat)  # noqa: B023
        core = best_of(lambda: mann_whitney(x, y, 0.95), repeat)  # noqa: B023
        if n * n <= 10_000_000:
            floor = best_of(lambda: floor_judgement(x, y), repeat)  # noqa: B023
            shown, ratio = f"{floor * 1000:.2f} ms", f"{floor / core:.1f}x"
        else:
            shown, ratio = f"not run ({n * n * 8 / 1e9:.0f} GB of differences)", ""
        print(f"| {n:,} | {mine * 1000:.2f} ms | {core * 1000:.2f} ms | {shown} | {ratio} |")
    judgements = [
        judge_metric(spec, list(rng.normal(1, 0.1, 10)), list(rng.normal(1, 0.1, 10)), 0.95)
        for _ in range(5)
    ]
    whole = best_of(
        lambda: decide(
            [
                judge_metric(spec, list(j.primary.values), list(j.canary.values), 0.95)
                for j in judgements
            ],
            None,
            pass_score=95,
            marginal_score=75,
            weight=10,
            steps=[10, 100],
        ),
        50,
    )
    print(f"\nA whole decision over 5 live metrics of 10 intervals: {whole * 1000:.2f} ms")


# -- serving processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def train_model(path: Path) -> None:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, FEATURES)).astype(np.float32)
    y = (x @ rng.normal(size=FEATURES) + rng.normal(size=2000) > 0).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}})
    path.write_bytes(onx.SerializeToString())


def body(seed: int) -> bytes:
    row = np.random.default_rng(seed).normal(size=FEATURES).round(4).tolist()
    request = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, FEATURES], "data": row}]}
    return json.dumps(request).encode()


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready(url):
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not become ready")
        time.sleep(0.2)


@contextmanager
def servers(model: Path, specs: dict[str, list[str]]) -> Iterator[dict[str, int]]:
    """Serving processes (version -> extra arguments of tests/canary_faults.py)."""
    processes = []
    ports = {version: free_port() for version in specs}
    try:
        for version, extra in specs.items():
            processes.append(
                subprocess.Popen(
                    [sys.executable, str(ROOT / "tests" / "canary_faults.py"), "--model",
                     str(model), "--name", "m", "--version", version, "--port",
                     str(ports[version]), *extra],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                )
            )  # fmt: skip
        for port in ports.values():
            wait_ready(f"http://127.0.0.1:{port}")
        yield ports
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait()


# -- replay --------------------------------------------------------------------------------


def peer_mirror(bodies: list[bytes], urls: list[str], concurrency: int) -> float:
    """The obvious implementation: a thread pool of requests.Session, each request to both."""
    import requests

    local = threading.local()

    def send(data: bytes) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        for url in urls:
            response = session.post(url, data=data, headers={"Content-Type": "application/json"})
            response.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, bodies))
    return len(bodies) / (time.perf_counter() - started)


def one_endpoint(bodies: list[bytes], endpoint: object, concurrency: int) -> float:
    """mlci's client sending each request once, to one endpoint: requests per second."""
    from mlci.canary.replay import _Side

    local = threading.local()

    def send(data: bytes) -> None:
        side = getattr(local, "side", None)
        if side is None:
            side = local.side = _Side(endpoint, 10.0)  # type: ignore[arg-type]
        side.send(data)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(send, bodies))
    return len(bodies) / (time.perf_counter() - started)


def run_replay(seconds: float, rounds: int) -> None:
    from mlci.canary.replay import Endpoint, mirror

    folder = Path(tempfile.mkdtemp(prefix="mlci-bench-canary-"))
    try:
        train_model(folder / "m.onnx")
        with servers(folder / "m.onnx", {"1": [], "2": []}) as ports:
            a = Endpoint.from_url(f"http://127.0.0.1:{ports['1']}", "m", "1")
            b = Endpoint.from_url(f"http://127.0.0.1:{ports['2']}", "m", "2")
            urls = [f"{e.url}{e.infer_path}" for e in (a, b)]
            bodies = [body(i) for i in range(20_000)]
            for endpoint in (a, b):  # every answer checked before timing
                done = mirror(bodies[:50], endpoint, endpoint, concurrency=2)
                assert all(x is not None and x.ok for x in done.primary)
            results: dict[tuple[str, int], list[float]] = {}
            for _ in range(rounds):
                for concurrency in (1, 4, 16):
                    clients: list[tuple[str, Callable[[list[bytes]], float]]] = [
                        ("mlci mirror", lambda bs: mirror(bs, a, b, concurrency=concurrency).throughput),  # noqa: B023
                        ("peer: requests, mirrored", lambda bs: peer_mirror(bs, urls, concurrency)),  # noqa: B023
                        ("mlci client, one endpoint", lambda bs: one_endpoint(bs, a, concurrency)),  # noqa: B023
                    ]  # fmt: skip
                    for name, client in clients:
                        # about `seconds` of work: calibrate on the first round's rate
                        rate = statistics.median(results.get((name, concurrency), [300.0]))
                        count = max(200, min(len(bodies), int(rate * seconds)))
                        results.setdefault((name, concurrency), []).append(client(bodies[:count]))
            print("| concurrency | client | requests/s (median; mirrored: pairs) | ratio to mlci |")
            print("|---|---|---|---|")
            for concurrency in (1, 4, 16):
                mine = statistics.median(results[("mlci mirror", concurrency)])
                for name in (
                    "mlci mirror",
                    "peer: requests, mirrored",
                    "mlci client, one endpoint",
                ):
                    value = statistics.median(results[(name, concurrency)])
                    print(f"| {concurrency} | {name} | {value:,.0f} | {value / mine:.2f} |")
            print("\n'one endpoint' sends each request once to one server: the ceiling of a")
            print("mirror, which sends every request twice.")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- e2e -----------------------------------------------------------------------------------


def run_e2e(runs: int, interval: float, iterations: int, rate: float) -> None:
    from mlci.canary.config import LiveConfig
    from mlci.canary.judge import decide, judge_metric
    from mlci.canary.live import live_metrics, run_live
    from mlci.canary.prometheus import Prometheus
    from mlci.canary.replay import Endpoint

    folder = Path(tempfile.mkdtemp(prefix="mlci-bench-canary-"))
    train_model(folder / "m.onnx")
    specs = {"1": [], "2": [], "3": ["--delay-ms", "0.3"], "4": ["--error-rate", "0.02"]}
    try:
        with servers(folder / "m.onnx", specs) as ports:
            prom_port = free_port()
            targets = ", ".join(f'"127.0.0.1:{p}"' for p in ports.values())
            (folder / "p.yml").write_text(
                "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: s\n"
                f"    static_configs: [{{targets: [{targets}]}}]\n"
            )
            prom = subprocess.Popen(
                ["prometheus", f"--config.file={folder / 'p.yml'}",
                 f"--storage.tsdb.path={folder / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            url = f"http://127.0.0.1:{prom_port}"
            stop = threading.Event()
            endpoints = {
                v: Endpoint.from_url(f"http://127.0.0.1:{p}", "m", v) for v, p in ports.items()
            }

            def traffic(version: str) -> None:  # the same steady load on every server
                from mlci.canary.replay import _Side

                side = _Side(endpoints[version], 10.0)
                started, sent = time.monotonic(), 0
                while not stop.is_set():
                    side.send(body(sent % 100))
                    sent += 1
                    stop.wait(max(0.0, started + sent / rate - time.monotonic()))
                side.close()

            feeders = [threading.Thread(target=traffic, args=(v,), daemon=True) for v in endpoints]
            try:
                time.sleep(8)  # Prometheus up
                for feeder in feeders:
                    feeder.start()
                time.sleep(interval * 2)
                live = LiveConfig.model_validate(
                    {"prometheus": url, "interval": interval, "iterations": iterations,
                     "min_iterations": 3, "metrics": [
                         {"name": "error rate", "template": "error_rate"},
                         {"name": "mean latency", "template": "latency_mean", "tolerance": 0.1},
                     ]}
                )  # fmt: skip
                outcomes: dict[str, list[str]] = {v: [] for v in ("2", "3", "4")}
                effects: dict[str, list[float]] = {v: [] for v in ("2", "3", "4")}

                def one(version: str) -> None:
                    client = Prometheus(url)
                    metrics = live_metrics(
                        live, 'model="m",version="1"', f'model="m",version="{version}"', "live"
                    )
                    samples = run_live(live, metrics, client, 0.95, lambda _m: None)
                    judgements = [
                        judge_metric(
                            m.spec, samples.primary[m.spec.name], samples.canary[m.spec.name], 0.95
                        )
                        for m in metrics
                    ]
                    verdict = decide(judgements, None, pass_score=95, marginal_score=75, weight=10,
                                     steps=[10, 100], stopped_early=samples.stop_reason)  # fmt: skip
                    outcomes[version].append(verdict.decision)
                    latency = judgements[1]
                    if latency.primary.median and latency.canary.median:
                        effects[version].append(latency.canary.median / latency.primary.median - 1)

                for i in range(runs):
                    threads = [threading.Thread(target=one, args=(v,)) for v in outcomes]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                    print(
                        f"run {i + 1}: " + ", ".join(f"v{v} {o[-1]}" for v, o in outcomes.items()),
                        flush=True,
                    )
            finally:
                stop.set()
                os.killpg(prom.pid, signal.SIGTERM)
                prom.wait()
        names = {
            "2": "A/A (identical twin)",
            "3": "+0.3 ms in every inference",
            "4": "2% of requests fail",
        }
        print("\n| canary | runs | roll-back rate ± MC s.e. | median latency change measured |")
        print("|---|---|---|---|")
        for version, decisions in outcomes.items():
            rate = sum(d == "rollback" for d in decisions) / len(decisions)
            se = (rate * (1 - rate) / len(decisions)) ** 0.5
            change = statistics.median(effects[version]) if effects[version] else float("nan")
            print(
                f"| {names[version]} | {len(decisions)} | {rate:.0%} ± {se:.0%} | {change:+.1%} |"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sim = sub.add_parser("simulate")
    sim.add_argument("--runs", type=int, default=2000)
    sub.add_parser("judge")
    replay = sub.add_parser("replay")
    replay.add_argument("--seconds", type=float, default=3.0)
    replay.add_argument("--rounds", type=int, default=3)
    e2e = sub.add_parser("e2e")
    e2e.add_argument("--runs", type=int, default=10)
    e2e.add_argument("--interval", type=float, default=2.0)
    e2e.add_argument("--iterations", type=int, default=6)
    e2e.add_argument("--rate", type=float, default=30.0, help="requests/s to each server")
    args = parser.parse_args()
    if args.what == "simulate":
        run_simulate(args.runs)
    elif args.what == "judge":
        run_judge()
    elif args.what == "replay":
        run_replay(args.seconds, args.rounds)
    else:
        run_e2e(args.runs, args.interval, args.iterations, args.rate)


if __name__ == "__main__":
    main()
