"""Promotion and rollback: the rules (pure, against a plain model of a stack of versions) and
the three stores (the suite's OCI registry, an MLflow server, a git repository), including two
runs racing each other for real."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from services_registry import Registry, run_cli
from services_sources import (
    KeyPair,
    MlflowServer,
    commit_all,
    gated_results,
    git,
    init_repo,
    make_key,
    onnx_model,
    register_onnx,
)

from mlci.errors import MlciError
from mlci.results import load
from mlci.sources import history
from mlci.sources.history import Entry, PromotionRefused, State, Who
from mlci.sources.targets import Lost

# --- the rules, against a plain model -------------------------------------------------------------

TARGETS = ["a", "b", "c", "d"]


def _document(sha: str, tmp: Path) -> Any:
    return load(gated_results(tmp / f"results-{sha[:4]}.json", sha))


OPS = st.lists(st.one_of(st.sampled_from(TARGETS), st.just("rollback")), max_size=12)


@settings(max_examples=150, deadline=None)
@given(ops=OPS, start=st.sampled_from([None, "z"]))
def test_history_follows_a_stack_of_versions(ops: list[str], start: str | None) -> None:
    """Promotions push, rollbacks pop, re-promoting the current version changes nothing."""
    import tempfile

    shas = {t: f"{i:064x}" for i, t in enumerate([*TARGETS, "z"])}
    with tempfile.TemporaryDirectory() as tmp:
        documents = {t: _document(shas[t], Path(tmp)) for t in TARGETS}
        state = State(start, ())
        live = [start] if start else []
        entries: list[Entry] = []
        who = Who("tester", None, None)
        for op in ops:
            if op == "rollback":
                if len([v for v in live if v is not None]) < 2:
                    with pytest.raises(PromotionRefused):
                        history.plan_rollback(
                            state,
                            reason="r",
                            who=who,
                            time="t",
                            nonce="n",
                            pointer_name="p",
                            model_sha256_of=lambda t: shas[t],
                        )
                    continue
                plan = history.plan_rollback(
                    state,
                    reason="r",
                    who=who,
                    time="t",
                    nonce="n",
                    pointer_name="p",
                    model_sha256_of=lambda t: shas[t],
                )
                live.pop()
                assert plan.write and plan.entry.target == live[-1]
                assert plan.entry.model_sha256 == shas[live[-1]]
            else:
                plan = history.plan_promote(
                    state,
                    target=op,
                    model_sha256=shas[op],
                    document=documents[op],
                    reason="p",
                    who=who,
                    time="t",
                    nonce="n",
                    pointer_name="p",
                )
                if live and live[-1] == op:
                    assert not plan.write and not plan.move  # already in production
                    continue
                assert plan.write and plan.entry.previous == state.pointer
                live.append(op)
            entries.append(plan.entry)
            assert plan.entry.seq == len(entries)
            state = State(plan.entry.target, tuple(entries))
            assert [v.target for v in history.production(entries)] == live


def test_rollback_by_the_same_request_is_done_once() -> None:
    who = Who("alice", None, "run-7")
    a = Entry(1, "promote", "a", "1" * 64, None, "p", "t")
    b = Entry(2, "promote", "b", "2" * 64, "a", "p", "t")
    state = State("b", (a, b))
    plan = history.plan_rollback(
        state, reason="r", who=who, time="t", nonce="n", pointer_name="p", model_sha256_of=str
    )
    assert plan.write and plan.entry.target == "a" and plan.entry.restores == 1
    after = State("a", (a, b, plan.entry))
    again = history.plan_rollback(
        after, reason="r", who=who, time="t", nonce="n", pointer_name="p", model_sha256_of=str
    )
    assert not again.write and not again.move and "already rolled" in again.message


def test_a_pointer_moved_outside_mlci_is_not_silently_overwritten(tmp_path: Path) -> None:
    a = Entry(1, "promote", "a", "1" * 64, None, "p", "t")
    state = State("x", (a,))
    with pytest.raises(PromotionRefused, match="moved outside mlci"):
        history.plan_promote(
            state,
            target="b",
            model_sha256="2" * 64,
            document=_document("2" * 64, tmp_path),
            reason="p",
            who=Who(None, None, None),
            time="t",
            nonce="n",
            pointer_name="p",
        )
    # promoting the recorded version again finishes the interrupted move
    plan = history.plan_promote(
        state,
        target="a",
        model_sha256="1" * 64,
        document=_document("1" * 64, tmp_path),
        reason="p",
        who=Who(None, None, None),
        time="t",
        nonce="n",
        pointer_name="p",
    )
    assert plan.move and not plan.write


def test_evidence_is_checked(tmp_path: Path) -> None:
    sha = "ab" * 32
    ok = load(gated_results(tmp_path / "ok.json", sha))
    history.check_evidence(ok, sha, "ok.json")
    with pytest.raises(PromotionRefused, match="decided on model sha256"):
        history.check_evidence(ok, "cd" * 32, "ok.json")
    hold = load(gated_results(tmp_path / "hold.json", sha, "hold"))
    with pytest.raises(PromotionRefused, match="the gate decided hold"):
        history.check_evidence(hold, sha, "hold.json")
    tampered = tamper(gated_results(tmp_path / "t.json", sha, "block"))
    with pytest.raises(PromotionRefused, match="changed after the gate wrote it"):
        history.check_evidence(load(tampered), sha, "t.json")
    no_gate = load(gated_results(tmp_path / "n.json", sha)).with_section("gate", None)
    with pytest.raises(PromotionRefused, match="no gate decision"):
        history.check_evidence(no_gate, sha, "n.json")


def tamper(path: Path) -> Path:
    """Turn a gate's block into promote without judging again (the binding no longer holds)."""
    data = json.loads(path.read_text())
    data["gate"]["decision"] = "promote"
    path.write_text(json.dumps(data))
    return path


# --- the stores ------------------------------------------------------------------------------------


@dataclass
class Version:
    ref: str  # what --model takes
    sha256: str
    results: Path


@dataclass
class World:
    """A pointer in a real store, and model versions ready to promote."""

    kind: str
    pointer: str
    versions: list[Version]
    key: KeyPair
    base: Path  # the working folder (the git repository for git)

    def bundle_of(self, entry: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


def _results(folder: Path, name: str, sha: str) -> Path:
    return gated_results(folder / f"{name}.json", sha)


class OciWorld(World):
    def bundle_of(self, entry: dict[str, Any]) -> dict[str, Any]:
        from mlci.supply.referrers import Referrer, fetch_bundle
        from mlci.supply.registry import Reference, RegistryClient
        from mlci.supply.store import RegistryStore

        reference = entry["attestation"]  # host/repo@sha256:... of the referrer
        repository, _, digest = reference.partition("@")
        store = RegistryStore(RegistryClient(Reference.parse(self.pointer.removeprefix("oci://"))))
        found = [r for r in store.referrers(entry["target"]) if r.digest == digest]
        assert len(found) == 1, "the attestation is a referrer of the promoted manifest"
        return fetch_bundle(store, Referrer(found[0]), entry["target"])


class MlflowWorld(World):
    def bundle_of(self, entry: dict[str, Any]) -> dict[str, Any]:
        import mlflow

        name = self.pointer.removeprefix("models:/").split("@")[0]
        key = entry["attestation"].rsplit(" tag ", 1)[1]
        tags = mlflow.tracking.MlflowClient().get_model_version(name, entry["target"]).tags
        return dict(json.loads(tags[key]))


class GitWorld(World):
    def bundle_of(self, entry: dict[str, Any]) -> dict[str, Any]:
        from mlci.sources.target_git import parse_message

        message = git(self.base, "cat-file", "tag", entry["attestation"]).split("\n\n", 1)[1]
        parsed, bundle = parse_message(message, entry["attestation"])
        assert parsed.seq == entry["seq"]
        assert bundle is not None
        return bundle


@pytest.fixture
def signing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KeyPair:
    key = make_key(tmp_path / "keys")
    monkeypatch.setenv("COSIGN_PASSWORD", key.password)
    monkeypatch.setenv("MLCI_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("GITHUB_RUN_ID", "GITHUB_ACTOR", "GITHUB_REPOSITORY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    return key


def oci_world(
    registry: Registry, tmp: Path, key: KeyPair, repo: str, n: int, capsys: Any
) -> OciWorld:
    versions = []
    for i in range(n):
        model = tmp / f"oci-{i}" / "credit.onnx"
        sha = onnx_model(model, scale=1.0 + i)
        code, out, err = run_cli(
            ["push-model", str(model), registry.ref(repo, f"v{i}"), "-q"], capsys
        )
        assert code == 0, err
        versions.append(Version(out.strip(), sha, _results(tmp, f"oci-{i}", sha)))
    return OciWorld("oci", f"oci://{registry.ref(repo, 'prod')}", versions, key, tmp)


def mlflow_world(server: MlflowServer, tmp: Path, key: KeyPair, name: str, n: int) -> MlflowWorld:
    versions = []
    for i in range(n):
        model = tmp / f"mlflow-{i}" / "model.onnx"
        sha = onnx_model(model, scale=1.0 + i)
        number = register_onnx(name, model)
        versions.append(Version(f"models:/{name}/{number}", sha, _results(tmp, f"mlflow-{i}", sha)))
    return MlflowWorld("mlflow", f"models:/{name}@champion", versions, key, tmp)


def git_world(tmp: Path, key: KeyPair, n: int) -> GitWorld:
    root = init_repo(tmp / "repo")
    versions = []
    for i in range(n):
        sha = onnx_model(root / "models" / "m.onnx", scale=1.0 + i)
        commit = commit_all(root, f"model v{i}")
        versions.append(Version(f"git:{commit}:models/m.onnx", sha, _results(tmp, f"git-{i}", sha)))
    return GitWorld("git", "git:production:models/m.onnx", versions, key, root)


@pytest.fixture(params=["oci", "mlflow", "git"])
def world(
    request: pytest.FixtureRequest,
    signing: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[World]:
    kind = request.param
    name = request.node.name.split("[")[0].replace("_", "-")[-40:].strip("-")
    if kind == "oci":
        registry = request.getfixturevalue("registry")
        yield oci_world(registry, tmp_path, signing, f"promote/{name}", 3, capsys)
    elif kind == "mlflow":
        server = request.getfixturevalue("mlflow_server")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
        yield mlflow_world(server, tmp_path, signing, f"{name}-{tmp_path.name}"[-60:], 3)
    else:
        made = git_world(tmp_path, signing, 3)
        monkeypatch.chdir(made.base)
        yield made


def cli(world: World, capsys: Any, *argv: str) -> tuple[int, str, str]:
    return run_cli([*argv, "--key", str(world.key.private)], capsys)


def promotions(world: World, capsys: Any) -> dict[str, Any]:
    code, out, err = run_cli(["promotions", world.pointer, "--json"], capsys)
    assert code == 0, err
    return dict(json.loads(out))


def test_promote_again_roll_back(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, c = world.versions
    p = world.pointer

    code, out, err = cli(
        world,
        capsys,
        "promote",
        str(a.results),
        "--to",
        p,
        "--model",
        a.ref,
        "--reason",
        "first release",
    )
    assert code == 0, err
    first = promotions(world, capsys)
    target_a = first["target"]
    assert first["entries"][0]["model_sha256"] == a.sha256
    recorded = load(a.results).promotion
    assert recorded is not None and recorded.target == target_a and recorded.changed

    # re-running changes nothing
    code, out, err = cli(world, capsys, "promote", str(a.results), "--to", p, "--model", a.ref)
    assert code == 0 and out.startswith("unchanged"), err
    assert len(promotions(world, capsys)["entries"]) == 1

    # the wrong model, another decision, a tampered document: refused, nothing moves
    code, _, err = cli(world, capsys, "promote", str(a.results), "--to", p, "--model", b.ref)
    assert code == 1 and "the gate decided on model sha256" in err
    hold = gated_results(world.base / "hold.json", b.sha256, "hold")
    code, _, err = cli(world, capsys, "promote", str(hold), "--to", p, "--model", b.ref)
    assert code == 1 and "the gate decided hold" in err
    forged = tamper(gated_results(world.base / "forged.json", b.sha256, "block"))
    code, _, err = cli(world, capsys, "promote", str(forged), "--to", p, "--model", b.ref)
    assert code == 1 and "changed after the gate wrote it" in err
    assert promotions(world, capsys)["target"] == target_a

    # promote another model, then roll back to the first
    code, _, err = cli(
        world,
        capsys,
        "promote",
        str(b.results),
        "--to",
        p,
        "--model",
        b.ref,
        "--reason",
        "better AUC",
    )
    assert code == 0, err
    target_b = promotions(world, capsys)["target"]
    assert target_b != target_a
    code, out, err = cli(
        world, capsys, "rollback", p, "--request-id", "r1", "--reason", "latency alarm"
    )
    assert code == 0, err
    assert promotions(world, capsys)["target"] == target_a
    code, out, err = cli(world, capsys, "rollback", p, "--request-id", "r1")
    assert code == 0 and out.startswith("unchanged"), err  # the same request, once
    code, _, err = cli(world, capsys, "rollback", p, "--request-id", "r2")
    assert code == 1 and "nothing earlier to roll back to" in err

    final = promotions(world, capsys)
    assert final["target"] == target_a
    entries = final["entries"]
    assert [(e["seq"], e["action"], e["target"], e["previous"]) for e in entries] == [
        (1, "promote", target_a, None),
        (2, "promote", target_b, target_a),
        (3, "rollback", target_a, target_b),
    ]
    assert [e["reason"] for e in entries] == ["first release", "better AUC", "latency alarm"]
    assert entries[2]["request"] == "r1" and entries[2]["restores"] == 1
    assert entries[0]["gate_digest"] == load(a.results).gate.digest  # type: ignore[union-attr]

    # every move is attested, signed by the key, about exactly that version
    from mlci.supply.attest import parse_bundle
    from mlci.supply.verify import Policy, verify_bundle

    for entry in entries:
        bundle = parse_bundle(json.dumps(world.bundle_of(entry)))
        verified = verify_bundle(bundle, Policy(public_key=world.key.public))
        statement = verified.statement or {}
        assert statement["predicateType"] == "https://mlci.dev/attestation/promotion/v1"
        predicate = statement["predicate"]
        assert predicate["action"] == entry["action"] and predicate["target"] == entry["target"]
        assert predicate["pointer"]["name"] == p
        assert entry["model_sha256"] in [s["digest"]["sha256"] for s in statement["subject"]]
        if entry["action"] == "promote":
            assert predicate["decision"]["decision"] == "promote"
            assert predicate["evidence"]["resultsSha256"]

    # what promotion moved is what a baseline reads
    from mlci.sources import reference as refs
    from mlci.sources.cache import ModelCache
    from mlci.sources.fetch import Request, fetch

    baseline = fetch(Request(refs.parse_source(p), world.base), ModelCache(world.base / "read"))
    assert baseline.digest == a.sha256


def test_rollback_needs_a_history(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(world, capsys, "rollback", world.pointer)
    assert code == 1 and "no promotion history" in err
    code, _, err = run_cli(
        ["promote", str(world.versions[0].results), "--to", world.pointer], capsys
    )
    assert code == 2 and "--key FILE or --keyless" in err


def check_chain(world: World, capsys: Any) -> dict[str, Any]:
    """The history is one chain of moves and the pointer is where it ends."""
    state = promotions(world, capsys)
    entries = state["entries"]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    for previous, entry in zip(entries, entries[1:], strict=False):
        assert entry["previous"] == previous["target"]
    assert state["target"] == entries[-1]["target"]
    return state


def race(world: World, versions: list[Version], job: Any) -> tuple[list[Any], list[Lost]]:
    """Run ``job(version, barrier)`` for each version in its own thread, at the same moment."""
    barrier = threading.Barrier(len(versions))
    outcomes: dict[int, Any] = {}

    def run(index: int, version: Version) -> None:
        try:
            outcomes[index] = job(version, barrier)
        except MlciError as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i, v)) for i, v in enumerate(versions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(outcomes) == len(versions)
    lost = [o for o in outcomes.values() if isinstance(o, Lost)]
    won = [o for o in outcomes.values() if not isinstance(o, Exception)]
    assert len(won) + len(lost) == len(versions), outcomes  # nothing else went wrong
    assert won, "one of the racing runs wins"
    for loss in lost:
        assert "first" in loss.message and "nothing changed" in loss.message
    return won, lost


def test_two_concurrent_promotions(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    """Two runs of `mlci promote` with different models start at the same moment, three times
    over: whichever way they interleave, every run that reports success is in the history, a
    run that lost says so and changed nothing, and pointer and history agree."""
    import os

    from mlci.sources.promote import promote
    from mlci.sources.targets import open_target
    from mlci.supply.signing import KeySigner

    signer = KeySigner.from_file(world.key.private)
    a, b, c = world.versions
    code, _, err = cli(
        world, capsys, "promote", str(c.results), "--to", world.pointer, "--model", c.ref
    )
    assert code == 0, err
    current = c
    for _ in range(3):
        before = promotions(world, capsys)
        contenders = [v for v in (a, b, c) if v is not current]

        def job(version: Version, barrier: threading.Barrier) -> Any:
            target = open_target(world.pointer, world.base)
            document = load(version.results)
            barrier.wait()
            return promote(
                target,
                document,
                where="race",
                results_sha256=None,
                model=version.ref,
                signer=signer,
                reason="race",
                env=os.environ,
            )

        won, lost = race(world, contenders, job)
        after = check_chain(world, capsys)
        added = after["entries"][len(before["entries"]) :]
        assert len(added) == len(won)  # both moved one after the other, or one won the race
        assert {e["nonce"] for e in added} == {w.entry.nonce for w in won}
        current = next(v for v in contenders if v.sha256 == added[-1]["model_sha256"])


def test_a_race_on_the_store_has_one_winner(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both runs read the pointer before either writes (the worst interleaving, made certain),
    then both commit at once against the real store: exactly one wins."""
    import os
    import secrets

    from mlci.sources.promote import now
    from mlci.sources.targets import open_target
    from mlci.supply.signing import KeySigner

    signer = KeySigner.from_file(world.key.private)
    a, b, c = world.versions
    code, _, err = cli(
        world, capsys, "promote", str(c.results), "--to", world.pointer, "--model", c.ref
    )
    assert code == 0, err

    def job(version: Version, barrier: threading.Barrier) -> Any:
        target = open_target(world.pointer, world.base)
        document = load(version.results)
        candidate = target.candidate(version.ref, document)
        state = target.read()
        plan = history.plan_promote(
            state,
            target=candidate.target,
            model_sha256=candidate.model_sha256,
            document=document,
            reason="race",
            who=history.who_from(os.environ),
            time=now(),
            nonce=secrets.token_hex(8),
            pointer_name=target.name,
        )
        statement = history.statement(
            plan.entry,
            pointer_kind=target.kind,
            pointer_name=target.name,
            subjects=target.subjects(candidate.target, candidate.model_sha256),
            document=document,
            results_sha256=None,
        )
        bundle = signer.sign_statement(statement)
        barrier.wait()  # both have read the same state; now both write
        return target.commit(state, plan.entry, bundle, write=True)

    won, lost = race(world, [a, b], job)
    assert len(won) == 1 and len(lost) == 1
    state = check_chain(world, capsys)
    assert len(state["entries"]) == 2
    assert state["entries"][-1]["nonce"] == won[0].nonce
    assert state["entries"][-1]["model_sha256"] in (a.sha256, b.sha256)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["promotions", "http://h.example/m"], "plain http is refused"),
        (["promotions", f"oci://127.0.0.1:9/m@sha256:{'a' * 64}"], "a pointer is a tag"),
        (["promotions", "models:/credit/3"], "a pointer is an alias"),
        (["promotions", "models/m.onnx"], "a production pointer is oci://"),
        (["promotions", "git:bad..tag:m.onnx"], "not a valid git ref"),
        (["promotions", "--fetch", "origin", "oci://127.0.0.1:9/m:prod"], "--push goes with a git"),
        (
            ["promote", "missing.json", "--to", "oci://127.0.0.1:9/m:prod", "--keyless"],
            "no such results file",
        ),
        (["push-model", "m.onnx", f"127.0.0.1:9/m@sha256:{'a' * 64}"], "push to a tag"),
        (["push-model", "missing.onnx", "127.0.0.1:9/m:v1"], "no such model file"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    onnx_model(tmp_path / "m.onnx", scale=1.0)
    code, out, err = run_cli(argv, capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_first_promotion_over_a_pointer_set_by_hand_can_be_rolled_back(
    signing: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = git_world(tmp_path, signing, 2)
    monkeypatch.chdir(made.base)
    a, b = made.versions
    git(made.base, "tag", "production", a.ref.split(":")[1])  # production before mlci
    code, _, err = cli(
        made, capsys, "promote", str(b.results), "--to", made.pointer, "--model", b.ref
    )
    assert code == 0, err
    code, _, err = cli(made, capsys, "rollback", made.pointer)
    assert code == 0, err
    state = promotions(made, capsys)
    assert state["target"] == a.ref.split(":")[1]
    assert state["entries"][-1]["model_sha256"] == a.sha256  # computed from the commit


def test_git_tags_published_to_a_remote_race_there(
    signing: KeyPair,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two clones promote through one remote: the remote's ref lease decides, the loser's
    local refs are put back, and every clone reads the same history."""
    import os
    import subprocess

    from mlci.sources.promote import promote
    from mlci.sources.targets import open_target
    from mlci.supply.signing import KeySigner

    made = git_world(tmp_path, signing, 3)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(made.base), str(remote)], check=True)
    clones = []
    for name in ("one", "two"):
        clone = tmp_path / name
        subprocess.run(["git", "clone", "-q", str(remote), str(clone)], check=True)
        git(clone, "config", "user.email", f"{name}@example.com")
        clones.append(clone)
    a, b, c = made.versions
    signer = KeySigner.from_file(signing.private)
    first = promote(
        open_target(made.pointer, clones[0], push="origin"),
        load(c.results),
        where="c",
        results_sha256=None,
        model=c.ref,
        signer=signer,
        reason="start",
        env=os.environ,
    )
    assert first.changed
    assert git(remote, "rev-parse", "production^{commit}") == c.ref.split(":")[1]

    def job(pair: tuple[Path, Version], barrier: threading.Barrier) -> Any:
        clone, version = pair
        target = open_target(made.pointer, clone, push="origin")
        document = load(version.results)
        barrier.wait()
        return promote(
            target,
            document,
            where="race",
            results_sha256=None,
            model=version.ref,
            signer=signer,
            reason="race",
            env=os.environ,
        )

    won = lost = 0
    for _ in range(2):
        outcomes: dict[int, Any] = {}
        barrier = threading.Barrier(2)

        def run(
            index: int,
            pair: tuple[Path, Version],
            into: dict[int, Any] = outcomes,
            gate: threading.Barrier = barrier,
        ) -> None:
            try:
                into[index] = job(pair, gate)
            except MlciError as exc:
                into[index] = exc

        current = git(remote, "rev-parse", "production^{commit}")
        contenders = [v for v in (a, b, c) if v.ref.split(":")[1] != current]
        threads = [
            threading.Thread(target=run, args=(i, (clones[i], v))) for i, v in enumerate(contenders)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert all(
            isinstance(o, Lost) or not isinstance(o, Exception) for o in outcomes.values()
        ), outcomes
        won += sum(not isinstance(o, Exception) for o in outcomes.values())
        lost += sum(isinstance(o, Lost) for o in outcomes.values())
        # the remote holds one chain, and each clone reads exactly it
        views = []
        for clone in clones:
            state = open_target(made.pointer, clone, push="origin").read()
            views.append((state.pointer, [e.nonce for e in state.entries]))
            assert [e.seq for e in state.entries] == list(range(1, len(state.entries) + 1))
            for previous, entry in zip(state.entries, state.entries[1:], strict=False):
                assert entry.previous == previous.target
            assert state.pointer == state.entries[-1].target
        assert views[0] == views[1]
        assert views[0][0] == git(remote, "rev-parse", "production^{commit}")
    assert won >= 2 and lost >= 1, (won, lost)
