"""The mlci pytest plugin (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlci")
    group.addoption(
        "--mlci-config",
        action="store",
        default=None,
        metavar="PATH",
        help="mlci.yaml whose models, data and slices the mlci fixtures provide",
    )
