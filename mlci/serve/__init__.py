"""The inference server shipped inside mlci's serving images.

Open Inference Protocol (KServe v2) over REST with Prometheus metrics, on the standard
library's HTTP server, numpy and ONNX Runtime; nothing else. Run it with::

    python -m mlci.serve --model /model/model.onnx --name NAME --port 8080
"""

from mlci.serve.server import InferenceServer, ModelLoadError, ModelRunner, serve

__all__ = ["InferenceServer", "ModelLoadError", "ModelRunner", "serve"]
