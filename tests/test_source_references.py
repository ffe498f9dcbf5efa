"""Model source strings, their checks when mlci.yaml is loaded, and pointer files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from services_sources import init_repo

from mlci.commands import main
from mlci.config import load_config
from mlci.errors import ConfigError
from mlci.sources import reference as refs
from mlci.sources.pointers import parse_dvc_file, parse_lfs_pointer

HEX = "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models/m.onnx", refs.LocalSource("models/m.onnx")),
        ("/abs/m.onnx", refs.LocalSource("/abs/m.onnx")),
        ("git:main:models/m.onnx", refs.GitSource("main", "models/m.onnx")),
        ("git:v1.2/rc:m.onnx", refs.GitSource("v1.2/rc", "m.onnx")),
        (
            "git:4b825dc642cb6eb9a060e54bf8d69288fbee4904:m.onnx",
            refs.GitSource("4b825dc642cb6eb9a060e54bf8d69288fbee4904", "m.onnx"),
        ),
        ("base-branch", refs.BaseBranchSource()),
        ("oci://ghcr.io/org/credit:prod", refs.OciSource("ghcr.io/org/credit", tag="prod")),
        ("oci://127.0.0.1:5000/m/credit:v1", refs.OciSource("127.0.0.1:5000/m/credit", tag="v1")),
        (
            f"oci://ghcr.io/org/credit@sha256:{HEX}",
            refs.OciSource("ghcr.io/org/credit", digest=f"sha256:{HEX}"),
        ),
        ("models:/credit@champion", refs.MlflowSource("credit", alias="champion")),
        ("models:/credit/7", refs.MlflowSource("credit", version="7")),
        ("models:/cat.schema.credit@prod", refs.MlflowSource("cat.schema.credit", alias="prod")),
        (
            f"https://models.example.com/m.onnx#sha256={HEX}",
            refs.HttpsSource("https://models.example.com/m.onnx", HEX),
        ),
    ],
)
def test_sources_parse(text: str, expected: refs.SourceRef) -> None:
    parsed = refs.parse_source(text)
    assert parsed == expected
    if not isinstance(parsed, refs.LocalSource):
        assert refs.parse_source(str(parsed)) == parsed  # the printed form reads back


def test_https_pin_may_be_a_separate_key() -> None:
    parsed = refs.parse_source("https://h.example/m.onnx?v=2", f"sha256:{HEX}")
    assert parsed == refs.HttpsSource("https://h.example/m.onnx?v=2", HEX)


@pytest.mark.parametrize(
    ("text", "sha", "message"),
    [
        ("http://h.example/m.onnx#sha256=" + HEX, None, "plain http is refused"),
        ("s3://bucket/m.onnx", None, "unknown scheme 's3:'"),
        ("git:main", None, "write git:REF:PATH"),
        ("git:main:../outside.onnx", None, "without '..'"),
        ("git:ma..in:m.onnx", None, "not a valid git ref"),
        ("oci://ghcr.io/org/credit", None, "give a tag"),
        ("oci://credit:prod", None, "name the registry host"),
        ("oci://ghcr.io/org/Credit:prod", None, "not an image reference"),
        ("models:/credit", None, "models:/NAME@ALIAS or models:/NAME/VERSION"),
        ("models:/credit/Production", None, "stages such as /Production"),
        ("https://h.example/m.onnx", None, "must be pinned"),
        ("https://h.example/m.onnx#md5=abc", None, "#sha256=HEX"),
        ("https://h.example/m.onnx#sha256=" + HEX, "cd" * 32, "differ"),
        ("https://h.example/m.onnx#sha256=xyz", None, "not a sha256"),
    ],
)
def test_bad_sources_say_what_is_wrong(text: str, sha: str | None, message: str) -> None:
    with pytest.raises(
        refs.SourceSyntaxError, match=message.replace("(", r"\(").replace("?", r"\?")
    ):
        refs.parse_source(text, sha)


BASE = """\
version: 1
data:
  path: eval.csv
  target: y
models:
  - name: m
"""


def write_config(tmp_path: Path, model: str) -> Path:
    (tmp_path / "eval.csv").write_text("x,y\n1,2\n")
    path = tmp_path / "mlci.yaml"
    path.write_text(BASE + model)
    return path


@pytest.mark.parametrize(
    ("model", "where", "message"),
    [
        ('    source: "http://h.example/m.onnx"\n', ":7:5: models[0].source:", "plain http"),
        ('    source: "oci://ghcr.io/org/m"\n', ":7:5: models[0].source:", "give a tag"),
        ('    source: "https://h.example/m.onnx"\n', ":6:5: models[0]:", "must be pinned"),
        (
            '    path: m.onnx\n    baseline:\n      source: "git:main"\n',
            ":9:7: models[0].baseline.source:",
            "git:REF:PATH",
        ),
        ("    source: base-branch\n", ":6:5: models[0]:", "is for baselines"),
        (
            '    entrypoint: "pkg:make"\n    baseline:\n      source: base-branch\n',
            ":6:5: models[0]:",
            "give the candidate as a local 'path'",
        ),
        ("    path: m.onnx\n    source: m.onnx\n", ":6:5: models[0]:", "only one"),
        ('    path: m.onnx\n    sha256: "12"\n', ":8:5: models[0].sha256:", "should match pattern"),
        (
            "    path: m.onnx\n    verify:\n      identity: someone\n",
            ":8:5: models[0].verify:",
            "give 'key', or both 'identity' and 'issuer'",
        ),
    ],
)
def test_config_rejects_bad_sources_where_they_are(
    tmp_path: Path, model: str, where: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, model)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    line = info.value.diagnostics()
    assert f"{path}{where}" in line and message in line, line
    # the command line says it in one line and exits 2, writing nothing
    assert main(["check", "-c", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "out").exists()


def test_config_accepts_every_scheme(tmp_path: Path) -> None:
    models = (
        '    source: "git:main:models/m.onnx"\n'
        "    baseline:\n"
        f'      source: "oci://ghcr.io/org/m@sha256:{HEX}"\n'
        "  - name: b\n"
        "    path: m.onnx\n"
        "    baseline: {source: base-branch, verify: {key: cosign.pub}}\n"
        "  - name: c\n"
        '    source: "models:/credit@champion"\n'
        "    baseline:\n"
        '      source: "https://h.example/m.onnx"\n'
        f"      sha256: {HEX}\n"
    )
    config = load_config(write_config(tmp_path, models)).config
    assert [m.source for m in config.models] == [
        "git:main:models/m.onnx",
        None,
        "models:/credit@champion",
    ]
    baseline = config.models[1].baseline
    assert baseline is not None and baseline.verify is not None
    assert baseline.verify.key == tmp_path / "cosign.pub"  # relative to mlci.yaml


# --- Git LFS pointers: our parser against git-lfs itself ------------------------------------------

VALID = f"version https://git-lfs.github.com/spec/v1\noid sha256:{HEX}\nsize 12345\n"


def git_lfs_accepts(tmp_path: Path, data: bytes) -> bool:
    path = tmp_path / "pointer"
    path.write_bytes(data)
    done = subprocess.run(
        ["git", "lfs", "pointer", "--check", "--file", str(path)], capture_output=True
    )
    assert done.returncode in (0, 1, 2), done.stderr
    return done.returncode == 0


LINES = st.sampled_from(
    [
        "version https://git-lfs.github.com/spec/v1",
        "version https://hawser.github.com/spec/v1",
        "version http://git-media.io/v/2",
        "version https://example.com/v1",
        "version  https://git-lfs.github.com/spec/v1",
        f"oid sha256:{HEX}",
        f"oid sha256:{HEX.upper()}",
        f"oid sha256:{HEX[:-1]}",
        f"oid sha1:{HEX}",
        f"oid  sha256:{HEX}",
        "size 12345",
        "size 0",
        "size -1",
        "size +7",
        "size 12a",
        "size",
        f"ext-0-foo sha256:{HEX}",
        f"ext-1-bar sha256:{HEX}",
        "ext-1-bar sha256:nothex",
        f"ext-x-foo sha256:{HEX}",
        "",
        "   ",
        "# comment",
    ]
)
ENDINGS = st.sampled_from(["\n", "\r\n"])


def pointer_text(lines: list[str], ending: str, trailing: str, leading: str) -> bytes:
    return (leading + ending.join(lines) + trailing).encode()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.one_of(
        st.lists(LINES, min_size=1, max_size=6),
        st.permutations(
            ["version https://git-lfs.github.com/spec/v1", f"oid sha256:{HEX}", "size 9"]
        ),
    ),
    ending=ENDINGS,
    trailing=st.sampled_from(["", "\n", "\n\n", " "]),
    leading=st.sampled_from(["", " ", "\n"]),
)
def test_lfs_pointer_parser_agrees_with_git_lfs(
    tmp_path: Path, lines: list[str], ending: str, trailing: str, leading: str
) -> None:
    data = pointer_text(lines, ending, trailing, leading)
    if not data.strip():
        return  # git-lfs reads an empty file as the empty pointer; it is no model either way
    ours = parse_lfs_pointer(data) is not None
    assert ours == git_lfs_accepts(tmp_path, data), data


def test_canonical_pointer_is_recognised(tmp_path: Path) -> None:
    init_repo(tmp_path / "repo")  # fails the test when git or git-lfs is missing
    assert git_lfs_accepts(tmp_path, VALID.encode())
    assert parse_lfs_pointer(VALID.encode()) is not None


def test_lfs_pointer_fields() -> None:
    pointer = parse_lfs_pointer(VALID.encode())
    assert pointer is not None and pointer.oid == HEX and pointer.size == 12345
    assert parse_lfs_pointer(b"\x00" * 100) is None
    assert parse_lfs_pointer(VALID.encode() + b"x" * 1100) is None  # too big to be a pointer


def test_dvc_file_names_its_output_by_md5() -> None:
    text = (
        "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 9\n  hash: md5\n  path: m.onnx\n"
    )
    pointer = parse_dvc_file(text, "m.onnx")
    assert pointer is not None and pointer.md5 == "0123456789abcdef0123456789abcdef"
    assert pointer.size == 9
    assert parse_dvc_file(text, "other.onnx") is None
    assert parse_dvc_file(text.replace("cdef\n", "cdef.dir\n", 1), "m.onnx") is None
    assert parse_dvc_file("not: [yaml", "m.onnx") is None
