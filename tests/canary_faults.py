"""A serving process with injected faults, for canary tests: ``python tests/canary_faults.py
--model M --name N --version V --port P [--delay-ms D] [--error-rate E] [--seed S]``.

It runs mlci's own inference server (the same HTTP side, protocol and ``/metrics``) on a model
runner that sleeps ``D`` ms before each inference and fails a share ``E`` of them (answered
500), so the server's own latency histogram and error counters show the faults, as a slow or
broken model would make them.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from typing import Any

from mlci.serve.model import ModelRunner
from mlci.serve.server import ServeOptions, serve


class FaultyRunner(ModelRunner):
    """A model runner that is slower and fails some requests."""

    def __init__(self, *args: Any, delay: float, error_rate: float, seed: int, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.delay = delay
        self.error_rate = error_rate
        self.random = random.Random(seed)
        self.lock = threading.Lock()

    def run(self, request: Any) -> Any:
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            fail = self.random.random() < self.error_rate
        if fail:
            raise RuntimeError("injected failure")
        return super().run(request)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", default="1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    runner = FaultyRunner(
        args.model,
        args.name,
        args.version,
        delay=args.delay_ms / 1000,
        error_rate=args.error_rate,
        seed=args.seed,
    )
    options = ServeOptions(host="127.0.0.1", port=args.port, threads=args.threads, grace=2)
    return serve(runner, options)


if __name__ == "__main__":
    sys.exit(main())
