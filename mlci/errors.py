"""One error root for everything a user can get wrong.

The library raises; only the CLI prints and exits. Each error renders as one line that names
the file, field or value and, where there is an obvious next step, adds a tip.
"""

from __future__ import annotations


class MlciError(Exception):
    """Base of every error mlci reports to a user."""

    exit_code = 1

    def __init__(self, message: str, *, tip: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.tip = tip

    def diagnostics(self) -> str:
        """The one line shown to the user."""
        text = self.message
        if self.tip:
            text += f" (tip: {self.tip})"
        return text.replace("\n", " ")


class UsageError(MlciError):
    """Bad command-line usage."""

    exit_code = 2


class ConfigError(MlciError):
    """An invalid mlci.yaml."""

    exit_code = 2


class InputError(MlciError):
    """A model or data file that cannot be used as given."""

    exit_code = 2


class ModelError(InputError):
    """A model that cannot be loaded or run."""


class DataError(InputError):
    """A dataset that is missing, unreadable or does not fit the model."""
