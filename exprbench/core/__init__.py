"""The floor of the stack: errors, atomic file I/O, input validation, the one registry class, the compute
device and versions, PNG grids. It imports nothing of exprbench above it and no torch on import."""

__version__ = "0.1.0"
