"""Traffic for mlci watch's tests, produced by the real serving runtime on loopback.

``serve_and_replay`` starts the inference server with traffic sampling on, replays rows as
one Open Inference Protocol request each (the row's id as the request id, as a client that
wants its labels joined later sends it) over a keep-alive connection, stops the server (which
finishes the sample file) and returns the folder of sample files.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlci.serve import InferenceServer, ModelRunner, ServeOptions
from mlci.serve.sampling import SampleOptions


def requests_for(
    columns: Mapping[str, np.ndarray], ids: Sequence[Any], inputs: Sequence[dict[str, Any]]
) -> list[bytes]:
    """JSON request bodies typed as the model's metadata says: consecutive rows with the same
    id (``ids`` has one per row) go in one request."""
    bodies = []
    start = 0
    n = len(ids)
    while start < n:
        stop = start + 1
        while stop < n and ids[stop] == ids[start]:
            stop += 1
        tensors = []
        for spec in inputs:
            values = columns[spec["name"]][start:stop]
            if spec["datatype"] == "BYTES":
                data: list[Any] = [str(v) for v in values]
            elif spec["datatype"].startswith(("INT", "UINT")):
                data = [int(v) for v in values]
            else:
                data = [float(v) for v in values]
            tensors.append(
                {"name": spec["name"], "datatype": spec["datatype"], "shape": [stop - start, 1],
                 "data": data}
            )  # fmt: skip
        bodies.append(json.dumps({"id": str(ids[start]), "inputs": tensors}).encode())
        start = stop
    return bodies


def replay(port: int, model: str, bodies: Sequence[bytes]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for body in bodies:
            conn.request("POST", f"/v2/models/{model}/infer", body=body)
            response = conn.getresponse()
            payload = response.read()
            assert response.status == 200, payload[:200]
    finally:
        conn.close()


def serve_and_replay(
    model_path: Path,
    name: str,
    batches: Sequence[tuple[Mapping[str, np.ndarray], Sequence[Any]]],
    sample_dir: Path,
    **sampling: Any,
) -> Path:
    """Serve ``model_path`` with sampling into ``sample_dir`` and replay each batch in turn."""
    runner = ModelRunner(model_path, name)
    options = ServeOptions(
        host="127.0.0.1",
        port=0,
        threads=2,
        sampling=SampleOptions(directory=sample_dir, **{"columns": None, **sampling}),
    )
    inputs = [spec.to_json() for spec in runner.inputs]
    with InferenceServer(runner, options).running() as server:
        for columns, ids in batches:
            replay(server.port, name, requests_for(columns, ids, inputs))
    return sample_dir
