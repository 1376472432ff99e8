"""batchrun's version, in a module of its own: every layer may read it, and importing it does not
import the package's Python API (batchrun/__init__.py), which reaches into the upper layers."""

__version__ = "0.1.0"
