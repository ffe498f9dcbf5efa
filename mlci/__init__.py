"""mlci: continuous integration for machine-learning models."""

from mlci.numpy_dispatch import settle_here as _settle_numpy_dispatch

__version__ = "0.1.0"

# Before anything of mlci imports numpy, which chooses its CPU kernels as it loads.
_settle_numpy_dispatch()
