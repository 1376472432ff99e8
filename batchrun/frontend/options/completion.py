"""`batchrun completion SHELL`: the shell, and the whole parser its script is written from."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CompletionArgs:
    """`batchrun completion SHELL`: the script is written from the whole parser, which `cli.py`
    hands over (no command builds a parser)."""

    shell: str
    parser: argparse.ArgumentParser = field(compare=False, repr=False)
