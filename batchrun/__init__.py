"""batchrun: run large batches of Replicate predictions from reviewed YAML specs."""

__version__ = "0.1.0"
