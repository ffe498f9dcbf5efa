"""The promotion gate: rules over a finished results document, and one decision."""

from mlci.gate.rules import evaluate_gate

__all__ = ["evaluate_gate"]
