"""One ONNX model behind the protocol: its metadata and a thread-safe ``infer``.

ONNX Runtime's ``InferenceSession.run`` is thread-safe and releases the GIL, so one session
serves every worker thread at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlci.serve.protocol import (
    BadRequest,
    InferenceRequest,
    TensorSpec,
    encode_response,
    parse_request,
    spec_from_ort,
)

_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")


class ModelLoadError(Exception):
    """The model file cannot be served."""


@dataclass(frozen=True)
class Inference:
    """One answered inference: the request as checked, the outputs and the response body.

    What a traffic sampler (or any observer of served predictions) would read after the
    response has gone out.
    """

    request: InferenceRequest
    outputs: tuple[np.ndarray, ...]
    body: bytes
    json_length: int | None  # set when binary output data follows the JSON

    @property
    def rows(self) -> int:
        """Rows predicted (the inputs' first dimension)."""
        return self.request.rows


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _ORT_PREFIX.sub("", text)[:200]


class ModelRunner:
    """An ONNX model served under a name and version."""

    platform = "onnxruntime_onnx"

    def __init__(
        self, path: str | Path, name: str, version: str = "1", *, intra_op_threads: int = 1
    ) -> None:
        """Open ``path`` with ONNX Runtime on the CPU; ModelLoadError when it cannot.

        ``intra_op_threads`` is ONNX Runtime's parallelism inside one request (0: its
        default, one thread per core); requests themselves run in parallel on the server's
        worker threads, so one thread each is the right default for small models.
        """
        import onnxruntime as ort

        self.path = Path(path)
        self.name = name
        self.version = version
        if not self.path.is_file():
            raise ModelLoadError(f"{self.path}: no such model file")
        if hasattr(ort, "disable_telemetry_events"):
            ort.disable_telemetry_events()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelLoadError(f"{self.path}: not a usable ONNX model ({_reason(exc)})") from None
        self._invalid = (ort.capi.onnxruntime_pybind11_state.InvalidArgument,)
        inputs = [spec_from_ort(i) for i in self.session.get_inputs()]
        if any(spec is None for spec in inputs):
            kinds = ", ".join(f"{i.name}: {i.type}" for i in self.session.get_inputs())
            raise ModelLoadError(f"{self.path}: inputs that are not tensors ({kinds})")
        self.inputs: list[TensorSpec] = [s for s in inputs if s is not None]
        # Non-tensor outputs (a ZipMap's list of dicts) have no OIP form and are not offered.
        self.outputs: list[TensorSpec] = [
            s for s in (spec_from_ort(o) for o in self.session.get_outputs()) if s is not None
        ]
        if not self.outputs:
            raise ModelLoadError(f"{self.path}: no tensor outputs to serve")

    def metadata(self) -> dict[str, Any]:
        """The model metadata response."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
        }

    def run(self, request: InferenceRequest) -> tuple[np.ndarray, ...]:
        """The outputs a checked request asks for; BadRequest when the model rejects the
        inputs (a shape the graph cannot take), RuntimeError when it fails otherwise."""
        names = [o.spec.name for o in request.outputs]
        try:
            return tuple(self.session.run(names, request.feeds))
        except self._invalid as exc:
            raise BadRequest(f"the model cannot run on these inputs ({_reason(exc)})") from None
        except Exception as exc:
            raise RuntimeError(f"the model failed ({_reason(exc)})") from None

    def infer(self, body: bytes, json_length: int | None) -> Inference:
        """Check, run and encode one request body; the work of a worker thread."""
        request = parse_request(body, json_length, self.inputs, self.outputs)
        outputs = self.run(request)
        payload, header = encode_response(self.name, self.version, request, outputs)
        return Inference(request, outputs, payload, header)
