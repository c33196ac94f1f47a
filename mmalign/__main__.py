"""``python -m mmalign``: the same entry point as the ``mmalign`` console script."""

from .interrupt import entry_point

entry_point()
