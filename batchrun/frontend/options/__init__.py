"""What each command was asked to do: one frozen record per command, built by `cli.py`.

The commands take these records, never an `argparse.Namespace`, so mypy checks every option a
command reads. A field's name is the argparse `dest` of its flag (`--allow-outside` is
`allow_outside`); `cli.py` fills each record from the parsed namespace by field name, and
tests/commands/test_cli_options.py checks that every flag of the parser has its field and
back. To add a flag: one `add_argument` line in the command's `_add_<command>` in `cli.py`, one
field in its record (with its default). A run option is declared in `engine/choices.py`
instead: `run`'s flags and `RunArgs.choices` follow from it.

Each record is in a module of its own, named after its command (`options/validate.py` holds
`ValidateArgs`): a command line creates only its own. A frozen dataclass takes about a
millisecond to create, and an offline `validate` has 0.12 s for everything (issue 22).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from batchrun.frontend.options.completion import CompletionArgs
    from batchrun.frontend.options.export import ExportArgs
    from batchrun.frontend.options.lock import LockArgs
    from batchrun.frontend.options.plan import PlanArgs
    from batchrun.frontend.options.report import ReportArgs
    from batchrun.frontend.options.run import RunArgs
    from batchrun.frontend.options.sandbox import SandboxArgs
    from batchrun.frontend.options.status import StatusArgs
    from batchrun.frontend.options.validate import ValidateArgs
    from batchrun.frontend.options.verify import VerifyArgs

CommandArgs: TypeAlias = (
    "ValidateArgs | PlanArgs | RunArgs | StatusArgs | ReportArgs | ExportArgs | VerifyArgs"
    " | LockArgs | SandboxArgs | CompletionArgs"
)

# The name of the record each command's `main` takes, by the command's name on the command
# line; the record is in the module of the same name.
ARGS_OF: dict[str, str] = {
    "validate": "ValidateArgs",
    "plan": "PlanArgs",
    "run": "RunArgs",
    "status": "StatusArgs",
    "export": "ExportArgs",
    "verify": "VerifyArgs",
    "report": "ReportArgs",
    "lock": "LockArgs",
    "sandbox": "SandboxArgs",
    "completion": "CompletionArgs",
}


def args_of(command: str) -> type[CommandArgs]:
    """The record `command`'s `main` takes, from its module (importing that one alone)."""
    module = importlib.import_module(f"{__name__}.{command}")
    record: type[CommandArgs] = getattr(module, ARGS_OF[command])
    return record


def field_names(record: type[CommandArgs]) -> frozenset[str]:
    """The names of a record's fields: its annotations, a frozen dataclass's and a NamedTuple's
    alike (`ValidateArgs` is a NamedTuple, so that `validate` imports no `dataclasses`)."""
    return frozenset(record.__annotations__)
