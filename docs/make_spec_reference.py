"""Write docs/spec-format.md from the JSON Schema, so the reference and the schema never disagree.

    python docs/make_spec_reference.py           # rewrite docs/spec-format.md
    python docs/make_spec_reference.py --check   # exit 1 if it is out of date (tests run this)

Every field's text is the schema's own `description`: editors show the same words on hover.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "batchrun" / "data" / "batchrun.schema.json"
OUT = ROOT / "docs" / "spec-format.md"

INTRO = """\
# The spec format (version 1)

<!-- Written by docs/make_spec_reference.py from batchrun/data/batchrun.schema.json: edit the
schema's descriptions, then run the script; a test fails while this file is out of date. -->

A spec is a YAML file. `batchrun validate SPEC` checks it against the JSON Schema in
`schemas/batchrun.schema.json` (also inside the installed package), then checks its meaning; every
error is reported at once as `file:line:col: path: message`. Start a spec with

```yaml
# yaml-language-server: $schema=../schemas/batchrun.schema.json
```

and editors with the YAML language server complete fields and show these descriptions.

How the pieces fit:

- **Jobs.** Each job has one target (`model`, `version` or `deployment`), an `input` and, usually,
  a `matrix`. The job runs once per combination of the matrix's values (the product of the axes,
  first axis slowest), after `exclude` and `include` (GitHub Actions rules, exactly), `repeat`
  times each.
- **Templates.** Strings in `input` and `files` may use `${var}` and `${var.field}`; a value that
  is only `${var}` keeps the variable's type; `$${` writes a literal `${`. An unknown variable is an
  error at its place.
- **Keys.** Every planned prediction has a key: the first 16 hex characters of the sha256 of the
  canonical JSON of its target, final input and repeat index (local files by content). Settings
  that do not change what is predicted (concurrency, rate, output, files) do not change keys.
- **Paths** (`output`, value files, `{file: ...}` inputs) are relative to the spec's folder.
- **The token** never goes in a spec: it comes from the environment variable `token_env` names.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args()
    text = render(json.loads(SCHEMA.read_text(encoding="utf-8")))
    if args.check:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run python docs/make_spec_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


def render(schema: dict[str, Any]) -> str:
    """The whole reference page for `schema`."""
    defs = schema["$defs"]
    job = defs["job"]
    parts = [
        INTRO,
        "## Top level\n",
        schema["description"] + "\n",
        _table(schema["properties"], set(schema.get("required", ())), defs),
        "## A job (`jobs[]`)\n",
        _table(job["properties"], set(job.get("required", ())), defs),
        "## A price (`price`, `jobs[].price`, each model's entry in `prices`)\n",
        defs["price"]["description"] + "\n",
        _table(defs["price"]["properties"], set(), defs),
        "## Matrix values (`jobs[].matrix.NAME`)\n",
        defs["axis"]["description"] + "\n",
        _sources(defs["axis"]),
        "## Variable names\n",
        _identifier(defs["identifier"]),
    ]
    return "\n".join(parts)


def _table(properties: dict[str, Any], required: set[str], defs: dict[str, Any]) -> str:
    rows = ["| field | type | description |", "|---|---|---|"]
    for name, prop in properties.items():
        need = " (required)" if name in required else ""
        text = _cell(prop.get("description", ""))
        rows.append(f"| `{name}`{need} | {_type(prop, defs)} | {text} |")
    return "\n".join(rows) + "\n"


def _type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "$ref" in prop:
        target = defs[prop["$ref"].rsplit("/", 1)[-1]]
        return _type({**target, **{k: v for k, v in prop.items() if k != "$ref"}}, defs)
    if "type" not in prop and "oneOf" in prop:
        kinds = " or ".join(option["type"] for option in prop["oneOf"])
        return f"{kinds} ({prop['errorMessage'].removeprefix('expected ')})"
    kind = prop.get("type", "any")
    words = [kind]
    if "minimum" in prop and "maximum" in prop:
        words.append(f"{prop['minimum']}–{prop['maximum']}")
    elif "minimum" in prop:
        words.append(f"≥ {prop['minimum']}")
    if "pattern" in prop and "patternErrorMessage" in prop:
        words.append(f"({prop['patternErrorMessage'].removeprefix('expected ')})")
    return " ".join(words)


def _sources(axis: dict[str, Any]) -> str:
    rows = ["| written as | gives |", "|---|---|"]
    for option in axis["oneOf"]:
        if option.get("type") == "array":
            rows.append(f"| `[a, b, ...]` | {_cell(option['description'])} |")
            continue
        (name,) = option["properties"]
        written = "[start, stop, step]" if name == "range" else "path"
        if name == "glob":
            written = "pattern"
        rows.append(f"| `{{{name}: {written}}}` | {_cell(option['description'])} |")
    return "\n".join(rows) + "\n"


def _identifier(identifier: dict[str, Any]) -> str:
    reserved = ", ".join(f"`{name}`" for name in identifier["not"]["enum"])
    rule = identifier["patternErrorMessage"].split(": ", 1)[-1]
    return f"A matrix variable's name: {rule}. Reserved for batchrun's own: {reserved}.\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    sys.exit(main())
