"""One flow: every stage from one mlci.yaml in one run, in dependency order, through the same
code as the one-stage commands; the registry of stages, the typed results and their schema."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path
from typing import Any, get_args

import pytest
from services_podman import base_image  # noqa: F401
from services_registry import Registry, run_cli

from mlci.config import StageName
from mlci.models.formats import CONFIG_FORMATS, FORMATS, MODEL_SUFFIXES, ModelFormat
from mlci.results import SECTIONS, Results, schema
from mlci.stages import STAGES
from mlci.supply import attest
from project import Project

ROOT = Path(__file__).resolve().parents[1]

IMAGE_CONFIG = """
image:
  sbom: true
  sign:
    method: key
    key: keys/signing.key
gate:
  rules:
    - kind: metric
      metric: roc_auc
      min: 0.5
    - kind: supply_chain
"""


def with_image(project: Project, extra: str = "") -> Project:
    """The project with an image section and a fresh P-256 key at keys/signing.key."""
    keys = project.root / "keys"
    keys.mkdir()
    key = subprocess.run(
        ["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-nocrypt", "-out", str(keys / "signing.key")],
        input=key,
        check=True,
    )
    project.config.write_text(project.config.read_text() + IMAGE_CONFIG + extra)
    return project


def test_the_registry_config_and_results_agree() -> None:
    assert get_args(StageName) == tuple(STAGES)
    for stage in STAGES.values():
        assert callable(stage.load())
        assert stage.section in Results.model_fields
        assert set(stage.needs) <= set(STAGES)
        # A stage comes after every stage it needs.
        order = list(STAGES)
        assert all(order.index(n) < order.index(stage.name) for n in stage.needs)
    assert set(SECTIONS) <= set(Results.model_fields)


def test_the_shipped_schema_is_generated_from_the_models() -> None:
    shipped = json.loads((ROOT / "mlci" / "schemas" / "results.schema.json").read_text())
    assert shipped == schema(), (
        "mlci/schemas/results.schema.json is stale: mlci schema --results > that file"
    )


def test_one_table_of_model_formats() -> None:
    assert tuple(FORMATS) == get_args(ModelFormat)
    assert set(FORMATS) < set(CONFIG_FORMATS)
    from mlci.config import ModelSource

    assert set(get_args(ModelSource.model_fields["format"].annotation)) == set(CONFIG_FORMATS)
    assert set(schema()["$defs"]["ModelRecord"]["properties"]["format"]["enum"]) == set(FORMATS)
    for spec in FORMATS.values():
        assert set(spec.suffixes) <= set(MODEL_SUFFIXES)


def _module_imports(path: Path, package: str) -> set[str]:
    """mlci modules imported when ``path`` is imported (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in [node] if not isinstance(node, ast.If) else node.body:
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                if sub.module.startswith("mlci"):
                    found.add(sub.module)
                    found.update(f"{sub.module}.{a.name}" for a in sub.names if a.name != "*")
            elif isinstance(sub, ast.Import):
                found.update(a.name for a in sub.names if a.name.startswith("mlci"))
    return found


def test_no_import_cycles() -> None:
    modules = {}
    for path in (ROOT / "mlci").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {
        name: {m for m in _module_imports(path, name) if m in modules and m != name}
        for name, path in modules.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_check_runs_every_stage_in_one_run(
    project: Project,
    base_image: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with_image(project)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        ["check", "-q", "-c", str(project.config), "-o", str(out), "--image-base", str(base_image)],
        capsys,
    )
    assert code == 0, stderr
    results: dict[str, Any] = json.loads((out / "results.json").read_text())
    for section in ("evaluation", "image", "gate", "card"):
        assert results[section], section
    assert {n: s["status"] for n, s in results["stages"].items()} == {
        "evaluate": "ran",
        "tests": "skipped",
        "benchmark": "skipped",
        "image": "ran",
        "sbom": "ran",
        "sign": "ran",
        "canary": "skipped",
        "gate": "ran",
        "card": "ran",
        "attest": "ran",
    }
    for name in ("card.md", "card.cdx.json", "sbom.cdx.json", "signing.pub", "image/index.json"):
        assert (out / name).is_file(), name
    image = results["image"]
    assert image["output"] == "oci:image" and image["sbom"]["attached"] is True
    assert {s["kind"] for s in image["signatures"]} == {"signature", "sbom", "evaluation"}
    assert all(s["verified"] for s in image["signatures"])
    gate = results["gate"]
    assert gate["decision"] == "promote" and gate["image_digest"] == image["digest"]
    assert next(r for r in gate["rules"] if r["kind"] == "supply_chain")["status"] == "pass"
    # The signed decision is the final one: the attestation carries this gate's digest.
    code, stdout, stderr = run_cli(
        ["verify", f"oci:{out / 'image'}", "--key", str(out / "signing.pub")], capsys
    )
    assert code == 0, stderr
    assert stdout.splitlines()[-1].endswith("(evaluation, sbom, signature)")
    from mlci.supply.referrers import fetch_bundle, list_referrers
    from mlci.supply.store import LayoutStore

    store = LayoutStore(out / "image")
    evaluation = next(
        r for r in list_referrers(store, image["digest"])
        if r.predicate_type == attest.EVALUATION_PREDICATE
    )  # fmt: skip
    predicate = attest.envelope_of(fetch_bundle(store, evaluation, image["digest"])).statement()[
        "predicate"
    ]
    assert predicate["gate"] == {
        "decision": gate["decision"],
        "reason": gate["reason"],
        "digest": gate["digest"],
    }
    # The card, written by the same run, shows that decision.
    assert f"promotion_decision: {gate['decision']}" in (out / "card.md").read_text()


def test_the_image_is_pushed_and_its_signatures_go_along(
    project: Project,
    base_image: Path,  # noqa: F811
    registry: Registry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    repository = registry.ref("team/pipeline")
    with_image(project, "  # pushed\n")
    project.config.write_text(
        project.config.read_text().replace(
            "image:\n", f"image:\n  registry: {repository}\n  tag: pr-1\n"
        )
    )
    out = tmp_path / "out"
    args = ["check", "-q", "-c", str(project.config), "-o", str(out)]
    code, _, stderr = run_cli([*args, "--image-base", str(base_image), "--push"], capsys)
    assert code == 0, stderr
    image = json.loads((out / "results.json").read_text())["image"]
    assert image["reference"] == f"{repository}:pr-1" and image["pushed"]
    code, stdout, stderr = run_cli(
        ["verify", f"{repository}:pr-1", "--key", str(out / "signing.pub")], capsys
    )
    assert code == 0, stderr
    # A layout signed offline and pushed later carries its signatures to the registry.
    offline = tmp_path / "offline"
    code, _, stderr = run_cli([*args[:-1], str(offline), "--image-base", str(base_image)], capsys)
    assert code == 0, stderr
    target = f"{registry.ref('team/later')}:v1"
    assert run_cli(["push", str(offline / "image"), target, "-q"], capsys)[0] == 0
    code, _, stderr = run_cli(["verify", target, "--key", str(offline / "signing.pub")], capsys)
    assert code == 0, stderr


def test_a_failed_stage_is_recorded_and_the_gate_reads_the_gap(
    project: Project,
    base_image: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with_image(project)
    # Nothing listens there: the push fails after the build.
    project.config.write_text(
        project.config.read_text().replace(
            "image:\n", "image:\n  registry: 127.0.0.1:9/team/nowhere\n  push: true\n"
        )
    )
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        ["check", "-c", str(project.config), "-o", str(out), "--image-base", str(base_image)],
        capsys,
    )
    assert code == 1
    results = json.loads((out / "results.json").read_text())
    stages = results["stages"]
    assert stages["image"]["status"] == "failed"
    assert "127.0.0.1:9" in stages["image"]["reason"]
    assert stages["sign"]["status"] == "skipped"
    assert stages["sign"]["reason"].startswith("needs the image stage, which failed")
    rule = next(r for r in results["gate"]["rules"] if r["kind"] == "supply_chain")
    assert rule["status"] == "missing" and "failed" in rule["explanation"]
    assert results["gate"]["decision"] == "hold"
    assert "image failed:" in stdout


def test_only_skip_and_a_missing_base(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with_image(project)
    out = tmp_path / "out"
    base = ["check", "-q", "-c", str(project.config), "-o", str(out)]
    assert run_cli([*base, "--only", "evaluate,gate"], capsys)[0] == 0
    stages = json.loads((out / "results.json").read_text())["stages"]
    assert list(stages) == ["evaluate", "gate"]
    assert run_cli([*base, "--skip", "card,attest"], capsys)[0] == 0
    stages = json.loads((out / "results.json").read_text())["stages"]
    assert "card" not in stages and "attest" not in stages
    # Without a base image the image stage says why, and what needs it says so too.
    assert stages["image"] == {
        "status": "skipped",
        "reason": "no base image (tip: set image.base in mlci.yaml or pass --image-base)",
        "duration_s": stages["image"]["duration_s"],
    }
    assert stages["sbom"]["reason"].startswith("needs the image stage, which skipped: no base")
    code, _, err = run_cli([*base, "--only", "evaluat"], capsys)
    assert code == 2 and "unknown stage 'evaluat' (did you mean 'evaluate'?)" in err


def test_a_relative_configuration_path_finds_its_files(
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Paths in mlci.yaml are relative to its folder, however the folder is named.
    monkeypatch.chdir(project.root.parent)
    config = Path(project.root.name) / "mlci.yaml"
    code, _, err = run_cli(["evaluate", "-q", "-c", str(config), "-o", "out"], capsys)
    assert code == 0, err
    model = json.loads((project.root.parent / "out" / "results.json").read_text())["model"]
    assert Path(model["path"]).resolve() == (project.root / "models" / "candidate.onnx").resolve()
