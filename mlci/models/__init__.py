"""Model runtimes behind one interface (see interface.py)."""
