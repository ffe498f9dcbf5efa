"""Malformed and hostile requests over raw sockets.

Every case is sent on its own connection and the socket is read until the server closes it
or stays silent: each request must get exactly one answer, a 4xx with a one-line JSON error
(a pipelined request after it gets its own answer, or none when the connection closes),
nothing else may arrive, and the connection closes when the server cannot tell where the
request ends. The cases run concurrently while health checks keep being answered.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from serve_client import SHUT, Exchange, call, exchange, get, post, request_for

from mlci.serve import InferenceServer, ModelRunner, ServeOptions
from project import Project, make_frame

INFER = "/v2/models/demo/infer"
TIMEOUT = 1.5  # the server's whole-request deadline in these tests
MAX_BODY = 1 << 20
HEALTH = get("/v2/health/live")


@dataclass(frozen=True)
class Case:
    """Bytes to send, the statuses expected in order, and whether the server closes."""

    parts: list[bytes | float | str]
    statuses: list[int]
    closed: bool | None  # None: either is right
    words: str = ""  # in the first error message


def good() -> dict[str, Any]:
    return request_for(make_frame(2, seed=3))


def altered(change: Callable[[dict[str, Any]], object]) -> bytes:
    body = good()
    change(body)
    return json.dumps(body).encode()


def age(body: dict[str, Any]) -> dict[str, Any]:
    return body["inputs"][0]  # type: ignore[no-any-return]


def replace_age(text: bytes) -> bytes:
    """The good request with the first age value replaced by ``text`` verbatim."""
    body = good()
    age(body)["data"] = ["AGE", 1.0]
    return json.dumps(body).encode().replace(b'"AGE"', text)


def binary(sizes: dict[str, int], blob: bytes, header: str | None = "auto") -> bytes:
    """A binary-extension request: age and tenure binary (sizes as declared), the rest JSON."""
    body = good()
    for tensor in body["inputs"]:
        if tensor["name"] in sizes:
            del tensor["data"]
            tensor["parameters"] = {"binary_data_size": sizes[tensor["name"]]}
    document = json.dumps(body).encode()
    value = str(len(document)) if header == "auto" else header
    extra = [f"Inference-Header-Content-Length: {value}"] if value is not None else []
    return post(INFER, document + blob, *extra)


FP32_2 = struct.pack("<2f", 30.0, 40.0)


def trickle(piece: bytes) -> list[bytes | float | str]:
    """``piece`` six times, 0.4 s apart: 2.4 s, past the deadline."""
    parts: list[bytes | float | str] = []
    for _ in range(6):
        parts += [0.4, piece]
    return parts


def cases() -> dict[str, Case]:
    def json_case(body: bytes, words: str) -> Case:
        return Case([post(INFER, body)], [400], False, words)

    deep = b"[" * 100_000 + b"]" * 100_000
    return {
        # ---- JSON bodies
        "not json": json_case(b"{inputs: nope", "cannot read the request as JSON"),
        "NaN literal": json_case(replace_age(b"NaN"), "cannot read the request as JSON"),
        "Infinity literal": json_case(replace_age(b"Infinity"), "cannot read the request"),
        "1e400 for FP32": json_case(replace_age(b"1e400"), "cannot read the request as JSON"),
        "1e39 for FP32": json_case(replace_age(b"1e39"), "1e+39 is out of range"),
        "-3.5e38 for FP32": json_case(replace_age(b"-3.5e38"), "is out of range"),
        "huge integer": json_case(replace_age(b"9" * 5000), "cannot read the request as JSON"),
        "nested 100000 deep": json_case(deep, "cannot read the request as JSON"),
        "data nested deeper than shape": json_case(
            altered(lambda b: age(b).update(data=[[[[1.0]]], [[[2.0]]]])), "nested deeper"
        ),
        "data nested unevenly": json_case(
            altered(lambda b: age(b).update(data=[[1.0], 2.0])), "does not match shape"
        ),
        "invalid UTF-8": json_case(b'{"inputs": "\xff\xfe"}', "cannot read the request"),
        "top-level array": json_case(b"[1, 2]", "JSON object"),
        "empty body": json_case(b"", "has no body"),
        "no inputs": json_case(b'{"inputs": []}', "non-empty list"),
        "id not a string": json_case(altered(lambda b: b.update(id=5)), "'id' must be a string"),
        "unknown input": json_case(
            altered(lambda b: age(b).update(name="agee")), "unknown input 'agee'"
        ),
        "missing input": json_case(altered(lambda b: b["inputs"].pop(0)), "missing input(s) 'age'"),
        "duplicate input": json_case(
            altered(lambda b: b["inputs"].append(dict(age(b)))), "given twice"
        ),
        "wrong datatype": json_case(
            altered(lambda b: age(b).update(datatype="INT64")), "expects FP32"
        ),
        "wrong rank": json_case(altered(lambda b: age(b).update(shape=[2])), "expects [-1, 1]"),
        "wrong dimension": json_case(
            altered(lambda b: age(b).update(shape=[1, 2])), "expects [-1, 1]"
        ),
        "negative dimension": json_case(
            altered(lambda b: age(b).update(shape=[-2, 1])), "non-negative integers"
        ),
        "value count": json_case(
            altered(lambda b: age(b).update(data=[1.0, 2.0, 3.0])), "shape [2, 1] needs 2"
        ),
        "text for FP32": json_case(
            altered(lambda b: age(b).update(data=[1.0, "x"])), "'x' is not a number"
        ),
        "bool for FP32": json_case(
            altered(lambda b: age(b).update(data=[True, 1.0])), "True is not a number"
        ),
        "number for BYTES": json_case(
            altered(lambda b: b["inputs"][2].update(data=[1, 2])), "must be a string"
        ),
        "unknown output": json_case(
            altered(lambda b: b.update(outputs=[{"name": "scores"}])), "unknown output 'scores'"
        ),
        "class_count on a label": json_case(
            altered(
                lambda b: b.update(outputs=[{"name": "label", "parameters": {"classification": 2}}])
            ),
            "'label' cannot be classified",
        ),
        "negative class_count": json_case(
            altered(
                lambda b: b.update(
                    outputs=[{"name": "probabilities", "parameters": {"classification": -1}}]
                )
            ),
            "non-negative integer",
        ),
        "unknown output parameter": json_case(
            altered(
                lambda b: b.update(outputs=[{"name": "label", "parameters": {"class_count": 2}}])
            ),
            "unsupported parameter 'class_count'",
        ),
        "shared memory": json_case(
            altered(lambda b: age(b).update(parameters={"shared_memory_region": "r"})),
            "shared memory is not supported",
        ),
        # ---- the binary tensor data extension
        "binary header beyond the body": Case(
            [binary({"age": 8}, FP32_2, header="99999")], [400], False, "has only"
        ),
        "binary header negative": Case(
            [binary({"age": 8}, FP32_2, header="-1")], [400], False, "non-negative integer"
        ),
        "binary header not a number": Case(
            [binary({"age": 8}, FP32_2, header="abc")], [400], False, "non-negative integer"
        ),
        "binary size wrong for shape": Case(
            [binary({"age": 12}, FP32_2 + b"\0" * 4)], [400], False, "needs 8"
        ),
        "binary size beyond the data": Case(
            [binary({"age": 16}, FP32_2)], [400], False, "only 8 remain"
        ),
        "binary bytes no input declares": Case(
            [binary({"age": 8}, FP32_2 + b"\0" * 3)], [400], False, "3 bytes of binary data"
        ),
        "binary data without the header": Case(
            [binary({"age": 8}, FP32_2, header=None)], [400], False, "needs an Inference-Header"
        ),
        "binary size declared, no binary data": Case(
            [binary({"age": 8}, b"", header=None)], [400], False, "no Inference-Header"
        ),
        "binary NaN for FP32": Case(
            [binary({"age": 8}, struct.pack("<2f", float("nan"), 1.0))],
            [400],
            False,
            "not a finite number",
        ),
        "binary strings cut short": Case(
            [
                binary(
                    {"age": 8, "region": 9},
                    FP32_2 + struct.pack("<I", 5) + b"north" + b"\0",
                )
            ],
            [400],
            False,
            "length-prefixed strings",
        ),
        # ---- routing
        "unknown model": Case([post("/v2/models/other/infer", b"{}")], [404], False, "'other'"),
        "wrong version": Case(
            [post("/v2/models/demo/versions/7/infer", b"{}")], [404], False, "no version '7'"
        ),
        "GET on infer": Case([get(INFER)], [405], False, "use POST"),
        "POST on health": Case([post("/v2/health/live", b"{}")], [405], False, "not allowed"),
        "unknown path": Case([get("/v3/nowhere")], [404], False, "no such endpoint"),
        # ---- framing: bodies are consumed or the connection closes
        "404 with a body, then a request": Case(
            [post("/nowhere", get("/metrics")) + HEALTH], [404, 200], False, "no such endpoint"
        ),
        "405 with a body, then a request": Case(
            [post("/v2/health/ready", get("/metrics")) + HEALTH], [405, 200], False
        ),
        "400 then a pipelined request": Case(
            [post(INFER, b"{bad") + HEALTH], [400, 200], False, "cannot read the request"
        ),
        "bytes after the body that are no request": Case(
            [post(INFER, b'{"inputs": []}') + b"GARBAGE / HTTP/1.1\r\n\r\n"],
            [400],
            True,
            "non-empty list",
        ),
        "413 then a request": Case(
            [post(INFER, b"x" * (MAX_BODY + 1)) + HEALTH], [413], True, "over 1048576 bytes"
        ),
        "413 declared, body never sent": Case(
            [
                b"POST "
                + INFER.encode()
                + b" HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\n"
            ],
            [413],
            True,
        ),
        "413 chunked": Case(
            [
                b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked"
                b"\r\n\r\n" + (b"10000\r\n" + b"x" * 0x10000 + b"\r\n") * 17 + b"0\r\n\r\n" + HEALTH
            ],
            [413],
            True,
        ),
        "Content-Length and chunked": Case(
            [
                b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HEALTH
            ],
            [400],
            True,
            "invalid HTTP request",
        ),
        "two Content-Lengths": Case(
            [
                b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                b"Content-Length: 6\r\n\r\nabcdef" + HEALTH
            ],
            [400],
            True,
        ),
        "negative Content-Length": Case(
            [b"POST " + INFER.encode() + b" HTTP/1.1\r\nContent-Length: -5\r\n\r\n" + HEALTH],
            [400],
            True,
        ),
        "Content-Length not a number": Case(
            [b"POST " + INFER.encode() + b" HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n" + HEALTH],
            [400],
            True,
        ),
        "bad chunk size": Case(
            [
                b"POST " + INFER.encode() + b" HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"zz\r\nabc\r\n0\r\n\r\n" + HEALTH
            ],
            [400],
            True,
        ),
        "no Content-Length on POST": Case(
            [b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n" + HEALTH],
            [400, 200],
            False,
            "has no body",
        ),
        "expect 100-continue to a wrong path": Case(
            [
                b"POST /nowhere HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                b"Content-Length: 10\r\n\r\n"
            ],
            [404],
            True,
        ),
        "client half-closes mid-body": Case(
            [post(INFER, json.dumps(good()).encode())[:-20], SHUT], [400], True, "closed its side"
        ),
        "HTTP/1.0 bad request": Case(
            [post(INFER, b"{bad", version="1.0")], [400], True, "cannot read the request"
        ),
        "HTTP/1.0 keep-alive, bad request": Case(
            [post(INFER, b"{bad", "Connection: keep-alive", version="1.0")], [400], True
        ),
        "HTTP/1.0 without Host to a wrong path": Case(
            [b"GET /nowhere HTTP/1.0\r\n\r\n"], [404], True
        ),
        "TLS handshake bytes": Case([b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"], [400], True),
        "bad method characters": Case([b"G(T / HTTP/1.1\r\n\r\n"], [400], True),
        "header line of 100 kB": Case(
            [get("/v2/health/live", "X-A: " + "a" * 100_000)], [431], True
        ),
        "5000 headers": Case(
            [get("/v2/health/live", *["X-A: 123456789012345"] * 5000)], [431], True
        ),
        "request line of 100 kB": Case([get("/v2/" + "a" * 100_000)], [431], True),
        # ---- slow clients: the whole-request deadline
        "slow headers": Case(
            [b"GET /v2/hea", *trickle(b"l")], [408], True, "not received within 1.5 s"
        ),
        "slow body, 1 byte at a time": Case(
            [
                b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n",
                *trickle(b"{"),
            ],
            [408],
            True,
            "not received within 1.5 s",
        ),
        "line breaks, never a request": Case(trickle(b"\r\n"), [408], True),
    }


@pytest.fixture(scope="module")
def server(built_project: Project) -> Iterator[InferenceServer]:
    runner = ModelRunner(built_project.root / "models" / "candidate.onnx", "demo")
    options = ServeOptions(
        host="127.0.0.1", port=0, max_body_bytes=MAX_BODY, request_timeout=TIMEOUT
    )
    with InferenceServer(runner, options).running() as srv:
        yield srv


def check(name: str, case: Case, got: Exchange) -> None:
    where = f"{name}: {got}"
    assert got.statuses == case.statuses, where
    assert got.leftover == b"", where  # nothing but whole responses
    if case.closed is not None:
        assert got.closed == case.closed, where
    for response in got.responses:
        if response.status >= 400:
            error = response.json()["error"]
            assert isinstance(error, str) and "\n" not in error and "Traceback" not in error
            assert response.headers["content-type"] == "application/json"
    if case.words:
        assert case.words in got.responses[0].json()["error"], where


def test_corpus_is_large_enough() -> None:
    assert len(cases()) >= 60


def test_malformed_requests_get_one_4xx_each_while_health_checks_answer(
    server: InferenceServer,
) -> None:
    corpus = cases()
    health: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            health.append(call(server.port, "GET", "/v2/health/ready")[0])
            time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            results = dict(
                zip(
                    corpus,
                    pool.map(lambda c: exchange(server.port, c.parts), corpus.values()),
                    strict=True,
                )
            )
    finally:
        stop.set()
        poller.join()
    for name, case in corpus.items():
        check(name, case, results[name])
    assert len(health) >= 10 and set(health) == {200}
    # And the server still serves.
    status, body, _ = call(server.port, "POST", INFER, good())
    assert status == 200, body


def test_a_chunked_request_then_a_pipelined_one(server: InferenceServer) -> None:
    body = json.dumps(good()).encode()
    chunked = (
        b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % 10 + body[:10] + b"\r\n"
        + b"%x\r\n" % (len(body) - 10) + body[10:] + b"\r\n0\r\n\r\n"
    )  # fmt: skip
    got = exchange(server.port, [chunked + HEALTH])
    assert got.statuses == [200, 200] and got.leftover == b"" and not got.closed
    assert got.responses[0].json()["outputs"][0]["shape"] == [2]


def test_http_1_0_gets_its_answer_and_the_connection_closes(server: InferenceServer) -> None:
    for extra in ((), ("Connection: keep-alive",)):
        got = exchange(server.port, [get("/v2/health/live", *extra, version="1.0")], idle=5)
        assert got.statuses == [200] and got.closed and got.leftover == b""
        assert got.responses[0].headers["connection"] == "close"
