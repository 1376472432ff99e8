"""The typed records the commands take: every flag of the parser has its field, and back."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from batchrun import RunKeywords
from batchrun.cli import build_parser, options_from
from batchrun.engine.choices import RunChoices
from batchrun.frontend.options import ARGS_OF, args_of, field_names
from batchrun.frontend.options.plan import PlanArgs
from batchrun.frontend.options.run import RunArgs
from batchrun.frontend.options.sandbox import SandboxArgs
from batchrun.frontend.options.validate import ValidateArgs

# argparse's own destinations, which no command reads.
_ARGPARSE_ONLY = {"help"}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the parser has no commands")


def test_every_command_has_a_record() -> None:
    assert sorted(_subparsers()) == sorted(ARGS_OF)


@pytest.mark.parametrize("command", sorted(ARGS_OF))
def test_each_flag_is_a_field_of_the_commands_record(command: str) -> None:
    sub = _subparsers()[command]
    dests = {action.dest for action in sub._actions} | set(sub._defaults)
    names = set(field_names(args_of(command)))
    if command == "run":  # the run options travel together, in `RunArgs.choices`
        names = names - {"choices"} | {field.name for field in fields(RunChoices)}
    assert dests - _ARGPARSE_ONLY == names


@pytest.mark.parametrize("command", sorted(ARGS_OF))
def test_each_record_is_in_the_module_of_its_command(command: str) -> None:
    assert args_of(command).__module__ == f"batchrun.frontend.options.{command}"


def test_the_python_keywords_are_the_run_options() -> None:
    # A typed dict cannot be derived from the dataclass: this keeps the two spellings one.
    python_only = {"base_url", "token", "sandbox", "progress"}
    assert (
        set(RunKeywords.__annotations__)
        == {field.name for field in fields(RunChoices)} | python_only
    )


def test_the_namespace_becomes_the_typed_record() -> None:
    parser = build_parser()
    assert options_from(parser.parse_args(["validate", "a.yaml", "b.yaml"])) == ValidateArgs(
        specs=("a.yaml", "b.yaml")
    )
    assert options_from(parser.parse_args(["plan", "s.yaml", "--shard", "1/2"])) == PlanArgs(
        spec="s.yaml", shard="1/2"
    )
    assert options_from(
        parser.parse_args(["run", "s.yaml", "--limit", "3", "--no-download", "--sandbox"])
    ) == RunArgs(spec="s.yaml", sandbox=True, choices={"limit": 3, "download": False})
    assert options_from(parser.parse_args(["run", "s.yaml", "--shard", "2/8"])) == RunArgs(
        spec="s.yaml", choices={"shard": "2/8"}
    )
    assert options_from(
        parser.parse_args(["sandbox", "--set", "a=1", "--set", "b=2", "--port", "0"])
    ) == SandboxArgs(port=0, set=("a=1", "b=2"))
