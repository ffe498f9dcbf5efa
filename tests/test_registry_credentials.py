"""Registry credentials go only where they belong.

A registry's 401 names the token service (realm) to log in to, and whoever answers for the
registry chooses it. These tests run the real registry with a token service on another
loopback host that records every Authorization header it receives, and check that mlci sends
it nothing secret unless the user lists that host.
"""

from __future__ import annotations

import pytest
from services_registry import PASSWORD, USER, make_layout, run_cli

from mlci.supply.auth import Credentials, credential_refusal, hostname, is_loopback
from mlci.supply.layout import read_image_layout
from mlci.supply.registry import (
    AuthError,
    NotFound,
    Reference,
    RegistryClient,
    push_layout,
)


@pytest.mark.parametrize(
    ("registry", "realm", "trusted", "allowed"),
    [
        ("ghcr.io", "https://ghcr.io/token", (), True),
        ("GHCR.io", "https://ghcr.io:443/token", (), True),  # host names are case-insensitive
        ("registry.example:5000", "https://registry.example/token", (), True),  # any port
        ("127.0.0.1:5000", "http://127.0.0.1:6000/token", (), True),  # plain http to loopback
        ("[::1]:5000", "http://[::1]:6000/token", (), True),
        ("localhost:5000", "http://localhost:6000/token", (), True),
        ("registry-1.docker.io", "https://auth.docker.io/token", (), True),  # Docker Hub's own
        ("docker.io", "https://auth.docker.io/token", (), True),
        ("ghcr.io", "https://evil.example/token", (), False),
        ("ghcr.io", "https://ghcr.io.evil.example/token", (), False),
        ("ghcr.io", "https://evil.example/ghcr.io/token", (), False),
        ("ghcr.io", "https://ghcr.io@evil.example/token", (), False),  # user-info trick
        ("ghcr.io", "http://ghcr.io/token", (), False),  # plain http on the network
        ("127.0.0.1:5000", "http://127.0.0.2:6000/token", (), False),  # another host
        ("registry.gitlab.com", "https://gitlab.com/jwt/auth", (), False),
        ("registry.gitlab.com", "https://gitlab.com/jwt/auth", ("gitlab.com",), True),
        ("registry.gitlab.com", "http://gitlab.com/jwt/auth", ("gitlab.com",), False),
        ("ghcr.io", "file:///etc/passwd", (), False),
        ("ghcr.io", "ftp://ghcr.io/token", (), False),
        ("ghcr.io", "https:///token", (), False),
    ],
)
def test_where_credentials_may_go(registry, realm, trusted, allowed) -> None:
    refusal = credential_refusal(registry, realm, trusted)
    assert (refusal is None) == allowed, refusal


def test_host_names_and_loopback() -> None:
    assert hostname("Registry.Example:5000") == "registry.example"
    assert hostname("[::1]:5000") == "::1" and hostname("ghcr.io") == "ghcr.io"
    assert all(is_loopback(h) for h in ("localhost", "127.0.0.1", "127.9.9.9", "::1"))
    assert not any(is_loopback(h) for h in ("10.0.0.1", "ghcr.io", "localhost.evil.example"))


def test_credentials_never_reach_a_foreign_token_service(
    foreign_realm_registry, tmp_path, monkeypatch
) -> None:
    running, attacker = foreign_realm_registry
    layout = make_layout(tmp_path / "layout")
    ref = Reference.parse(running.ref("team/foreign", "v1"))
    client = RegistryClient(ref, credentials=Credentials(USER, PASSWORD), env={})
    with pytest.raises(AuthError, match=r"does not send your credentials there: 127\.0\.0\.2"):
        push_layout(read_image_layout(layout.path), ref, client=client)
    assert attacker.received == []  # not even a request: nothing to learn from

    # Anonymous clients still get their (pull) token from it: nothing secret is sent.
    with pytest.raises(NotFound):
        RegistryClient(ref, env={}).resolve()
    assert attacker.received and all(header == "" for header in attacker.received)


def test_a_listed_token_host_gets_the_credentials(foreign_realm_registry, tmp_path) -> None:
    """The refusal above is the policy, not a broken setup: listing the host lets them through."""
    running, tokens = foreign_realm_registry
    layout = make_layout(tmp_path / "layout", model=b"listed")
    ref = Reference.parse(running.ref("team/listed", "v1"))
    env = {"MLCI_REGISTRY_AUTH_HOSTS": "127.0.0.2"}
    client = RegistryClient(ref, credentials=Credentials(USER, PASSWORD), env=env)
    assert push_layout(read_image_layout(layout.path), ref, client=client).digest == layout.digest
    assert any(h.startswith("Basic ") for h in tokens.received)


def test_foreign_realm_refusal_on_the_command_line(
    foreign_realm_registry, tmp_path, capsys, monkeypatch
) -> None:
    running, attacker = foreign_realm_registry
    before = list(attacker.received)
    layout = make_layout(tmp_path / "layout", model=b"cli")
    monkeypatch.setenv("MLCI_REGISTRY_USERNAME", USER)
    monkeypatch.setenv("MLCI_REGISTRY_PASSWORD", PASSWORD)
    monkeypatch.delenv("MLCI_REGISTRY_AUTH_HOSTS", raising=False)
    code, _, err = run_cli(["push", str(layout.path), running.ref("team/cli", "v1"), "-q"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert "MLCI_REGISTRY_AUTH_HOSTS" in err and PASSWORD not in err
    assert attacker.received == before


def test_basic_credentials_are_not_sent_over_plain_http_to_the_network() -> None:
    """A non-loopback registry reached over http (MLCI_REGISTRY_INSECURE) gets no password.

    Nothing listens at 192.0.2.1 (TEST-NET-1): the refusal happens on the 401 path, which is
    driven here by the client's own decision function before any connection is made.
    """
    ref = Reference.parse("192.0.2.1:5000/team/x:v1")
    client = RegistryClient(
        ref, credentials=Credentials(USER, PASSWORD), insecure=True, retries=0, env={}
    )

    class Answer:
        status_code = 401
        headers = {"WWW-Authenticate": 'Basic realm="registry"'}

    with pytest.raises(AuthError, match="over plain http"):
        client._authenticate(Answer(), push=False)
    assert client._authorization is None
