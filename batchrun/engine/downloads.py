"""A prediction's files, each where its job's `files` template puts it, and the key's last record.

Downloaded (or decoded from a data URI), kept when already in place, moved when the template
changed."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from batchrun import safefs
from batchrun.engine.claims import PathClaims
from batchrun.engine.collector import Journal
from batchrun.engine.createsfirst import CreatesFirst
from batchrun.engine.moves import move_file
from batchrun.engine.work import Settings
from batchrun.errors import DownloadError, StorageError
from batchrun.manifest.records import FileRecord, Record
from batchrun.manifest.state import file_intact, moves
from batchrun.output_files import decode_data_uri, is_data_uri, recorded_url
from batchrun.planner.naming import JobNamers, NamingError, output_names

if TYPE_CHECKING:  # the HTTP stack loads with the client the runner makes (engine/runner.py)
    from batchrun.api.client import Client

# Said of a prediction whose files could not be named: its links are kept in the manifest.
LATER = (
    "; the links are kept: the next `run` fetches the files while they live (an hour on Replicate)"
)


class Downloads:
    """What every prediction task's downloads share: client, journal, namer, path claims."""

    def __init__(
        self,
        client: Client,
        journal: Journal,
        namers: JobNamers,
        settings: Settings,
        claims: PathClaims,
        creates_first: CreatesFirst,
        notify: Callable[[str], None],
    ) -> None:
        self.client = client
        self.journal = journal
        self.namers = namers  # each job's files template
        self.settings = settings
        self.claims = claims
        self.creates_first = creates_first
        self.notify = notify

    def _intact(self, file: FileRecord) -> bool:
        if self.settings.hashed is not None:
            return self.settings.hashed.difference(file.path, file.bytes, file.sha256) is None
        return file_intact(self.settings.run_dir, file.path, file.bytes, file.sha256)

    async def finish(
        self, record: Record, urls: list[str], downloaded: tuple[FileRecord, ...]
    ) -> None:
        """Download every file of `urls` that is not already in place; record the end."""
        if not self.settings.download:
            have = {f.url for f in downloaded}
            await self.journal.write(
                record.replace(missing=tuple(url for url in urls if url not in have)),
                final=True,
            )
            return
        await self.creates_first.give_way()
        files: list[FileRecord] = []
        missing: list[str] = []
        errors: list[str] = []
        have_by_url = {f.url: f for f in downloaded}
        names = output_names(record.output) if record.output is not None else {}
        kept = False  # whether a file could not be named: fixing `files` lets a run fetch it
        try:
            for index, url in enumerate(urls):
                present = have_by_url.get(url)
                if present is not None and self._intact(present):
                    files.append(present)
                    continue
                try:
                    files.append(await self._download(record, index, url, names.get(url)))
                    if self.settings.hashed is not None:
                        self.settings.hashed.note(files[-1].path, files[-1].sha256)
                except DownloadError as error:
                    missing.append(url)
                    errors.append(str(error))
                    kept = kept or isinstance(error, NamingError)
        except StorageError as error:
            missing.extend(url for url in urls[len(files) + len(missing) :])
            await self.journal.write(
                record.replace(files=tuple(files), missing=tuple(missing), error=str(error)),
                final=True,
            )
            raise
        error_text = "; ".join(errors) + (LATER if kept else "") if errors else record.error
        done = record.replace(files=tuple(files), missing=tuple(missing), error=error_text)
        # Files kept from before may sit where an older template put them: the next run moves
        # those, so the template is recorded only once every file is where this one says.
        namer = self.namers(record.job)
        if not moves(done, namer):
            done = done.replace(files_template=namer.template)
        await self.journal.write(done, final=True)

    async def move(self, record: Record) -> None:
        """Rename the key's files to the paths the current `files` template gives them, and
        record the new paths; a file that cannot move stays, and the run says why."""
        files = list(record.files)
        problems: list[str] = []
        namer = self.namers(record.job)
        for place, new in sorted(moves(record, namer).items()):
            old = files[place]
            try:
                self.claims.claim(new, record.key, place, keyed="key" in namer.variables)
            except NamingError as error:
                problems.append(f"{old.path} stays: {error}")
                continue
            why = await anyio.to_thread.run_sync(move_file, self.settings.run_dir, old.path, new)
            if why is not None:
                problems.append(f"{old.path} stays: {why}")
                continue
            files[place] = FileRecord(url=old.url, path=new, sha256=old.sha256, bytes=old.bytes)
        moved = record.replace(files=tuple(files))
        if problems:
            self.notify(f"batchrun: {record.key}: not moved: {'; '.join(problems)}")
        else:
            moved = moved.replace(files_template=namer.template)
        await self.journal.write(moved, final=True)

    async def _download(
        self, record: Record, index: int, url: str, name: str | None = None
    ) -> FileRecord:
        namer = self.namers(record.job)
        relative = record.file_path(namer, index, url, name)
        self.claims.claim(relative, record.key, index, keyed="key" in namer.variables)
        if is_data_uri(url):
            data = decode_data_uri(url)
            digest = await anyio.to_thread.run_sync(
                _write_atomically, self.settings.run_dir / relative, self.settings.run_dir, data
            )
            return FileRecord(url=recorded_url(url), path=relative, sha256=digest, bytes=len(data))
        # As text: a Path would intern the file's name (see `Downloader.fetch`).
        dest = os.path.join(self.settings.run_dir, relative)
        got = await self.client.download(
            url, dest, max_bytes=self.settings.max_file_bytes, root=self.settings.run_dir
        )
        return FileRecord(url=url, path=relative, sha256=got.sha256, bytes=got.bytes)


def _write_atomically(dest: Path, root: Path, data: bytes) -> str:
    safefs.ensure_folder(dest.parent, root)
    safefs.write_atomically(dest, data, root, durable=True)
    return hashlib.sha256(data).hexdigest()
