"""The one way batchrun writes files: never through a link, never outside the folder it owns.

A run folder may hold links nobody meant: a spec from a pull request can point `output:` at a
committed folder with a `.part` link in it, and a server chooses file names. So every write here:

- checks that the folder it writes into resolves (links followed) inside `root`, the folder the
  write belongs to (the run folder; None when the user named the file on the command line);
- creates temporaries with O_CREAT | O_EXCL | O_NOFOLLOW: a planted link at that name is
  removed, never followed; they are named `.NAME.<12 hex>.tmp` (or `.part`, a download's), so
  the ones a `kill -9` leaves behind are recognisably batchrun's (`remove_temporaries`);
- puts files in place with `os.replace`, which swaps a link at the destination for the new file
  instead of writing through it;
- appends (the manifest) with O_NOFOLLOW.

And every file batchrun reads (a spec, its lock, value files, `{file:}` inputs, manifests) is
opened through `open_regular` or `read_regular`: a FIFO, /dev/zero or another device is refused
before anything waits on it, and a whole-file read stops at a size limit its caller names.

Races with a local process swapping folders for links while batchrun runs are out of scope
(docs/SECURITY.md): these checks stop the links that exist before or between runs.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

from batchrun.errors import StorageError

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# O_NOFOLLOW is POSIX; where an OS lacks it, the realpath checks still stand.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY
# O_NONBLOCK: opening a FIFO to read must not wait for a writer that never comes.
_READ = os.O_RDONLY | _NOFOLLOW | _BINARY | getattr(os, "O_NONBLOCK", 0)
_FILE_MODE = 0o666  # before the umask, as open() does
# Hex digits in a temporary's name: two writers never share one, and nobody can plant one in
# advance at a name a writer will use.
_TEMPORARY_HEX_BYTES = 6
# What `temporary_for` names: a leading dot, the file's name, 12 hex digits, `.tmp` or `.part`.
# A result is named so only by a `files` template that spells out that shape itself (a value's
# leading dots are dropped when it fills a template), so removing what matches removes no result.
_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{12}\.(?:tmp|part)")


def storage_error(error: OSError, path: Path | str, what: str = "") -> StorageError:
    """The one wording of a refused write: the disk is full, or the OS's reason.

    `what` names the file for people ("the manifest "), before its path.
    """
    if error.errno in _NO_SPACE:
        return StorageError(f"cannot write {what}{path}: the disk is full ({error.strerror})")
    return StorageError(f"cannot write {what}{path}: {error.strerror or error}")


def is_inside(path: Path | str, root: Path, *, real_root: str | None = None) -> bool:
    """Whether `path`, links followed, is `root` or under it (links in root itself followed too).

    `real_root` is `os.path.realpath(root)` when the caller has it: a check per file of a
    large folder then resolves only the file's path, not the root's again.
    """
    real = os.path.realpath(path)
    base = real_root if real_root is not None else os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def check_inside(path: Path | str, root: Path | None) -> None:
    """StorageError unless the folder `path` is written into resolves inside `root`."""
    if root is not None and not is_inside(os.path.dirname(path) or ".", root):
        raise StorageError(
            f"cannot write {path}: it leads outside {root} (through a link or `..`); "
            "batchrun writes only inside the run folder"
        )


def ensure_folder(folder: Path | str, root: Path | None, *, what: str = "") -> None:
    """Make `folder` (and its parents), then check it resolves inside `root`."""
    if root is not None and not is_inside(folder, root):
        # Checked before mkdir too, so a linked folder never gets new subfolders made in it.
        raise StorageError(
            f"cannot write into {folder}: it leads outside {root} (through a link or `..`); "
            "batchrun writes only inside the run folder"
        )
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise storage_error(error, folder, what) from None
    if root is not None and not is_inside(folder, root):
        raise StorageError(f"cannot write into {folder}: it leads outside {root}")


def create_new(path: Path | str, root: Path | None) -> BinaryIO:
    """Open `path` to write, as a new file: whatever is at that name (a link, a stale `.part`)
    is removed first, not followed."""
    check_inside(path, root)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # unlink removes a link itself, never its target
        fd = os.open(path, _NEW, _FILE_MODE)
    except OSError as error:
        raise storage_error(error, path) from None
    return os.fdopen(fd, "wb")


def open_append(path: Path, root: Path | None, *, what: str = "") -> BinaryIO:
    """Open `path` to append, unbuffered, refusing a link at that name."""
    check_inside(path, root)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW | _BINARY
    try:
        fd = os.open(path, flags, _FILE_MODE)
    except OSError as error:
        raise storage_error(_link_refused(error, path), path, what) from None
    return os.fdopen(fd, "ab", buffering=0)


def temporary_for(dest: Path, suffix: str = ".tmp") -> Path:
    """A new temporary's path beside `dest`: `.NAME.<12 hex>.tmp` (`suffix` `.part` for a
    download), random so that two writers never share one, and recognisable afterwards."""
    return dest.with_name(temporary_name(dest.name, suffix))


def temporary_name(name: str, suffix: str = ".tmp") -> str:
    """The name `temporary_for` gives a new temporary of the file called `name`."""
    return f".{name}.{_random_hex()}{suffix}"


def _random_hex() -> str:
    """The random part of a temporary's name: `secrets.token_hex` without importing `secrets`
    (its hmac and random were most of what importing this module cost every command)."""
    return os.urandom(_TEMPORARY_HEX_BYTES).hex()


def remove_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries a killed batchrun left in `folder` and its subfolders; return them.

    Only regular files named as `temporary_for` names them: a link is never followed (a linked
    folder is not entered, a link with a temporary's name is left alone), so nothing outside
    `folder` is touched. The caller makes sure no other batchrun writes in `folder` meanwhile.
    """
    removed: list[Path] = []
    pending = [folder]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    # The name first: a run folder of 50,000 files has as many entries to pass,
                    # and only a dot file can be a temporary.
                    name = entry.name
                    if (
                        name[:1] == "."
                        and _TEMPORARY.fullmatch(name)
                        and entry.is_file(follow_symlinks=False)
                    ):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                            removed.append(Path(entry.path))
                    elif entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue  # gone, or not ours to read: nothing of ours to remove there
    return removed


@contextlib.contextmanager
def atomic_writer(
    dest: Path, root: Path | None, *, durable: bool = False, what: str = ""
) -> Iterator[BinaryIO]:
    """Write `dest` through a new temporary beside it, renamed over `dest` at the end.

    `durable` syncs the file and its folder entry (the manifest, whose loss would cost money);
    other files are rebuilt from the manifest and skip the disk flush.
    """
    check_inside(dest, root)
    tmp = temporary_for(dest)
    try:
        fd = os.open(tmp, _NEW, _FILE_MODE)
    except OSError as error:
        raise storage_error(error, dest, what) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise storage_error(error, dest, what) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        fsync_folder(dest.parent)


@contextlib.contextmanager
def atomic_text_writer(dest: Path, root: Path | None) -> Iterator[IO[str]]:
    """`atomic_writer` as a UTF-8 text stream; lines end as written (CSV's own `\r\n` too)."""
    with atomic_writer(dest, root) as binary:
        handle = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        yield handle
        handle.flush()
        handle.detach()  # the binary file stays open: atomic_writer closes and renames it


def write_atomically(
    dest: Path, data: bytes | str, root: Path | None, *, durable: bool = False
) -> None:
    """Write all of `data` (text as UTF-8) to `dest` atomically; see `atomic_writer`."""
    with atomic_writer(dest, root, durable=durable) as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


def open_regular(
    path: Path, root: Path | None, *, follow: bool = False, real_root: str | None = None
) -> io.BufferedReader:
    """Open a file to read only if it is a regular file inside `root` (OSError otherwise).

    `follow`: a link at `path` is followed (a spec's own files, whose links the spec layer
    checks against its folder); otherwise it is refused (what lies in a run folder).
    `real_root` as for `is_inside`.
    """
    if root is not None and not is_inside(path, root, real_root=real_root):
        raise OSError(errno.EACCES, "outside the run folder", str(path))
    fd = os.open(path, (_READ & ~_NOFOLLOW) if follow else _READ)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "a folder, not a file", str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_regular(
    path: Path, limit: int, root: Path | None = None, *, follow: bool = False
) -> bytes:
    """All of a regular file (inside `root`, if given) of at most `limit` bytes; OSError for a
    FIFO, a device or a larger file, before anything waits or fills memory."""
    with open_regular(path, root, follow=follow) as handle:
        if os.fstat(handle.fileno()).st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit:,} bytes", str(path))
        data = handle.read(limit + 1)  # a file that grows while read stops at the limit too
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit:,} bytes", str(path))
    return data


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable, where the OS allows syncing a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# Linux's renameat2 flag that swaps two paths in one step (glibc 2.28 and later).
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def swap_folder(built: Path, dest: Path) -> Path:
    """Put the folder `built` at `dest`, where a folder is already; return where the old one
    went (beside `dest`, for the caller to remove).

    Where Linux allows it the two are exchanged in one step, so a reader sees the old folder or
    the new one and never neither; elsewhere the old one is renamed aside first, leaving `dest`
    missing for the moment between two renames.
    """
    aside = dest.with_name(f".{dest.name}.{os.getpid()}.old")
    if _exchange(built, dest):
        os.replace(built, aside)  # `built` now holds the old folder
        return aside
    os.replace(dest, aside)
    os.replace(built, dest)
    return aside


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically with renameat2(RENAME_EXCHANGE); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # not Linux, or a C library without it
        return False
    done = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # kernel or file system says no
        return False
    raise OSError(code, os.strerror(code), str(second))


def _link_refused(error: OSError, path: Path) -> OSError:
    # O_NOFOLLOW on a link fails with ELOOP, whose own wording ("too many levels of symbolic
    # links") sends people looking for a loop.
    if error.errno == errno.ELOOP:
        return OSError(errno.ELOOP, "it is a link, and batchrun does not write through links")
    return error
