"""Write the package tree of docs/ARCHITECTURE.md from the code: every module with its summary.

    python docs/make_architecture_tree.py           # rewrite the tree between the markers
    python docs/make_architecture_tree.py --check   # exit 1 if it is out of date (tests run this)

Each module's line is the first line of its docstring, so the map cannot drift from the code:
a new module, a move or a changed summary shows up here the next time the script runs.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "batchrun"
DOC = ROOT / "docs" / "ARCHITECTURE.md"
BEGIN = "<!-- tree: written by docs/make_architecture_tree.py; do not edit by hand -->"
END = "<!-- end of tree -->"
# Subpackages in the order data flows through them, then the rest; see the layers below the tree.
SUMMARY_WIDTH = 96  # after the 19 columns of the name: lines of at most 115, no wrapping on GitHub
ORDER = (
    "spec",
    "planner",
    "api",
    "manifest",
    "engine",
    "readout",
    "report",
    "frontend",
    "commands",
    "sandbox",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the tree is out of date")
    args = parser.parse_args()
    text = DOC.read_text(encoding="utf-8")
    head, found, rest = text.partition(BEGIN)
    _old, found_end, tail = rest.partition(END)
    if not found or not found_end:
        print(f"{DOC}: the tree markers are missing", file=sys.stderr)
        return 1
    new = f"{head}{BEGIN}\n{render()}{END}{tail}"
    if args.check:
        if new != text:
            print(
                f"{DOC} is out of date: run python docs/make_architecture_tree.py", file=sys.stderr
            )
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    print(f"wrote the tree of {DOC.relative_to(ROOT)}")
    return 0


def render() -> str:
    """The tree as a fenced block: top-level modules, then each subpackage in ORDER."""
    lines = ["```text", "batchrun/"]
    lines += [_line(path, "  ") for path in _modules(PACKAGE)]
    folders = sorted(
        (p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()),
        key=lambda p: (ORDER.index(p.name) if p.name in ORDER else len(ORDER), p.name),
    )
    for folder in folders:
        lines += _package(folder, "  ")
    lines.append("```")
    return "\n".join(lines) + "\n"


def _package(folder: Path, indent: str) -> list[str]:
    """A subpackage's line, its modules', then its own subpackages' (`frontend/options/`)."""
    width = 19 - len(indent)
    # A space after the name, however long: no name runs into its summary.
    lines = [f"{indent}{folder.name + '/':<{width - 1}} {_summary(folder / '__init__.py')}"]
    lines += [_line(path, indent + "  ") for path in _modules(folder)]
    for inner in sorted(p for p in folder.iterdir() if (p / "__init__.py").exists()):
        lines += _package(inner, indent + "  ")
    return lines


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.py") if p.name not in {"__init__.py", "__main__.py"})


def _line(path: Path, indent: str) -> str:
    width = 19 - len(indent)
    return f"{indent}{path.name:<{width - 1}} {_summary(path)}".rstrip()


def _summary(path: Path) -> str:
    """The docstring's first sentence, cut at a word so a line of the tree stays short."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    paragraph = " ".join(doc.strip().split("\n\n", 1)[0].split())
    sentence = re.split(r"(?<=[.!?])\s", paragraph, maxsplit=1)[0]
    if len(sentence) <= SUMMARY_WIDTH:
        return sentence
    return sentence[: SUMMARY_WIDTH - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


if __name__ == "__main__":
    sys.exit(main())
