"""What a run is given and what it hands back: its options, its progress display, its summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from batchrun.api.stats import ClientStats
from batchrun.engine.budget import Budget
from batchrun.engine.choices import RunChoices
from batchrun.engine.collector import Tally
from batchrun.engine.survey import Survey
from batchrun.manifest.records import Api
from batchrun.spec.load import DEFAULT_TOKEN_ENV
from batchrun.spec.rate import Rate

if TYPE_CHECKING:
    from batchrun.api.client import Transport

DEFAULT_MAX_FILE_BYTES = 4 << 30  # no output file of a sane model is larger than 4 GiB


@dataclass(frozen=True, kw_only=True)
class RunOptions(RunChoices):
    """How to run a spec: what a person chose (`RunChoices`) and what the caller sets up."""

    base_url: str
    token: str
    # The variable the token came from, for hints ("check the API token in $NAME"); None when
    # it was handed over directly (the Python API's `token=`).
    token_env: str | None = DEFAULT_TOKEN_ENV
    requests: Rate | None = None
    wait: int | None = None
    max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES
    handle_signals: bool = False
    recreate_delay: float = 1.0
    transport: Transport | None = None
    # Ask the API about each target (and check inputs against its schema) before creating.
    preflight: bool = True
    # Whether base_url is the sandbox (`--sandbox`: True); None asks the API once, before the
    # survey (`Client.is_sandbox`), except api.replicate.com, which never is, and a run whose
    # journal already names the URL as a real API's, until it finds something to send.
    sandbox: bool | None = None


class Progress(Protocol):
    """What the runner tells a progress display; the CLI draws it, the library never prints."""

    def start(self, tally: Tally) -> None: ...

    def update(self, tally: Tally) -> None: ...

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def start(self, tally: Tally) -> None:
        pass

    def update(self, tally: Tally) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class RunSummary:
    """What a run did."""

    run_dir: Path
    manifest: Path
    survey: Survey
    tally: Tally
    wall_time: float
    interrupted: bool
    client: ClientStats
    download: bool = True
    left: int = field(default=0)  # keys that needed work but were not started (stopped)
    rate: Rate | None = None  # the create rate this process kept to
    account_rate: Rate | None = None  # the spec's (or --rate's), before shards divided it
    rate_shared_by: int = 1  # shards that rate was divided among
    shard: tuple[int, int] | None = None
    # Jobs whose creates the API's answers stopped (no such model, the same 422 each time).
    stopped_jobs: dict[str, str] = field(default_factory=dict)
    api: Api | None = None  # the API this run talked to (None: stopped before it knew)
    # False when a stop came before the plan was compared with the manifest: nothing is known
    # of what was left, and nothing was sent.
    surveyed: bool = True
    budget: Budget = field(default_factory=Budget)  # spent, reserved, and whether it was reached

    @property
    def ok(self) -> bool:
        """True when every planned prediction in scope succeeded with its files."""
        return (
            not self.interrupted
            and self.left == 0
            and self.tally.failure_count == 0
            and self.survey.failed_before == 0
        )
