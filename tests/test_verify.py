"""Verification end to end against a real registry, tampering, and the real GitHub bundle."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from documents import plain
from services_registry import (
    make_layout,
    results_document,
    run_cli,
    write_results,
)

from mlci.results import load
from mlci.supply import attest
from mlci.supply.referrers import (
    ANNOTATION_PREDICATE,
    attach_bundle,
    fetch_bundle,
    list_referrers,
)
from mlci.supply.registry import Reference
from mlci.supply.signing import KeySigner, generate_key_pair
from mlci.supply.store import RegistryStore, fallback_tag
from mlci.supply.verify import Policy, VerificationError, verify_file, verify_image

# A real keyless bundle that GitHub Actions made for a real wheel (see its README).
FIXTURES = Path(__file__).resolve().parent / "assets" / "sigstore-github"
WHEEL = "rfc8785-0.1.2-py3-none-any.whl"
GITHUB_IDENTITY = (
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
)
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
PASSWORD = "signing pass"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_key_pair(tmp_path_factory.mktemp("keys") / "cosign", PASSWORD)


@pytest.fixture
def signed(registry, keys, tmp_path: Path, capsys, monkeypatch, request):
    """An image pushed, described, signed and attested with a cosign key, via the CLI."""
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    layout = make_layout(tmp_path / "layout", model=request.node.name.encode())
    repository = f"team/{request.node.name.lower().replace('_', '-')[:40]}"
    ref = registry.ref(repository, "v1")
    results = write_results(tmp_path / "results.json", results_document(layout.model_sha256))
    sbom = tmp_path / "sbom.cdx.json"
    for argv in (
        ["push", str(layout.path), ref, "--results", str(results), "-q"],
        ["sbom", str(layout.path), "-o", str(sbom), "--results", str(results)],
        ["sign", ref, "--key", str(keys[0]), "--sbom", str(sbom), "--results", str(results)],
    ):
        code, _, err = run_cli(argv, capsys)
        assert code == 0, (argv[0], err)
    return {"ref": ref, "layout": layout, "results": results, "sbom": sbom, "tmp": tmp_path}


def test_sign_and_verify_end_to_end(signed, keys, capsys) -> None:
    ref, layout, results = signed["ref"], signed["layout"], signed["results"]
    client = RegistryStore.open(Reference.parse(ref))
    referrers = list_referrers(client, layout.digest)
    assert sorted(r.predicate_type for r in referrers) == sorted(
        [attest.SIGN_PREDICATE, attest.SBOM_PREDICATE, attest.EVALUATION_PREDICATE]
    )
    assert {r.artifact_type for r in referrers} == {attest.BUNDLE_MEDIA_TYPE}
    # no referrers API in distribution 2.8: the fallback tag holds the index
    raw, media_type, _ = client.client.get_manifest(fallback_tag(layout.digest))
    assert media_type == "application/vnd.oci.image.index.v1+json"
    assert len(json.loads(raw)["manifests"]) == 3
    manifest = json.loads(client.get_manifest(referrers[0].descriptor.digest))
    assert manifest["subject"]["digest"] == layout.digest
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert manifest["layers"][0]["mediaType"] == attest.BUNDLE_MEDIA_TYPE
    assert manifest["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"

    code, out, err = run_cli(
        ["verify", ref, "--key", str(keys[1]), "--results", str(results)], capsys
    )
    assert code == 0, err
    assert out.splitlines()[-1].startswith(f"OK: {Reference.parse(ref).name}@{layout.digest}")
    image = plain(load(results))["image"]
    _check_image_section(image)
    assert image["digest"] == layout.digest and image["sbom"]["attached"] is True
    assert len(image["signatures"]) == 3 and all(s["verified"] for s in image["signatures"])
    assert image["verification"]["verified"] is True
    assert image["signatures"][0]["identity"].startswith("key:sha256:")
    # the evaluation attestation binds the digest and the model hash
    evaluation = next(r for r in referrers if r.predicate_type == attest.EVALUATION_PREDICATE)
    statement = attest.envelope_of(fetch_bundle(client, evaluation, layout.digest)).statement()
    assert statement["predicate"]["image"]["digest"] == layout.digest
    assert statement["predicate"]["model"]["sha256"] == layout.model_sha256
    # adding a referrer the fallback index already lists does not duplicate it
    client.put_referrer(
        client.get_manifest(evaluation.descriptor.digest), evaluation.descriptor, layout.digest
    )
    assert len(list_referrers(client, layout.digest)) == 3
    signer = KeySigner.from_file(keys[0], env={"COSIGN_PASSWORD": PASSWORD})
    assert signer.identity.key_id == image["signatures"][0]["key_id"]


def _check_image_section(image: dict) -> None:
    """The section follows schemas/sections/image.json (merged into the results schema)."""
    import jsonschema

    from mlci.results import schema

    validator = jsonschema.Draft202012Validator(
        {"$defs": schema()["$defs"], **schema()["$defs"]["Image"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    errors = [e.message for e in validator.iter_errors(image)]
    assert errors == []


def test_gate_reads_the_image_section(signed, keys, capsys) -> None:
    from mlci.gate.rules import CHECKS

    assert (
        run_cli(
            ["verify", signed["ref"], "--key", str(keys[1]), "--results", str(signed["results"])],
            capsys,
        )[0]
        == 0
    )
    document = load(signed["results"])

    class Rule:
        signed = True
        sbom = True
        verified = True
        identity = document.image.signatures[0].identity
        issuer = None

    outcome = CHECKS["supply_chain"](document, Rule())
    assert outcome.status == "pass", outcome


def test_wrong_key_is_rejected(signed, tmp_path: Path, capsys) -> None:
    _, other = generate_key_pair(tmp_path / "other", "x")
    code, out, err = run_cli(
        ["verify", signed["ref"], "--key", str(other), "--results", str(signed["results"])], capsys
    )
    assert code == 1
    assert err.count("\n") == 1 and "no valid signature" in err and "not the key given" in err
    image = plain(load(signed["results"]))["image"]
    _check_image_section(image)
    assert image["verification"]["verified"] is False
    assert not any(s["verified"] for s in image["signatures"])


def test_tampered_image_fails(signed, keys, capsys) -> None:
    """Another image pushed under the signed tag has no valid signature."""
    other = make_layout(signed["tmp"] / "other", model=b"a swapped model")
    assert run_cli(["push", str(other.path), signed["ref"], "-q"], capsys)[0] == 0
    code, _, err = run_cli(["verify", signed["ref"], "--key", str(keys[1])], capsys)
    assert code == 1 and f"no valid signature for {other.digest[:19]}" in err
    pinned = f"{Reference.parse(signed['ref']).name}@{signed['layout'].digest}"
    assert run_cli(["verify", pinned, "--key", str(keys[1])], capsys)[0] == 0


def _replace_referrer(client: RegistryStore, digest: str, predicate: str, change) -> None:
    """Swap one attestation for a modified copy (what an attacker with push access can do)."""
    referrer = next(r for r in list_referrers(client, digest) if r.predicate_type == predicate)
    bundle = fetch_bundle(client, referrer, digest)
    change(bundle)
    subject = client.resolve()
    attach_bundle(client, subject, bundle)
    index = json.loads(client.client.get_manifest(fallback_tag(digest))[0])
    index["manifests"] = [
        m for m in index["manifests"] if m["digest"] != referrer.descriptor.digest
    ]
    from mlci.supply.oci import canonical_json

    client.client.put_manifest(
        canonical_json(index), "application/vnd.oci.image.index.v1+json", fallback_tag(digest)
    )


def _edit_payload(edit):
    def change(bundle: dict) -> None:
        envelope = bundle["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"]))
        edit(statement)
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    return change


def test_tampered_sbom_fails(signed, keys, capsys) -> None:
    client = RegistryStore.open(Reference.parse(signed["ref"]))

    def drop_libc(statement: dict) -> None:
        statement["predicate"]["components"] = [
            c for c in statement["predicate"]["components"] if c["name"] != "libc6"
        ]

    _replace_referrer(
        client, signed["layout"].digest, attest.SBOM_PREDICATE, _edit_payload(drop_libc)
    )
    code, _, err = run_cli(["verify", signed["ref"], "--key", str(keys[1])], capsys)
    assert code == 1 and "no valid SBOM attestation" in err and "does not verify" in err
    code, _, err = run_cli(
        ["verify", signed["ref"], "--key", str(keys[1]), "--require", "signature,evaluation"],
        capsys,
    )
    assert code == 0, err


def test_tampered_evaluation_fails(signed, keys, capsys) -> None:
    client = RegistryStore.open(Reference.parse(signed["ref"]))

    def promote(statement: dict) -> None:
        statement["predicate"]["gate"]["decision"] = "promote"

    _replace_referrer(
        client, signed["layout"].digest, attest.EVALUATION_PREDICATE, _edit_payload(promote)
    )
    code, _, err = run_cli(["verify", signed["ref"], "--key", str(keys[1])], capsys)
    assert code == 1 and "no valid evaluation attestation" in err


def test_attestation_for_another_image_is_rejected(signed, keys, capsys) -> None:
    """A validly signed attestation copied from another image does not name this digest."""
    client = RegistryStore.open(Reference.parse(signed["ref"]))
    digest = signed["layout"].digest
    other = make_layout(signed["tmp"] / "other", model=b"other image")
    other_ref = Reference.parse(signed["ref"]).name + ":other"
    assert run_cli(["push", str(other.path), other_ref, "-q"], capsys)[0] == 0
    other_client = RegistryStore.open(Reference.parse(other_ref))
    for referrer in list_referrers(client, digest):
        attach_bundle(other_client, other_client.resolve(), fetch_bundle(client, referrer, digest))
    outcome = verify_image(other_client, Policy(public_key=keys[1]))
    assert not outcome.ok
    assert all("not " + other.digest[:19] in (f.reason or "") for f in outcome.findings)


def test_sbom_of_another_image_cannot_be_attached(signed, keys, capsys) -> None:
    other = make_layout(signed["tmp"] / "other", model=b"different")
    sbom = signed["tmp"] / "other-sbom.json"
    assert run_cli(["sbom", str(other.path), "-o", str(sbom)], capsys)[0] == 0
    code, _, err = run_cli(
        ["sign", signed["ref"], "--key", str(keys[0]), "--sbom", str(sbom)], capsys
    )
    assert code == 2 and "describes image" in err


def test_missing_policy_and_missing_attestations(registry, keys, tmp_path: Path, capsys) -> None:
    layout = make_layout(tmp_path / "layout", model=b"unsigned")
    ref = registry.ref("team/unsigned", "v1")
    assert run_cli(["push", str(layout.path), ref, "-q"], capsys)[0] == 0
    code, _, err = run_cli(["verify", ref], capsys)
    assert code == 2 and "no verification policy" in err
    code, _, err = run_cli(["verify", ref, "--key", str(keys[1])], capsys)
    assert code == 1 and "no valid signature" in err and err.count("\n") == 1
    code, _, err = run_cli(["verify", ref, "--key", str(keys[1]), "--require", "bogus"], capsys)
    assert code == 2 and "unknown kind" in err


# --- keyless: the real GitHub Actions bundle ---------------------------------------------------


def test_keyless_bundle_from_github_actions_verifies(capsys) -> None:
    wheel = FIXTURES / WHEEL
    code, out, err = run_cli(
        [
            "verify",
            str(wheel),
            "--certificate-identity",
            GITHUB_IDENTITY,
            "--certificate-oidc-issuer",
            GITHUB_ISSUER,
        ],
        capsys,
    )
    assert code == 0, err
    assert out.strip() == f"OK: {wheel} is signed by {GITHUB_IDENTITY} ({GITHUB_ISSUER})"


@pytest.mark.parametrize(
    ("identity", "issuer", "message"),
    [
        (GITHUB_IDENTITY.replace("v0.1.2", "v0.1.3"), GITHUB_ISSUER, "SANs do not match"),
        (GITHUB_IDENTITY, "https://accounts.google.com", "OIDCIssuer does not match"),
    ],
)
def test_keyless_bundle_rejects_another_identity(
    identity: str, issuer: str, message: str, capsys
) -> None:
    code, _, err = run_cli(
        [
            "verify",
            str(FIXTURES / WHEEL),
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            issuer,
        ],
        capsys,
    )
    assert code == 1 and message in err and err.count("\n") == 1


def test_keyless_bundle_rejects_a_changed_artifact(tmp_path: Path) -> None:
    changed = tmp_path / WHEEL
    data = bytearray((FIXTURES / WHEEL).read_bytes())
    data[-1] ^= 0xFF
    changed.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="sha256 differs from the signed digest"):
        verify_file(
            changed,
            FIXTURES / f"{WHEEL}.sigstore.json",
            Policy(identity=GITHUB_IDENTITY, issuer=GITHUB_ISSUER),
        )


def test_keyless_bundle_with_a_key_policy_is_rejected(tmp_path: Path, keys) -> None:
    shutil.copy(FIXTURES / WHEEL, tmp_path / WHEEL)
    with pytest.raises(VerificationError, match="signed keylessly .*not with a key"):
        verify_file(
            tmp_path / WHEEL, FIXTURES / f"{WHEEL}.sigstore.json", Policy(public_key=keys[1])
        )


def test_missing_bundle_is_a_usage_problem(tmp_path: Path, capsys) -> None:
    (tmp_path / "f").write_bytes(b"x")
    code, _, err = run_cli(
        [
            "verify",
            str(tmp_path / "f"),
            "--certificate-identity",
            "a",
            "--certificate-oidc-issuer",
            "b",
        ],
        capsys,
    )
    assert code == 2 and "no such bundle" in err


def test_annotations_match_statement(signed) -> None:
    client = RegistryStore.open(Reference.parse(signed["ref"]))
    for referrer in list_referrers(client, signed["layout"].digest):
        bundle = fetch_bundle(client, referrer, signed["layout"].digest)
        statement = attest.envelope_of(bundle).statement()
        assert referrer.descriptor.annotations[ANNOTATION_PREDICATE] == statement["predicateType"]
