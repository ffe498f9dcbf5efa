"""The inference server shipped inside mlci's serving images.

Open Inference Protocol (KServe v2) over REST, with the binary tensor data and
classification extensions and Prometheus metrics, on uvicorn with ONNX Runtime. Run it
with::

    python -m mlci.serve --model /model/model.onnx --name NAME --port 8080
"""

from mlci.serve.model import ModelLoadError, ModelRunner
from mlci.serve.server import InferenceServer, ServeOptions, serve

__all__ = ["InferenceServer", "ModelLoadError", "ModelRunner", "ServeOptions", "serve"]
