"""A client for Prometheus's HTTP API: one instant query, one number.

``GET /api/v1/query?query=...&time=...`` answers a vector (or a scalar). A canary metric must
come down to one number per side and interval: an empty vector (or NaN, as
``histogram_quantile`` gives without traffic) is no data for that interval; several series
are a query that forgot to aggregate.
"""

from __future__ import annotations

import math
from typing import Any

from mlci.errors import MlciError


class PrometheusError(MlciError):
    """Prometheus could not be reached or answered something that is not the API."""


class QueryError(Exception):
    """Prometheus refused a query, or its answer is not one number."""


class Prometheus:
    """Instant queries against one Prometheus server."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        import requests

        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def query(self, promql: str, at: float) -> float | None:
        """The query's value at ``at`` (seconds since the epoch); None when there is none.

        QueryError when Prometheus refuses the query or it yields several series;
        PrometheusError when Prometheus cannot be reached or does not speak its API.
        """
        import requests

        try:
            response = self.session.get(
                f"{self.url}/api/v1/query",
                params={"query": promql, "time": f"{at:.3f}"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise PrometheusError(
                f"Prometheus at {self.url} cannot be reached ({exc.__class__.__name__})",
                tip="check canary.live.prometheus and that the runner can reach it",
            ) from None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise PrometheusError(
                f"{self.url}/api/v1/query answered HTTP {response.status_code} without the "
                "Prometheus API's JSON",
                tip="canary.live.prometheus must be Prometheus's base URL",
            )
        if body["status"] == "error":
            kind = body.get("errorType", "error")
            if kind in ("bad_data", "execution"):
                raise QueryError(f"Prometheus refused it ({kind}: {body.get('error', '')})")
            raise PrometheusError(
                f"Prometheus at {self.url} failed a query ({kind}: {body.get('error', '')})"
            )
        return value_of(body.get("data"))

    def close(self) -> None:
        self.session.close()


def value_of(data: Any) -> float | None:
    """The one number in a query's ``data`` (None: no series, or NaN)."""
    if not isinstance(data, dict):
        raise QueryError("the answer holds no data")
    kind, result = data.get("resultType"), data.get("result")
    sample: Any
    if kind == "scalar":
        sample = result
    elif kind == "vector" and isinstance(result, list):
        if not result:
            return None
        if len(result) > 1:
            labels = ", ".join(str(r.get("metric", {})) for r in result[:3])
            raise QueryError(
                f"it returned {len(result)} series ({labels}); aggregate them into one, for "
                "example with sum(...)"
            )
        sample = result[0].get("value")
    else:
        raise QueryError(f"it returned a {kind}; a canary metric needs one number (a vector)")
    try:
        value = float(sample[1])
    except (TypeError, ValueError, IndexError):
        raise QueryError(f"its value {sample!r} is not a number") from None
    return value if math.isfinite(value) else None
