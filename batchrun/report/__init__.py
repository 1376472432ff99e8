"""The HTML report: a run folder as one self-contained page, and two runs side by side."""
