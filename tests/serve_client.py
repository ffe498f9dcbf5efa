"""Helpers for the inference server's tests: requests for the generated project's model, a
plain HTTP call, and raw socket exchanges read to the end and split into responses."""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from project import FEATURES

SHUT = "shut"  # in an exchange's parts: half-close the client's side here


def request_for(frame: dict[str, np.ndarray], nested: bool = False) -> dict[str, Any]:
    """An OIP JSON request for the generated project's model (FP32 columns, BYTES region)."""
    inputs = []
    for name in FEATURES:
        column = frame[name]
        n = len(column)
        if name == "region":
            values: list[Any] = [str(v) for v in column]
            datatype = "BYTES"
        else:
            values = [float(v) for v in column]
            datatype = "FP32"
        data: list[Any] = [[v] for v in values] if nested else values
        inputs.append({"name": name, "datatype": datatype, "shape": [n, 1], "data": data})
    return {"id": "req-1", "inputs": inputs}


def call(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """One request on a fresh connection: status, body (JSON decoded when JSON), headers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers=headers or {})
    response = conn.getresponse()
    payload = response.read()
    got = {k.lower(): v for k, v in response.getheaders()}
    conn.close()
    if got.get("content-type", "").startswith("application/json"):
        return response.status, json.loads(payload), got
    return response.status, payload.decode(), got


@dataclass
class Response:
    """One HTTP response read off the wire."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Exchange:
    """Everything a connection received: responses, bytes that were not a response, and
    whether the server closed the connection."""

    responses: list[Response] = field(default_factory=list)
    leftover: bytes = b""
    closed: bool = False

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.responses]


def split_responses(raw: bytes) -> tuple[list[Response], bytes]:
    """Responses framed by Content-Length (mlci.serve always sends it); the rest is left."""
    responses = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"HTTP/1.1 "):
            break
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            break
        size = int(headers["content-length"])
        if len(rest) < size:
            break
        responses.append(Response(int(lines[0].split()[1]), headers, rest[:size]))
        raw = rest[size:]
    return responses, raw


def exchange(port: int, parts: list[bytes | float | str], idle: float = 0.6) -> Exchange:
    """Send ``parts`` (bytes; a float: pause that many seconds; ``SHUT``: half-close), then
    read until the server closes the connection or stays silent for ``idle`` seconds."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    received = b""
    closed = False
    try:
        for part in parts:
            if isinstance(part, float):
                time.sleep(part)
            elif part == SHUT:
                sock.shutdown(socket.SHUT_WR)
            else:
                assert isinstance(part, bytes)
                try:
                    sock.sendall(part)
                except OSError:  # the server closed early; what it answered is still read
                    break
        sock.settimeout(idle)
        while True:
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
    finally:
        sock.close()
    responses, leftover = split_responses(received)
    return Exchange(responses, leftover, closed)


def post(path: str, body: bytes, *headers: str, version: str = "1.1") -> bytes:
    """A raw POST with a Content-Length."""
    lines = [f"POST {path} HTTP/{version}", "Host: test", *headers, f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def get(path: str, *headers: str, version: str = "1.1") -> bytes:
    """A raw GET."""
    return (
        "\r\n".join([f"GET {path} HTTP/{version}", "Host: test", *headers]) + "\r\n\r\n"
    ).encode()


def inputs_for(client: Any, frame: dict[str, np.ndarray], binary: bool | None) -> list[Any]:
    """tritonclient inputs for the project's model, built from the server's metadata;
    ``binary=None`` keeps tritonclient's default (the binary tensor data extension)."""
    import tritonclient.http as triton

    built = []
    for spec in client.get_model_metadata("demo")["inputs"]:
        column = frame[spec["name"]].reshape(-1, 1)
        array = column.astype(object if spec["datatype"] == "BYTES" else np.float32)
        tensor = triton.InferInput(spec["name"], list(array.shape), spec["datatype"])
        if binary is None:
            tensor.set_data_from_numpy(array)
        else:
            tensor.set_data_from_numpy(array, binary_data=binary)
        built.append(tensor)
    return built


def check(result: Any, want: Any) -> None:
    """A tritonclient result holds the predictions ``want`` (OnnxModel's)."""
    np.testing.assert_array_equal(result.as_numpy("label"), want.labels)
    np.testing.assert_allclose(result.as_numpy("probabilities"), want.proba, rtol=0, atol=1e-6)
