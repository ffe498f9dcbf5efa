"""mlci canary end to end with real components: five serving processes of mlci's own server
(a primary, an identical twin, a candidate that predicts differently on one slice, a slow one
and a failing one), a real Prometheus scraping their /metrics on loopback, and the command
line as users run it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serve_client import request_for
from services_podman import free_port, wait_http
from services_prometheus import prometheus
from test_build import run_cli

from project import FEATURES, Project, make_frame

ROOT = Path(__file__).resolve().parents[1]
MLCI = [sys.executable, "-m", "mlci"]


def train_north_variant(path: Path) -> None:
    """The project's candidate (same data, same pipeline) with a much higher weight for
    region 'north': predictions change on that region's rows and on no other."""
    import pandas as pd
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = make_frame(3000, seed=1)
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income", "tenure"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"]),
        ]
    )
    pipe = Pipeline([("prep", prep), ("clf", LogisticRegression(C=1.0, max_iter=500))])
    pipe.fit(pd.DataFrame({k: frame[k] for k in FEATURES}), frame["y"])
    categories = list(pipe.named_steps["prep"].named_transformers_["cat"].categories_[0])
    pipe.named_steps["clf"].coef_[0, 3 + categories.index("north")] += 2.5
    types = [
        (n, StringTensorType([None, 1]) if n == "region" else FloatTensorType([None, 1]))
        for n in FEATURES
    ]
    model = to_onnx(pipe, initial_types=types, options={id(pipe): {"zipmap": False}})
    path.write_bytes(model.SerializeToString())


@dataclass(frozen=True)
class Fleet:
    """The serving processes: version -> port; and the project they serve."""

    ports: dict[str, int]
    project: Project

    def url(self, version: str) -> str:
        return f"http://127.0.0.1:{self.ports[version]}"


SERVERS = {  # version: (model file, extra arguments of tests/canary_faults.py)
    "1": ("candidate.onnx", []),  # the primary
    "2": ("candidate.onnx", []),  # an identical twin
    "3": ("north.onnx", []),  # differs on region=north only
    "4": ("candidate.onnx", ["--delay-ms", "20"]),  # slow
    "5": ("candidate.onnx", ["--error-rate", "0.1"]),  # fails 10% of requests
}


@pytest.fixture(scope="module")
def fleet(built_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    project = built_project.copy(tmp_path_factory.mktemp("canary") / "project")
    models = project.root / "models"
    train_north_variant(models / "north.onnx")
    logs = project.root / "logs"
    logs.mkdir()
    processes: list[subprocess.Popen[bytes]] = []
    ports = {version: free_port() for version in SERVERS}
    try:
        for version, (model, extra) in SERVERS.items():
            args = [sys.executable, str(ROOT / "tests" / "canary_faults.py"), "--model",
                    str(models / model), "--name", "demo", "--version", version, "--port",
                    str(ports[version]), *extra]  # fmt: skip
            with open(logs / f"v{version}.log", "wb") as log:
                processes.append(
                    subprocess.Popen(
                        args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        for port in ports.values():
            wait_http(f"http://127.0.0.1:{port}/v2/health/ready", timeout=90)
        yield Fleet(ports, project)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in processes:
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def write_config(fleet: Fleet, name: str, canary: str, gate: bool = False) -> Path:
    """A copy of the project's mlci.yaml with this canary section (and a canary gate)."""
    text = fleet.project.config.read_text() + "canary:\n" + canary
    if gate:
        text += "gate:\n  rules:\n    - kind: canary\n"
    path = fleet.project.root / f"{name}.yaml"
    path.write_text(text)
    return path


def shadow(fleet: Fleet, version: str, extra: str = "", latency: str = "") -> str:
    # Two identical processes on a shared 2-core machine differ by up to ~40% in latency over
    # a replay of a few seconds (benchmarks/bench_canary.py measures it), so the latency
    # tolerance here is wide; the slow canary is 20 ms slower on a ~1 ms model.
    return (
        f'  primary: {{url: "{fleet.url("1")}", version: "1"}}\n'
        f'  canary: {{url: "{fleet.url(version)}", version: "{version}"}}\n'
        "  shadow:\n"
        "    concurrency: 4\n"
        f"    latency: {{tolerance: 1.0{latency}}}\n" + extra
    )


def canary_json(
    config: Path, *args: str, capsys: pytest.CaptureFixture[str] | None = None
) -> tuple[int, dict[str, Any], str]:
    out = config.with_suffix(".canary.json")
    code, stdout, stderr = run_cli(["canary", "-q", "-c", str(config), "-o", str(out), *args])
    section = json.loads(out.read_text()) if out.exists() else {}
    return code, section, stdout + stderr


def by_name(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in section["shadow"]["agreement"]}


# -- shadow replay --------------------------------------------------------------------------


def test_an_identical_candidate_is_promoted(fleet: Fleet) -> None:
    config = write_config(fleet, "twin", shadow(fleet, "2"))
    code, section, output = canary_json(config)
    assert code == 0, output
    assert section["decision"] == "promote" and section["next_weight"] == 10
    shadow_section = section["shadow"]
    assert shadow_section["requests"] == 1500 and shadow_section["rows"] == 1500
    assert shadow_section["primary"]["errors"] == shadow_section["canary"]["errors"] == 0
    assert shadow_section["errors_status"] == "pass"
    agreement = by_name(section)
    assert agreement["all rows"]["label_flips"] == 0
    assert agreement["all rows"]["max_abs_diff"] == 0.0
    assert agreement["all rows"]["status"] == "pass"
    assert {a["status"] for a in agreement.values()} <= {"pass", "inconclusive"}
    assert set(agreement) >= {"region=north", "region=south", "long-tenure"}
    latency = next(m for m in section["metrics"] if m["name"] == "shadow latency")
    assert latency["primary"]["n"] == latency["canary"]["n"] == 10  # blocks of requests
    assert "PROMOTE (next weight 10%)" in output


def test_a_candidate_that_differs_on_one_slice_is_caught_there_and_nowhere_else(
    fleet: Fleet,
) -> None:
    config = write_config(fleet, "north", shadow(fleet, "3"))
    code, section, output = canary_json(config)
    assert code == 1, output
    assert section["decision"] == "rollback" and section["next_weight"] == 0
    agreement = by_name(section)
    north = agreement["region=north"]
    assert north["status"] == "fail" and north["label_flips"] > 20
    assert north["flip_rate"]["ci_low"] > 0.02
    for name in ("region=south", "region=east", "region=west"):
        assert agreement[name]["label_flips"] == 0 and agreement[name]["status"] != "fail", name
        assert agreement[name]["max_abs_diff"] == 0.0
    failing = [a["name"] for a in agreement.values() if a["status"] == "fail"]
    # rows of other slices that are also in region=north may differ; a slice without any
    # northern row never does
    frame = _eval_frame(fleet)
    for name in failing:
        assert name == "all rows" or name == "region=north" or _has_north(frame, name), name
    assert "slice 'region=north'" in " ".join(section["reasons"])


def _eval_frame(fleet: Fleet) -> dict[str, np.ndarray]:
    import pandas as pd

    frame = pd.read_csv(fleet.project.data)
    return {c: frame[c].to_numpy() for c in frame.columns}


def _has_north(frame: dict[str, np.ndarray], name: str) -> bool:
    north = frame["region"] == "north"
    if name.startswith("age in"):
        return bool(north.any())
    if name == "long-tenure":
        return bool((north & (frame["tenure"] >= 20)).any())
    return False


def test_a_failing_candidate_is_rolled_back_by_its_errors(fleet: Fleet) -> None:
    config = write_config(fleet, "failing", shadow(fleet, "5", "    requests: 600\n"))
    code, section, output = canary_json(config)
    assert code == 1, output
    replay = section["shadow"]
    assert replay["errors_status"] == "fail"
    assert 30 < replay["canary"]["errors"] < 100 and replay["primary"]["errors"] == 0
    assert replay["error_rate_delta"]["ci_low"] > 0.01
    # failed requests are left out of the prediction comparison
    assert by_name(section)["all rows"]["rows"] == 600 - replay["canary"]["errors"]
    assert section["decision"] == "rollback"
    assert section["reason"].startswith("Roll back: errors: canary ")


def test_a_slow_candidate_is_rolled_back_by_its_latency(fleet: Fleet) -> None:
    config = write_config(
        fleet, "slow", shadow(fleet, "4", "    requests: 300\n", latency=", critical: true")
    )
    code, section, output = canary_json(config)
    assert code == 1, output
    latency = next(m for m in section["metrics"] if m["name"] == "shadow latency")
    assert latency["classification"] == "high" and latency["harmful"] and latency["critical"]
    assert latency["effect"]["ci_low"] > 0.015  # 20 ms slower
    assert section["decision"] == "rollback"
    assert by_name(section)["all rows"]["label_flips"] == 0


def test_a_file_of_requests_is_replayed_as_written(fleet: Fleet) -> None:
    frame = make_frame(90, seed=31)
    lines = []
    for start in range(0, 90, 3):  # requests of three rows
        rows = {k: v[start : start + 3] for k, v in frame.items()}
        lines.append(json.dumps(request_for(rows)))
    (fleet.project.root / "requests.jsonl").write_text("\n".join(lines) + "\n\n")
    config = write_config(
        fleet, "file", shadow(fleet, "2", "    file: requests.jsonl\n    requests: 60\n")
    )
    code, section, output = canary_json(config)
    assert code == 0, output
    replay = section["shadow"]
    assert replay["source"] == "file" and replay["requests"] == 60
    assert replay["rows"] == 90  # 30 requests twice; a row sent again is counted once
    assert [a["name"] for a in replay["agreement"]] == ["all rows"]
    assert "only all rows were compared" in replay["slices_note"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("file", "requests.bad.jsonl:2: not an infer request"),
        ("model", "answered 404: no model 'nope'"),
        ("digest", "is sha256:1111"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(fleet: Fleet, setup: str, message: str) -> None:
    root = fleet.project.root
    extra, args = "", []
    if setup == "file":
        (root / "requests.bad.jsonl").write_text('{"inputs": []}\n[1, 2]\n')
        extra = "    file: requests.bad.jsonl\n"
    canary = shadow(fleet, "2", extra)
    if setup == "model":
        canary = canary.replace('version: "2"}', 'version: "2", model: nope}')
    if setup == "digest":
        results = root / f"results-{setup}.json"
        from documents import fixture

        document = fixture("promote")
        results.write_text(json.dumps(document))
        args = ["--results", str(results), "--canary-digest", "sha256:" + "1" * 64]
        before = results.read_bytes()
    config = write_config(fleet, f"bad-{setup}", canary)
    code, section, output = canary_json(config, *args)
    assert code == 2, output
    lines = [line for line in output.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("mlci: error: "), output
    assert message in lines[0], lines[0]
    assert section == {}
    if setup == "digest":
        assert results.read_bytes() == before


# -- live metrics from Prometheus -----------------------------------------------------------


@pytest.fixture(scope="module")
def prom(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    targets = [f"127.0.0.1:{port}" for port in fleet.ports.values()]
    with prometheus(targets, tmp_path_factory.mktemp("prometheus")) as url:
        yield url


class Traffic:
    """Requests of one row to each server at a steady rate, from background threads."""

    def __init__(self, ports: list[int], rate: float) -> None:
        import http.client

        self.stop = threading.Event()
        body = json.dumps(request_for(make_frame(1, seed=5))).encode()

        def send(port: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            sent = 0
            start = time.monotonic()
            while not self.stop.is_set():
                try:
                    connection.request("POST", "/v2/models/demo/infer", body,
                                       {"Content-Type": "application/json"})  # fmt: skip
                    connection.getresponse().read()
                except OSError:
                    connection.close()
                sent += 1
                self.stop.wait(max(0.0, start + sent / rate - time.monotonic()))
            connection.close()

        self.threads = [threading.Thread(target=send, args=(p,), daemon=True) for p in ports]
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def live(prom: str, version: str, iterations: int = 6) -> str:
    return (
        '  primary: {version: "1"}\n'
        f'  canary: {{version: "{version}"}}\n'
        "  weight: 10\n"
        "  live:\n"
        f"    prometheus: {prom}\n"
        "    interval: 3s\n"
        f"    iterations: {iterations}\n"
        "    min_iterations: 3\n"
        "    metrics:\n"
        "      - {name: error rate, template: error_rate}\n"
        "      - {name: mean latency, template: latency_mean, tolerance: 1.0, critical: true}\n"
        "      - {name: p99 latency, template: latency_p99, tolerance: 1.0}\n"
    )


def test_live_canaries_against_real_prometheus(fleet: Fleet, prom: str, tmp_path: Path) -> None:
    # results.json of the candidate, as mlci evaluate writes it
    code, _, stderr = run_cli(["evaluate", "-q", "-c", str(fleet.project.config), "-o",
                               str(tmp_path / "evaluated")])  # fmt: skip
    assert code == 0, stderr
    evaluated = json.loads((tmp_path / "evaluated" / "results.json").read_text())
    runs: dict[str, Any] = {}
    traffic = Traffic([fleet.ports[v] for v in ("1", "2", "4", "5")], rate=20)
    try:
        time.sleep(3)  # one window of traffic before the first look
        for name, version, iterations in (("twin", "2", 6), ("slow", "4", 6), ("failing", "5", 10)):
            config = write_config(fleet, f"live-{name}", live(prom, version, iterations), gate=True)
            results = tmp_path / f"{name}.json"
            shutil.copy(tmp_path / "evaluated" / "results.json", results)
            process = subprocess.Popen(
                [*MLCI, "canary", "-q", "-c", str(config), "--results", str(results)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            )  # fmt: skip
            runs[name] = (process, results)
        outcomes = {}
        for name, (process, results) in runs.items():
            stdout, stderr = process.communicate(timeout=300)
            outcomes[name] = (process.returncode, stdout + stderr, json.loads(results.read_text()))
    finally:
        traffic.close()
        for process, _ in runs.values():
            if process.poll() is None:
                process.kill()

    code, output, document = outcomes["twin"]
    assert code == 0, output
    canary = document["canary"]
    assert canary["decision"] == "promote", output
    assert canary["next_weight"] == 25 and canary["live"]["iterations_run"] == 6
    metrics = {m["name"]: m for m in canary["metrics"]}
    assert metrics["error rate"]["primary"]["n"] >= 5  # an interval may lack a scrape
    assert all(v == 0 for v in metrics["error rate"]["canary"]["values"] if v is not None)
    assert metrics["mean latency"]["primary"]["median"] < 0.01
    assert 'model="demo",version="2"' in canary["live"]["canary_target"]
    assert canary["model_sha256"] == evaluated["model"]["sha256"]
    # the gate judged the canary evidence into the document
    assert document["gate"]["decision"] == "promote"
    assert document["gate"]["rules"][0]["status"] == "pass"
    assert document["stages"]["canary"]["status"] == "ran"
    assert document["evaluation"] == evaluated["evaluation"]

    code, output, document = outcomes["slow"]
    assert code == 1, output
    canary = document["canary"]
    metrics = {m["name"]: m for m in canary["metrics"]}
    assert canary["decision"] == "rollback" and canary["next_weight"] == 0
    assert (
        metrics["mean latency"]["harmful"] and metrics["mean latency"]["classification"] == "high"
    )
    assert metrics["mean latency"]["canary"]["median"] > 0.02
    assert document["gate"]["decision"] == "block"

    code, output, document = outcomes["failing"]
    assert code == 1, output
    canary = document["canary"]
    metrics = {m["name"]: m for m in canary["metrics"]}
    assert canary["decision"] == "rollback"
    assert metrics["error rate"]["harmful"] and metrics["error rate"]["critical"]
    assert 0.04 < metrics["error rate"]["canary"]["median"] < 0.2
    assert canary["live"]["stopped_early"] and canary["live"]["iterations_run"] < 10
    assert "stopped early" in canary["reason"]
    assert document["gate"]["decision"] == "block"


def test_prometheus_refusing_a_query_is_bad_input(fleet: Fleet, prom: str) -> None:
    canary = live(prom, "2").replace(
        "template: latency_mean, tolerance: 1.0, critical: true",
        "query: 'sum(rate(x{ {{target}} }[{{interval}}])) by ('",
    )
    config = write_config(fleet, "bad-query", canary)
    code, section, output = canary_json(config)
    assert code == 2, output
    assert "canary.live.metrics[1]: metric 'mean latency': the query" in output
    assert "Prometheus refused it (bad_data" in output and section == {}


def test_a_query_that_is_not_one_number_is_bad_input(fleet: Fleet, prom: str) -> None:
    canary = live(prom, "2").replace(
        "template: latency_mean, tolerance: 1.0, critical: true",
        "query: 'sum by (instance) (up) + 0 * scalar(count(up{ {{target}} }))'",
    )
    config = write_config(fleet, "series", canary)
    code, _, output = canary_json(config)
    assert code == 2, output
    assert "returned 5 series" in output and "aggregate them into one" in output


def test_unreachable_prometheus_fails_the_run(fleet: Fleet) -> None:
    config = write_config(fleet, "no-prom", live(f"http://127.0.0.1:{free_port()}", "2"))
    code, section, output = canary_json(config)
    assert code == 1, output
    assert "cannot be reached" in output and section == {}


def _step_script(action: Path, name: str) -> str:
    """The run script of one step of a composite action."""
    import yaml

    steps = yaml.safe_load(action.read_text())["runs"]["steps"]
    (step,) = [s for s in steps if s.get("name") == name]
    return str(step["run"])


def _mlci_program(folder: Path) -> Path:
    """An `mlci` executable running this checkout's command line."""
    import stat

    script = folder / "bin" / "mlci"
    script.parent.mkdir(exist_ok=True)
    script.write_text(
        f"#!{sys.executable}\nimport sys\nfrom mlci.commands import main\nsys.exit(main())\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def _run_step(action: Path, name: str, env: dict[str, str], cwd: Path) -> Any:
    return subprocess.run(
        ["bash", "-e", "-c", _step_script(action, name)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )


def test_the_canary_action_writes_the_decision_to_its_outputs(fleet: Fleet, tmp_path: Path) -> None:
    config = write_config(fleet, "action", shadow(fleet, "2", "    requests: 500\n"))
    outputs = tmp_path / "github-output"
    outputs.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "GITHUB_ACTION_PATH": str(ROOT / "actions" / "canary"),
        "GITHUB_OUTPUT": str(outputs),
        "MLCI_BIN": str(_mlci_program(tmp_path)),
        "MLCI_INPUT_CONFIG": str(config),
        "MLCI_INPUT_RESULTS": "",
        "MLCI_INPUT_WEIGHT": "25",
        "MLCI_INPUT_CANARY_URL": "",
        "MLCI_INPUT_PRIMARY_URL": "",
        "MLCI_INPUT_CANARY_DIGEST": "sha256:" + "ab" * 32,
        "MLCI_INPUT_FAIL_ON": "rollback",
        "MLCI_INPUT_OUT": str(tmp_path / "canary.json"),
    }
    action = ROOT / "actions" / "canary" / "action.yml"
    result = _run_step(action, "Judge the canary", env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    from mlci.github.workflow import parse_file_commands

    written = parse_file_commands(outputs.read_text())
    assert written["decision"] == "promote" and written["next-weight"] == "50"
    assert written["exit-code"] == "0" and float(written["score"]) == 100
    section = json.loads((tmp_path / "canary.json").read_text())
    assert section["canary"]["digest"] == "sha256:" + "ab" * 32 and section["weight"] == 25
    # an input that looks like an option is still a value
    env["MLCI_INPUT_WEIGHT"] = "--help"
    result = _run_step(action, "Judge the canary", env, tmp_path)
    assert result.returncode == 2
    assert "argument --weight: invalid float value: '--help'" in result.stderr


def test_mlci_check_runs_the_canary_stage_before_the_gate(fleet: Fleet, tmp_path: Path) -> None:
    config = write_config(fleet, "check", shadow(fleet, "2", "    requests: 500\n"), gate=True)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        ["check", "-q", "-c", str(config), "--only", "evaluate,canary,gate", "-o", str(out)]
    )
    assert code == 0, stderr
    document = json.loads((out / "results.json").read_text())
    assert list(document["stages"]) == ["evaluate", "canary", "gate"]
    assert document["canary"]["decision"] == "promote"
    assert document["canary"]["model_sha256"] == document["model"]["sha256"]
    assert document["gate"]["rules"][0]["status"] == "pass"
    assert "canary: PROMOTE (next weight 10%)" in stdout
    assert "### Canary: ✅ promote" in (out / "comment.md").read_text()
