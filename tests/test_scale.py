"""Evaluation beyond one job: shards merged with `mlci report --merge`, and a Dask cluster.

Both must give exactly the document of a single `mlci evaluate`: the same metrics,
intervals, slices, flags, discovered slices, fairness and importance, and the same gate.
The cluster tests run real `distributed` worker processes talking TCP over loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mlci.commands import main
from mlci.scale.dask_engine import plan_partitions
from mlci.scale.shards import Shard

# What a sharded or clustered run must reproduce bit for bit ("created" and stage durations
# are the only parts of a document that depend on when and how long it ran).
SAME = ("evaluation", "model", "baseline", "data", "config")


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


ROWS = 140_000  # seven copies of the example's 20,000 rows: three prediction chunks
ROW_GROUP = 30_000  # Parquet row groups that do not line up with the chunks


@pytest.fixture(scope="module")
def credit(credit_example: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The credit example on 140,000 rows (more than two prediction chunks), as CSV for
    mlci.yaml and as Parquet in row groups of 30,000 rows."""
    root = tmp_path_factory.mktemp("scale") / "credit"
    shutil.copytree(credit_example, root, ignore=shutil.ignore_patterns("mlci-out"))
    one = pacsv.read_csv(root / "data" / "eval.csv")
    copies = []
    for k in range(ROWS // one.num_rows):
        ids = pa.compute.add(one.column("application_id"), k * 10_000_000)
        copies.append(one.set_column(0, "application_id", ids))
    table = pa.concat_tables(copies)
    pacsv.write_csv(table, root / "data" / "big.csv")
    pq.write_table(table, root / "data" / "big.parquet", row_group_size=ROW_GROUP)
    config = yaml.safe_load((root / "mlci.yaml").read_text())
    config["data"]["path"] = "data/big.csv"
    (root / "mlci.yaml").write_text(yaml.safe_dump(config))
    return root


def configure(root: Path, name: str, **changes: Any) -> Path:
    """A copy of the example's mlci.yaml beside it, with top-level sections replaced."""
    config = yaml.safe_load((root / "mlci.yaml").read_text())
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            config[section][field] = value
        else:
            config[section] = value
    path = root / name
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def single(credit: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One job's `mlci evaluate`, judged by `mlci gate`: what every other way must equal."""
    out = tmp_path_factory.mktemp("single")
    config = str(credit / "mlci.yaml")
    assert main(["evaluate", "-c", config, "-o", str(out), "-q"]) == 0
    main(["gate", str(out / "results.json"), "-c", config])
    document: dict[str, Any] = json.loads((out / "results.json").read_text())
    return document


def assert_same_run(
    document: dict[str, Any], single: dict[str, Any], keys: tuple[str, ...] = SAME
) -> None:
    for key in keys:
        assert document[key] == single[key], key
    ours, theirs = document["gate"], single["gate"]
    assert ours["decision"] == theirs["decision"]
    assert ours["rules"] == theirs["rules"]


def merge_argv(files: Any, config: Path, out: Path | None = None) -> list[str]:
    """`mlci report --merge FILES -c CONFIG -f json [-o OUT] -q`."""
    written = [] if out is None else ["-o", str(out)]
    return ["report", "--merge", *map(str, files), "-c", str(config), "-f", "json", *written, "-q"]


def write_shards(
    config: Path, count: int, out: Path, capsys: pytest.CaptureFixture[str]
) -> list[str]:
    paths = []
    for index in range(count):
        code, stdout, _ = cli(
            [
                "evaluate",
                "-c",
                str(config),
                "--shard",
                f"{index}/{count}",
                "-o",
                str(out / f"job{index}"),
                "-q",
            ],
            capsys,
        )
        assert code == 0
        paths.append(stdout.split()[-1])
    return paths


@pytest.mark.parametrize("count", [1, 3, 7])
def test_merged_shards_are_the_single_run(
    credit: Path,
    single: dict[str, Any],
    count: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = credit / "mlci.yaml"
    shards = write_shards(config, count, tmp_path, capsys)
    merged = tmp_path / "merged.json"
    # Shards in any order: the merge puts rows back by shard index.
    argv = merge_argv(reversed(shards), config, merged)
    code, _, err = cli(argv, capsys)
    assert code == 0, err
    document = json.loads(merged.read_text())
    assert_same_run(document, single)
    evaluation = document["evaluation"]
    assert evaluation["slices"] and evaluation["fairness"] and evaluation["importance"]
    assert any(s["flagged"] for s in evaluation["slices"])


def test_shards_merge_with_other_jobs_results(
    credit: Path, single: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A matrix of shards and a separate tests job: one document, one gate."""
    config = credit / "mlci.yaml"
    shards = write_shards(config, 2, tmp_path, capsys)
    tests_out = tmp_path / "tests-job"
    assert main(["test", "-c", str(config), "-o", str(tests_out), "-q"]) in (0, 1)
    merged = tmp_path / "merged.json"
    code, _, err = cli(merge_argv([*shards, tests_out / "results.json"], config, merged), capsys)
    assert code == 0, err
    document = json.loads(merged.read_text())
    assert document["evaluation"] == single["evaluation"]
    assert document["tests"] is not None
    assert document["stages"]["gate"]["status"] == "ran"


@given(st.integers(0, 10_000), st.integers(1, 64), st.integers(1, 300))
def test_shards_tile_the_rows_in_whole_chunks(total: int, count: int, chunk: int) -> None:
    ranges = [Shard(i, count).rows(total, chunk) for i in range(count)]
    assert ranges[0][0] == 0 and ranges[-1][1] == total
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    assert all(start % chunk == 0 or start == total for start, _ in ranges)
    chunks = [-(-(stop - start) // chunk) for start, stop in ranges]
    assert max(chunks) - min(chunks) <= 1


@given(
    st.lists(st.integers(1, 50), min_size=1, max_size=40),
    st.integers(1, 200),
    st.integers(1, 30),
)
def test_partitions_are_whole_chunks_read_from_their_row_groups(
    groups: list[int], target: int, chunk: int
) -> None:
    parts = plan_partitions(groups, target, chunk)
    starts = [0]
    for rows in groups:
        starts.append(starts[-1] + rows)
    assert parts[0].start == 0 and parts[-1].stop == starts[-1]
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:], strict=False))
    for part in parts:
        assert part.start % chunk == 0
        assert part.stop - part.start <= max(target, chunk) + chunk - 1
        first, last = part.row_groups[0], part.row_groups[-1]
        assert list(part.row_groups) == list(range(first, last + 1))
        # The groups read hold the partition's rows and no group more.
        assert starts[first] + part.skip == part.start
        assert starts[first] <= part.start < starts[first + 1]
        assert starts[last] < part.stop <= starts[last + 1]


# ----------------------------------------------------------------------- bad shards


@pytest.fixture(scope="module")
def three_shards(credit: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("three")
    config = str(credit / "mlci.yaml")
    for index in range(3):
        assert (
            main(
                [
                    "evaluate",
                    "-c",
                    config,
                    "--shard",
                    f"{index}/3",
                    "-o",
                    str(out / str(index)),
                    "-q",
                ]
            )
            == 0
        )
    return [out / str(i) / f"shard-{i}-of-3.npz" for i in range(3)]


def _rewrite(path: Path, out: Path, edit: Any) -> Path:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(bytes(arrays["header.json"]).decode())
    edit(header, arrays)
    arrays["header.json"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(out, **arrays)
    return out


def _bad_cases(
    shards: list[Path], tmp: Path, credit: Path
) -> dict[str, tuple[list[Path], str, str]]:
    other_data = credit / "other.csv"
    lines = (credit / "data" / "eval.csv").read_text().splitlines()
    other_data.write_text("\n".join(lines[:-1]) + "\n")
    not_zip = tmp / "noise.npz"
    not_zip.write_bytes(b"not an archive")
    pickled = tmp / "pickled.npz"
    np.savez(pickled, **{"header.json": np.array([{"format": "mlci-shard"}], dtype=object)})

    def shorter(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        arrays["candidate.proba"] = arrays["candidate.proba"][:-1]

    def not_a_number(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        proba = arrays["baseline.proba"].copy()
        proba[5, 0] = np.nan
        arrays["baseline.proba"] = proba

    def header_field(key: str, value: Any) -> Any:
        return lambda header, arrays: header.__setitem__(key, value)

    return {
        "a shard missing": (shards[:2], "shards 2 of 3 are missing", "every shard"),
        "a shard twice": (
            [*shards, shards[1]],
            "shard 1 of 3 was already given",
            "each shard file once",
        ),
        "not a zip": ([*shards[:2], not_zip], "not an mlci shard file", "shard-I-of-N.npz"),
        "an object array": ([*shards[:2], pickled], "not an mlci shard file", "shard-I-of-N.npz"),
        "rows cut short": (
            [*shards[:2], _rewrite(shards[2], tmp / "short.npz", shorter)],
            "candidate proba has",
            "write the shard again",
        ),
        "a probability not a number": (
            [*shards[:2], _rewrite(shards[2], tmp / "nan.npz", not_a_number)],
            "(baseline)",
            "write the shard again",
        ),
        "another count": (
            [*shards[:2], _rewrite(shards[2], tmp / "count.npz", header_field("shards", 4))],
            "rows do not match its shard index",
            "shard-I-of-N.npz",
        ),
        "another model file": (
            [
                *shards[:2],
                _rewrite(shards[2], tmp / "model.npz", header_field("candidate_sha256", "0" * 64)),
            ],
            "candidate_sha256 is",
            "the same mlci.yaml, data and models",
        ),
        "another config": (
            [
                _rewrite(s, tmp / f"cfg{i}.npz", header_field("config_sha256", "f" * 64))
                for i, s in enumerate(shards)
            ],
            "written for another mlci.yaml",
            "the mlci.yaml the shard jobs used",
        ),
        "other data": (
            [
                _rewrite(s, tmp / f"data{i}.npz", header_field("data_sha256", "e" * 64))
                for i, s in enumerate(shards)
            ],
            "written for other data",
            "the data the shard jobs evaluated",
        ),
    }


BAD = [
    "a shard missing",
    "a shard twice",
    "not a zip",
    "an object array",
    "rows cut short",
    "a probability not a number",
    "another count",
    "another model file",
    "another config",
    "other data",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_shards_are_refused_in_one_line(
    case: str,
    credit: Path,
    three_shards: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files, message, tip = _bad_cases(three_shards, tmp_path, credit)[case]
    out = tmp_path / "merged.json"
    argv = merge_argv(files, credit / "mlci.yaml", out)
    code, stdout, err = cli(argv, capsys)
    assert code == 2
    first = err.strip().splitlines()[0]
    assert message in first, err
    assert tip in err
    assert not out.exists()


def test_models_changed_since_the_shards_are_refused(
    credit: Path, three_shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "credit"
    shutil.copytree(credit, root)
    (root / "models" / "candidate.onnx").write_bytes(
        (root / "models" / "baseline.onnx").read_bytes()
    )
    code, _, err = cli(merge_argv(three_shards, root / "mlci.yaml"), capsys)
    # The copied mlci.yaml is the same file, so the shards pass until the models are loaded.
    assert code == 2
    assert "the shards predicted with other models" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "--shard", "3/3"], "the index must be in 0..2"),
        (["evaluate", "--shard", "1-of-3"], "is not I/N"),
        (["evaluate", "--shard", "0/0"], "the count in 1..10000"),
        (["report", "x.npz"], "is a shard file"),
        (["report", "--merge", "x.npz"], "shard files need --config"),
    ],
)
def test_bad_shard_options(
    argv: list[str], message: str, credit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if argv[0] == "evaluate":
        argv = [*argv, "-c", str(credit / "mlci.yaml"), "-o", str(tmp_path / "out")]
    code, _, err = cli(argv, capsys)
    assert code == 2
    assert message in err.strip().splitlines()[0]
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------- Dask


@pytest.fixture(scope="module")
def cluster() -> Any:
    """A cluster of two worker processes, reached over TCP on loopback by its address."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as running:
        yield running


def test_dask_on_a_scheduler_is_the_single_run(
    credit: Path,
    single: dict[str, Any],
    cluster: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parquet = configure(credit, "parquet.yaml", data__path="data/big.parquet")
    dask = configure(
        credit,
        "dask.yaml",
        data__path="data/big.parquet",
        engine={"kind": "dask", "scheduler": cluster.scheduler_address, "partition_rows": 2500},
    )
    local_out, dask_out = tmp_path / "local", tmp_path / "dask"
    assert main(["evaluate", "-c", str(parquet), "-o", str(local_out), "-q"]) == 0
    code, _, err = cli(["evaluate", "-c", str(dask), "-o", str(dask_out)], capsys)
    assert code == 0, err
    local = json.loads((local_out / "results.json").read_text())
    clustered = json.loads((dask_out / "results.json").read_text())
    for key in ("evaluation", "model", "baseline", "data"):
        assert clustered[key] == local[key], key
    # The Parquet file holds the CSV's rows: the same evaluation as the single CSV run.
    assert clustered["evaluation"] == single["evaluation"]
    # 140,000 rows in partitions of 2,500 rows rounded up to a chunk: 65,536, 65,536 and
    # 8,928 rows, read from row groups of 30,000 that straddle them. Each worker that
    # predicted loaded the models once, whatever it predicted.
    found = re.search(r"3 partitions predicted by (\d) workers \(models loaded (\d) times;", err)
    assert found is not None, err
    assert found[1] == found[2]
    assert "predicted 3 of 3 partitions" in err


def test_dask_local_cluster_and_progress(
    credit: Path, single: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a scheduler address, mlci starts (and stops) a local cluster itself."""
    dask = configure(
        credit,
        "dask-local.yaml",
        data__path="data/big.parquet",
        evaluation={"bootstrap": 200, "slices": [{"feature": "region"}]},
        engine={"kind": "dask", "workers": 2, "partition_rows": 6000},
    )
    local = configure(
        credit,
        "local-small.yaml",
        data__path="data/big.parquet",
        evaluation={"bootstrap": 200, "slices": [{"feature": "region"}]},
    )
    code, _, err = cli(["evaluate", "-c", str(dask), "-o", str(tmp_path / "dask")], capsys)
    assert code == 0, err
    assert "predicted 3 of 3 partitions" in err
    assert main(["evaluate", "-c", str(local), "-o", str(tmp_path / "local"), "-q"]) == 0
    a = json.loads((tmp_path / "dask" / "results.json").read_text())
    b = json.loads((tmp_path / "local" / "results.json").read_text())
    assert a["evaluation"] == b["evaluation"]


def test_dask_needs_parquet(
    credit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = configure(credit, "dask-csv.yaml", engine={"kind": "dask"})
    code, _, err = cli(["evaluate", "-c", str(config), "-o", str(tmp_path / "out"), "-q"], capsys)
    assert code == 2
    first = err.splitlines()[0]
    assert "dask-csv.yaml" in first and "engine.kind" in first
    assert "engine: dask has workers read Parquet row groups" in first
    assert not (tmp_path / "out").exists()


def test_unreachable_scheduler(
    credit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = configure(
        credit,
        "dask-nowhere.yaml",
        data__path="data/big.parquet",
        engine={"kind": "dask", "scheduler": f"tcp://127.0.0.1:{port}"},
    )
    config_text = yaml.safe_load(config.read_text())
    config_text["evaluation"]["bootstrap"] = 0
    config.write_text(yaml.safe_dump(config_text))
    code, _, err = cli(["evaluate", "-c", str(config), "-o", str(tmp_path / "out"), "-q"], capsys)
    assert code == 2
    assert "cannot reach the Dask scheduler" in err.splitlines()[0]
    assert not (tmp_path / "out").exists()


def test_worker_reads_only_its_row_groups(credit: Path) -> None:
    """A task reads its own row groups: the predictions of a partition are those rows'."""
    from mlci.scale.dask_engine import Partition, predict_partition

    job = _job(credit)
    whole = predict_partition(job, Partition(tuple(range(5)), 0, ROWS))
    part = predict_partition(job, Partition((1, 2), 40_000, 70_000, skip=10_000))
    assert part.loaded_models is False  # the same process: the models are already loaded
    for mine, all_rows in zip(part.value, whole.value, strict=True):
        assert all_rows.proba is not None and mine.proba is not None
        np.testing.assert_array_equal(mine.proba, all_rows.proba[40_000:70_000])


# ------------------------------------------------------------ the job-matrix template


def _template_scripts() -> dict[str, dict[str, str]]:
    """Each job's `run:` scripts in workflows/sharded-evaluation.yml, by step name or id."""
    path = Path(__file__).resolve().parent.parent / "workflows" / "sharded-evaluation.yml"
    jobs = yaml.safe_load(path.read_text())["jobs"]
    return {
        job: {str(s.get("id") or s.get("name")): s["run"] for s in spec["steps"] if "run" in s}
        for job, spec in jobs.items()
    }


# The environment before any cluster started: a LocalCluster sets OMP_NUM_THREADS=1 and
# friends in its parent's environment for the workers it spawns, and a BLAS with another
# thread count sums in another order (the last digits of an interval, about 1e-12).
ENVIRONMENT = dict(os.environ)


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env={**ENVIRONMENT, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_matrix_template_scripts_merge_to_the_single_run(
    credit: Path, single: dict[str, Any], tmp_path: Path
) -> None:
    """The template's shell steps, run as its jobs would run them, with the real mlci."""
    scripts = _template_scripts()
    mlci = tmp_path / "bin" / "mlci"
    mlci.parent.mkdir()
    mlci.write_text(
        f"#!{sys.executable}\nimport sys\nfrom mlci.commands import main\nsys.exit(main())\n"
    )
    mlci.chmod(0o755)
    output, summary = tmp_path / "output", tmp_path / "summary"
    github = {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}

    output.write_text("")
    assert _bash(scripts["plan"]["plan"], tmp_path, {**github, "MLCI_SHARDS": "3"}).returncode == 0
    indexes = json.loads(output.read_text().strip().split("=", 1)[1])
    assert indexes == [0, 1, 2]
    for bad in ("0", "257", "two", ""):
        refused = _bash(scripts["plan"]["plan"], tmp_path, {**github, "MLCI_SHARDS": bad})
        assert refused.returncode == 2, bad

    downloads = tmp_path / "shards"
    for index in indexes:
        job = tmp_path / f"job{index}"
        shutil.copytree(credit, job, ignore=shutil.ignore_patterns("*.parquet"))
        env = {
            "MLCI": str(mlci),
            "MLCI_CONFIG": "mlci.yaml",
            "MLCI_SHARD": str(index),
            "MLCI_SHARDS": "3",
        }
        done = _bash(scripts["shard"]["Predict on this shard's rows"], job, env)
        assert done.returncode == 0, done.stderr
        # download-artifact with a pattern puts each artifact in a folder of its name
        shutil.copytree(job / "mlci-shard", downloads / f"mlci-shard-{index}")

    merge = tmp_path / "merge"
    shutil.copytree(credit, merge, ignore=shutil.ignore_patterns("*.parquet"))
    env = {
        **github,
        "MLCI": str(mlci),
        "MLCI_CONFIG": "mlci.yaml",
        "MLCI_SHARDS_DIR": str(downloads),
    }
    done = _bash(scripts["merge"]["Evaluate the merged shards"], merge, env)
    assert done.returncode == 0, done.stderr
    document = json.loads((merge / "mlci-out" / "results.json").read_text())
    # Only the paths differ: this job's checkout is in another folder.
    assert_same_run(document, single, ("evaluation",))
    assert {p.name for p in (merge / "mlci-out").iterdir()} == {
        "results.json", "report.md", "comment.md", "summary.md",
    }  # fmt: skip
    assert summary.read_text().strip()

    output.write_text("")
    judged = _bash(scripts["merge"]["judge"], merge, env)
    assert judged.returncode == 1  # the example's gate blocks, and the job fails with it
    assert "decision" in output.read_text() and "block" in output.read_text()


def _job(credit: Path, **changes: Any) -> Any:
    import hashlib

    from mlci.scale.dask_engine import Job

    table = pq.read_table(credit / "data" / "big.parquet")
    features = [c for c in table.column_names if c not in ("defaulted", "application_id")]
    text = {c for c in features if pa.types.is_string(table.schema.field(c).type)}
    fields: dict[str, Any] = {
        "config": str((credit / "mlci.yaml").resolve()),
        "config_sha256": hashlib.sha256((credit / "mlci.yaml").read_bytes()).hexdigest(),
        "model": "credit-default",
        "data": str((credit / "data" / "big.parquet").resolve()),
        "columns": (tuple(features), tuple(features)),
        "dtypes": tuple((c, np.dtype(object if c in text else np.float64).str) for c in features),
    }
    return Job(**{**fields, **changes})


def test_worker_failures_are_one_line_errors(credit: Path, cluster: Any, tmp_path: Path) -> None:
    """What a worker cannot do reaches the client as mlci's error, naming the worker."""
    from distributed import Client

    from mlci.errors import ConfigError, DataError
    from mlci.scale.dask_engine import Partition, predict_partitions

    part = Partition((0,), 0, 1500)
    cases = [
        (_job(credit, config=str(tmp_path / "nowhere.yaml")), ConfigError, "cannot load model"),
        (_job(credit, config_sha256="0" * 64), ConfigError, "differs from the client's mlci.yaml"),
        (_job(credit, data=str(tmp_path / "gone.parquet")), DataError, "cannot read"),
    ]
    with Client(cluster.scheduler_address) as client:
        for job, kind, message in cases:
            with pytest.raises(kind, match=message) as caught:
                predict_partitions(client, job, [part])
            assert "Dask worker" in str(caught.value)
            assert "same paths" in (caught.value.tip or "")
        # The last row group holds 20,000 rows, not the 30,000 the plan expects.
        with pytest.raises(DataError, match="changed while it was being evaluated"):
            predict_partitions(client, _job(credit), [Partition((4,), 120_000, 150_000)])


def test_several_models_shard_into_a_folder_each(
    credit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = yaml.safe_load((credit / "mlci.yaml").read_text())["models"]
    # The second model is the production scorecard compared with itself.
    second_spec = {**models[0], "name": "second", "path": models[0]["baseline"]["path"]}
    config = configure(credit, "two-models.yaml", models=[*models, second_spec])
    for index in range(2):
        argv = [
            "evaluate",
            "-c",
            str(config),
            "--shard",
            f"{index}/2",
            "-o",
            str(tmp_path / f"j{index}"),
            "-q",
        ]
        code, stdout, _ = cli(argv, capsys)
        assert code == 0
        assert sorted(Path(line.split()[-1]).parent.name for line in stdout.splitlines()) == [
            "credit-default", "second",
        ]  # fmt: skip
    second = sorted(tmp_path.glob("j*/second/*.npz"))
    merged = tmp_path / "second.json"
    argv = merge_argv(second, config, merged)
    code, _, err = cli(argv, capsys)
    assert code == 0, err
    document = json.loads(merged.read_text())
    assert document["model"]["name"] == "second"
    assert document["model"]["sha256"] == document["baseline"]["sha256"]
    delta = document["evaluation"]["metrics"]["delta"]["roc_auc"]
    assert delta["value"] == 0.0 and delta["verdict"] == "no detectable difference"
    # Both models' shards at once make two documents, which one report cannot hold.
    everything = sorted(tmp_path.glob("j*/*/*.npz"))
    code, _, err = cli(merge_argv(everything, config), capsys)
    assert code == 2
    assert "the shards of model" in err.splitlines()[0]


def test_too_few_partitions_for_the_workers_are_reported(
    credit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quick = {"bootstrap": 0, "discover": {"enabled": False}}
    config = configure(
        credit,
        "dask-one-partition.yaml",
        data__path="data/big.parquet",
        evaluation=quick,
        engine={"kind": "dask", "workers": 2, "partition_rows": 200_000},
    )
    code, _, err = cli(["evaluate", "-c", str(config), "-o", str(tmp_path / "out")], capsys)
    assert code == 0, err
    assert "140,000 rows make 1 partitions for 2 workers (lower engine.partition_rows" in err
    assert "predicted 1 of 1 partitions" in err
