"""The command line: argparse in one place, one error handler, exit codes (docs/exit-codes.md).

Each command lives in `batchrun/commands/<name>.py` as `main(args) -> int`, where `args` is the
command's frozen record from `batchrun/frontend/options/<name>.py` (built here from argparse's
namespace, so no command sees argparse); it may print its own results. Everything under it raises
`BatchrunError`s, which `main` below turns into one message on stderr and an exit code. The
library itself never prints and never exits.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from batchrun._version import __version__
from batchrun.engine.signals import sigterm_interrupts
from batchrun.errors import BatchrunError, SpecError, refresh_secrets
from batchrun.exitcodes import ExitCode, exit_code_for
from batchrun.frontend.destination import redacted
from batchrun.frontend.options import args_of, field_names
from batchrun.humanize import printable

if TYPE_CHECKING:
    from dataclasses import Field

    from batchrun.frontend.options import CommandArgs

# A command's flags, and what they follow from (engine/choices.py for `run` and `plan`, the
# sandbox's help), are loaded only for the command given: a command imports and builds only
# what it needs, so an offline `validate` starts quickly (issue 22; tests/commands/test_startup.py).


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _add_base_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="API base URL (default: $REPLICATE_BASE_URL, else the spec's base_url if allowed, "
        "else https://api.replicate.com); a trailing /v1 is optional",
    )
    # A spec may come from a pull request: where the token goes is the command line's choice.
    parser.add_argument(
        "--allow-spec-base-url",
        action="store_true",
        help="send the token to the spec's base_url (otherwise only --base-url or "
        "$REPLICATE_BASE_URL choose another API than Replicate's)",
    )
    parser.add_argument(
        "--token-env",
        metavar="NAME",
        help="the environment variable holding the token (default: the spec's token_env if "
        "its name has REPLICATE in it and ends in TOKEN, else REPLICATE_API_TOKEN)",
    )


def _add_online(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--online",
        action="store_true",
        help="also ask the API that each model exists and check the inputs against its schema"
        " (what run does before its first create; otherwise nothing is sent)",
    )
    _add_base_url(parser)


def _add_allowances(parser: argparse.ArgumentParser, *, cap: bool = True) -> None:
    # What a spec (perhaps from a pull request) may not do alone: docs/SECURITY.md.
    parser.add_argument(
        "--allow-outside",
        action="append",
        default=[],
        metavar="PATH",
        help="let the spec read (or write output) at PATH outside its own folder, or anywhere "
        "under PATH if it is a folder; repeatable",
    )
    if cap:
        parser.add_argument(
            "--max-predictions",
            type=_positive_int,
            metavar="N",
            help="plan up to N predictions (default 10,000,000; more is refused before planning)",
        )


ENVIRONMENT_HELP = """\
environment:
  REPLICATE_API_TOKEN  the API token (a spec's token_env names another variable); sent only to
                       the API's own origin, never shown
  REPLICATE_BASE_URL   the API base URL unless --base-url is given; beats the spec's base_url
                       (default https://api.replicate.com)
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY
                       an HTTP proxy to reach the API through
  BATCHRUN_DEBUG=1     show the traceback of an internal error instead of one line"""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line: one `_add_<command>` below per command (`_COMMANDS`).

    With `command`, the parser of a command line that begins with it: that command alone, with
    its flags, is all argparse reads there. Building all ten (and importing what `run`'s flags
    follow from) was a tenth of an offline `validate`'s time. Without it, every command, as
    `batchrun --help` lists them and `completion` writes its script from them.
    """
    parser = argparse.ArgumentParser(
        prog="batchrun",
        description="Run large batches of Replicate predictions from YAML specs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=ENVIRONMENT_HELP,
    )
    parser.add_argument("--version", action="version", version=f"batchrun {__version__}")
    # Not required: a bare `batchrun` prints this help (see main).
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    every = command is None or command == "completion"  # its script is of the whole parser
    for name, (summary, add_flags) in _COMMANDS.items():
        if every or name == command:
            add_flags(commands.add_parser(name, help=summary))
    if "completion" in commands.choices:
        # The script is written from the whole parser, which the command gets in its record.
        commands.choices["completion"].set_defaults(parser=parser)
    return parser


def _add_validate(validate: argparse.ArgumentParser) -> None:
    validate.add_argument("specs", nargs="+", metavar="SPEC")
    validate.add_argument(
        "--json", action="store_true", help="one JSON document: each spec's counts or errors"
    )
    _add_online(validate)
    _add_allowances(validate)


def _add_plan(plan: argparse.ArgumentParser) -> None:
    from dataclasses import fields

    from batchrun.engine.choices import SELECTION, RunChoices

    plan.add_argument("spec", metavar="SPEC")
    plan.add_argument("--json", action="store_true", help="one JSON object per planned prediction")
    plan.add_argument("--out", metavar="DIR", help="run folder to compare with (default: spec's)")
    plan.add_argument(
        "--diff", metavar="REV", help="compare with the spec as it is at git revision REV"
    )
    plan.add_argument(
        "--markdown", action="store_true", help="with --diff: the diff as a pull-request comment"
    )
    for choice in fields(RunChoices):
        if choice.name in SELECTION:  # as run takes them: plan shows what run would act on
            _add_choice(plan, choice)
    _add_online(plan)
    _add_allowances(plan)


def _add_run(run: argparse.ArgumentParser) -> None:
    from dataclasses import fields

    from batchrun.engine.choices import RunChoices

    _with_environment_help(run)
    run.add_argument("spec", metavar="SPEC")
    _add_base_url(run)
    run.add_argument("--sandbox", action="store_true", help="run against the built-in emulator")
    for choice in fields(RunChoices):  # declared once, in engine/choices.py
        _add_choice(run, choice)
    run.add_argument(
        "--json", action="store_true", help="print the summary as JSON on stdout (not stderr)"
    )
    run.add_argument(
        "--progress",
        choices=("auto", "bar", "lines", "none"),
        default="auto",
        help="a bar, a plain line every few seconds, or nothing (default auto: a bar on a "
        "terminal, else lines)",
    )
    run.add_argument(
        "-q", "--quiet", action="store_true", help="no progress, notes or summary; errors only"
    )
    run.add_argument("-v", "--verbose", action="store_true", help="also each failure as it happens")
    _add_allowances(run)


def _with_environment_help(parser: argparse.ArgumentParser) -> None:
    """The command's help ends with the environment variables it reads, as `batchrun --help`."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = ENVIRONMENT_HELP


def _add_choice(parser: argparse.ArgumentParser, choice: Field[Any]) -> None:
    """The flag of one run option: a switch for a bool (`--no-NAME` when it defaults to True),
    a whole number of at least 1 for an `int | None`, else text (`Flag.parse` reads it)."""
    from batchrun.engine.choices import flag_of

    flag = flag_of(choice)
    name = "--" + choice.name.replace("_", "-")
    if choice.default is True:
        parser.add_argument(
            "--no-" + name[2:], dest=choice.name, action="store_false", help=flag.help
        )
    elif choice.default is False:
        parser.add_argument(name, action="store_true", help=flag.help)
    elif choice.type == "int | None":
        parser.add_argument(name, metavar=flag.metavar, type=_positive_int, help=flag.help)
    else:
        parser.add_argument(
            name, metavar=flag.metavar, choices=flag.choices, default=choice.default, help=flag.help
        )


def _add_export(export: argparse.ArgumentParser) -> None:
    export.add_argument("target", metavar="RUN_OR_SPEC")
    export.add_argument("--format", required=True, choices=("jsonl", "csv", "hf"))
    export.add_argument(
        "--to", required=True, metavar="PATH", help="a file, - for stdout, or a folder (hf)"
    )
    _add_all(export)
    export.add_argument(
        "--force", action="store_true", help="hf: replace an earlier export at --to, in one step"
    )


def _add_verify(verify: argparse.ArgumentParser) -> None:
    verify.add_argument("target", metavar="RUN_OR_SPEC_OR_DATASET")
    verify.add_argument("--json", action="store_true", help="the result as one JSON object")
    verify.add_argument(
        "--allow-sandbox",
        action="store_true",
        help="accept predictions the sandbox made (otherwise each is a problem)",
    )
    # verify's word is a proof, so it reads every byte by default (a disk's silent decay moves
    # no stat field) and every journal byte (the kept table is taken only for the bytes it
    # recorded the sha256 of); --quick trusts the caches as status and run do.
    verify.add_argument(
        "--quick",
        action="store_true",
        help="trust .batchrun-files.jsonl and .batchrun-table.bin: skip hashing a file whose "
        "size, mtime, ctime and inode are as recorded, and take the kept table of the journals "
        "without hashing the bytes it was read from (a run folder only; a dataset is always "
        "hashed)",
    )


def _add_status(status: argparse.ArgumentParser) -> None:
    status.add_argument("target", metavar="RUN_OR_SPEC")
    status.add_argument("--json", action="store_true", help="machine-readable status")
    status.add_argument(
        "--csv", metavar="FILE", help="also export every record to a CSV file (-: stdout)"
    )
    _add_all(status)
    _add_deep(status)


def _add_deep(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--deep",
        action="store_true",
        help="hash every recorded file again, even those whose size, mtime and inode say they "
        "did not change",
    )


def _add_report(report: argparse.ArgumentParser) -> None:
    report.add_argument("target", metavar="RUN_OR_SPEC")
    report.add_argument("--rows", metavar="VAR", help="matrix variable for the grid's rows")
    report.add_argument("--cols", metavar="VAR", help="matrix variable for the grid's columns")
    report.add_argument(
        "--output", metavar="FILE", help="where to write (default RUN/report.html; -: stdout)"
    )
    report.add_argument(
        "--embed-limit",
        type=float,
        default=25.0,
        metavar="MB",
        help="embed the files shown while they add up to at most MB (default 25; 0: link them)",
    )
    _add_all(report)
    report.add_argument(
        "--compare",
        metavar="OTHER",
        help="instead, a page of this run beside OTHER (a run folder, or a git revision of "
        "SPEC: its plan there, looked up in the run folders), paired by job and variables "
        "(default RUN/compare.html)",
    )


def _add_all(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--all", action="store_true", help="also the recorded predictions the spec no longer plans"
    )


def _add_lock(lock: argparse.ArgumentParser) -> None:
    _with_environment_help(lock)
    lock.add_argument("spec", metavar="SPEC")
    _add_base_url(lock)
    lock.add_argument(
        "--sandbox", action="store_true", help="resolve against the built-in emulator"
    )
    lock.add_argument("--json", action="store_true", help="print what was pinned as JSON")
    _add_allowances(lock, cap=False)


def _add_sandbox(sandbox: argparse.ArgumentParser) -> None:
    from batchrun.sandbox.help import RESERVED_INPUTS_HELP

    sandbox.formatter_class = argparse.RawDescriptionHelpFormatter
    sandbox.epilog = RESERVED_INPUTS_HELP
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    sandbox.add_argument("--latency", type=float, metavar="S", help="seconds per prediction")
    sandbox.add_argument("--jitter", type=float, metavar="S", help="± seconds of latency")
    sandbox.add_argument("--failure-rate", type=float, metavar="P", help="share that fail")
    sandbox.add_argument("--error-rate", type=float, metavar="P", help="share of 5xx answers")
    sandbox.add_argument("--reset-rate", type=float, metavar="P", help="share of dropped requests")
    sandbox.add_argument("--rate-limit", metavar="R", help="creates allowed, e.g. 600/min")
    sandbox.add_argument("--no-wait", action="store_true", help="ignore Prefer: wait (polling)")
    sandbox.add_argument("--file-ttl", type=float, metavar="S", help="seconds output URLs live")
    sandbox.add_argument("--seed", type=int, help="seed of the fault dice")
    sandbox.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="any other setting (repeatable), e.g. --set list_endpoint=false",
    )
    sandbox.add_argument(
        "--second-origin", action="store_true", help="serve output files from another port"
    )
    sandbox.add_argument("--access-log", action="store_true", help="log every request")


def _add_completion(completion: argparse.ArgumentParser) -> None:
    from batchrun.commands.completion import SHELLS

    completion.description = (
        "Print a completion script for SHELL. Try it with "
        '`eval "$(batchrun completion bash)"`; keep it in e.g. '
        "~/.local/share/bash-completion/completions/batchrun, "
        "~/.zfunc/_batchrun (zsh) or ~/.config/fish/completions/batchrun.fish."
    )
    completion.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")


# Each command, in the order `batchrun --help` lists them: its line there, and what adds its
# flags (and the rest of its own help) to its parser.
_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "validate": ("check specs; print every error with its place", _add_validate),
    "plan": ("show what `run` would do; sends nothing to the API", _add_plan),
    "run": ("run what the plan says is left", _add_run),
    "export": ("the run as a dataset: JSON Lines, CSV or hf", _add_export),
    "verify": ("prove a run or an exported dataset complete and unmodified", _add_verify),
    "status": ("what the manifest says", _add_status),
    "report": ("write RUN/report.html, an offline gallery", _add_report),
    "lock": ("pin every model: owner/name to its version in SPEC.lock", _add_lock),
    "sandbox": ("serve the Replicate-compatible emulator", _add_sandbox),
    "completion": ("print a shell completion script", _add_completion),
}


def _parse(parser: argparse.ArgumentParser, words: list[str]) -> argparse.Namespace:
    """argparse's parse, except that `run --json` answers a usage error with its JSON object
    too (docs/exit-codes.md): a script reading stdout gets one object on every exit."""
    if not _run_json(words):
        return parser.parse_args(words)
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            return parser.parse_args(words)
    except SystemExit as stop:
        if stop.code == ExitCode.USAGE:
            last = said.getvalue().strip().splitlines()[-1:] or ["usage error"]
            data = {"ok": False, "interrupted": False, "error": printable(last[0])}
            print(json.dumps({**data, "exit_code": int(ExitCode.USAGE)}))
        raise
    finally:
        sys.stderr.write(said.getvalue())  # argparse's own words, as they would have been


def _run_json(words: Sequence[str]) -> bool:
    """Whether the command line asks for `run ... --json`."""
    command = next((word for word in words if not word.startswith("-")), None)
    return command == "run" and "--json" in words


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `batchrun` console script and of `python -m batchrun`."""
    # The terminal is a sink: whatever a command prints passes the redaction of every secret
    # this process holds (docs/SECURITY.md), whichever code printed it.
    refresh_secrets()
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = redacted(stdout), redacted(stderr)
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _main(argv: Sequence[str] | None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # Only a command line that starts with its command is parsed by that command's parser
    # alone: before it, `-h` or a mistake shows the whole list of commands.
    parser = build_parser(words[0] if words and words[0] in _COMMANDS else None)
    try:
        parsed = _parse(parser, words)
        if parsed.command is None:
            parser.print_help()
            sys.stdout.flush()
            return ExitCode.OK
    except BrokenPipeError:
        _detach_stdout()
        return ExitCode.OK
    except SystemExit:  # argparse after --help, --version or a usage error
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _detach_stdout()
        raise
    args = options_from(parsed)
    try:
        with sigterm_interrupts():  # SIGTERM ends a command as Ctrl-C does, at any moment
            command = importlib.import_module(f"batchrun.commands.{parsed.command}")
            code: int = command.main(args)
            # A reader that stopped early (`| head`) shows here, not in the interpreter's flush.
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader has all it wanted: end quietly, as `plan --json | head` always did (0,
        # not 141: what was written was right, and a shell's pipefail should not fail on it).
        _detach_stdout()
        return ExitCode.OK
    except KeyboardInterrupt:
        print("batchrun: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BatchrunError as error:
        print(_describe(error), file=sys.stderr)
        return exit_code_for(error)
    except Exception as error:  # a bug in batchrun: say so in one line, not a traceback
        if os.environ.get("BATCHRUN_DEBUG"):
            raise
        print(
            f"batchrun: internal error: {type(error).__name__}: {error}"
            + "\nbatchrun: this is a bug; run again with BATCHRUN_DEBUG=1 to see where it happened",
            file=sys.stderr,
        )
        return ExitCode.FAILED
    return code


def options_from(parsed: argparse.Namespace) -> CommandArgs:
    """The command's typed record, each field taken from the flag of the same `dest`."""
    record = args_of(parsed.command)
    names = field_names(record) - {"choices"}
    values = {name: getattr(parsed, name) for name in names}
    # argparse gives lists for nargs/append options; the records are frozen, so tuples.
    values = {
        name: tuple(value) if isinstance(value, list) else value for name, value in values.items()
    }
    # An `append` option never given is None; its field's default is the empty tuple.
    values = {name: value for name, value in values.items() if value is not None}
    if parsed.command == "run":
        from dataclasses import fields

        from batchrun.engine.choices import RunChoices

        # The run options given (those that differ from their defaults), as typed.
        values["choices"] = {
            choice.name: getattr(parsed, choice.name)
            for choice in fields(RunChoices)
            if getattr(parsed, choice.name) != choice.default
        }
    return record(**values)


def _detach_stdout() -> None:
    # Point stdout at /dev/null, so the interpreter's final flush of what is still buffered
    # does not raise the closed pipe again at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (a test's capture)
        pass
    finally:
        os.close(devnull)


def _describe(error: BatchrunError) -> str:
    if isinstance(error, SpecError):
        count = len(error.issues)
        noun = "error" if count == 1 else "errors"
        return f"{error}\nbatchrun: {count} {noun} in the spec; nothing was sent"
    # Often quotes a server (an API error, a download's host): escapes stripped, cut short.
    return f"batchrun: {printable(str(error))}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
