"""Whose is it: the identity behind the token, and items (comments, issues) that are ours.

An item is mlci's own only when it carries mlci's hidden marker **and** was written by the
identity the token belongs to: anyone can paste a marker into a comment or an issue of their
own, and such an item is never edited, closed, counted or taken as current. The sticky
pull-request comment and the watch issue share this rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlci.github.client import GitHubClient
from mlci.github.errors import GitHubError, PermissionDenied

GITHUB_ACTIONS_BOT = "github-actions[bot]"


def token_identity(client: GitHubClient) -> str:
    """The login that items created with the client's token carry.

    A personal or user token may read ``GET /user``; an installation token (the workflow's
    ``GITHUB_TOKEN``, or a GitHub App's) is refused with 403, and for the workflow's token the
    author is ``github-actions[bot]``. A GitHub App posts as ``<app-slug>[bot]``: what GitHub
    answers to a create is authoritative, so callers adopt the login of what they created.
    """
    try:
        data = client.get("/user").data
    except PermissionDenied:
        return GITHUB_ACTIONS_BOT
    login = data.get("login") if isinstance(data, dict) else None
    if not login:
        raise GitHubError("GET /user: GitHub's answer names no login", tip="check the token")
    return str(login)


def login_of(item: dict[str, Any]) -> str | None:
    """The login of an item's author (``user.login``), if any."""
    user = item.get("user")
    login = user.get("login") if isinstance(user, dict) else None
    return str(login) if login else None


def marked(body: str | None, mark: str) -> bool:
    """Whether a body starts with the hidden marker line."""
    text = body or ""
    return text == mark or text.startswith(mark + "\n")


def ours(item: dict[str, Any], mark: str, author: str) -> bool:
    """Marked by mlci and written by ``author`` (logins compare case-insensitively)."""
    login = login_of(item)
    return (
        marked(item.get("body"), mark)
        and login is not None
        and login.casefold() == author.casefold()
    )


def own_items(items: Iterable[dict[str, Any]], mark: str, author: str) -> list[dict[str, Any]]:
    """Our marked items, oldest (smallest id) first."""
    return sorted((i for i in items if ours(i, mark, author)), key=lambda i: int(i["id"]))
