"""The `tests:` section of mlci.yaml."""

from __future__ import annotations

from mlci.configbase import Strict


class TestsConfig(Strict):
    """Model tests and data checks."""
