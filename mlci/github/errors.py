"""Errors from talking to GitHub: each names the request and says what to do."""

from __future__ import annotations

from mlci.errors import MlciError, UsageError

FORK_TIP = (
    "a pull request from a fork gets a read-only token; post from a workflow_run workflow "
    "instead (workflows/comment-from-fork.yml)"
)


class GitHubError(MlciError):
    """A request to the GitHub API that did not succeed."""

    def __init__(
        self,
        message: str,
        *,
        tip: str | None = None,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, tip=tip)
        self.status = status
        self.method = method
        self.path = path


class AuthenticationError(GitHubError):
    """401: the token is missing, expired or wrong."""


class PermissionDenied(GitHubError):
    """403: the token may not do this."""


class NotFound(GitHubError):
    """404: no such repository, pull request or comment (or no access to it)."""


class Unprocessable(GitHubError):
    """422: GitHub understood the request and refused its content."""


class RateLimited(GitHubError):
    """The rate limit would make us wait longer than allowed."""


class Unavailable(GitHubError):
    """5xx answers or network failures that outlasted every retry."""


class UnknownOutcome(GitHubError):
    """A request that may have taken effect: the connection broke after it was sent.

    Only raised for requests that are not safe to repeat (creating a comment or a check run);
    the caller looks for the result before trying again, so nothing is posted twice.
    """


class ContextError(UsageError):
    """The GitHub context (repository, pull request, commit, token) is missing or wrong."""
