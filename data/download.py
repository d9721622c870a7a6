"""Download published dataset files into the cache and unpack them, never leaving half a file.

Every write goes to a temporary name in the destination's own directory and is renamed into
place only once it is complete and verified, so whatever carries the final name is whole:

* :func:`download_file` streams a URL into ``.<name>.<random>.part`` (a tqdm bar on a terminal,
  a log line every 10% or 30 s), checks the byte count against Content-Length and the file
  against a known SHA256 (or the MD5 a publisher gives), then renames it. A failed, interrupted
  or mismatching download removes the partial file and raises :class:`InputError`.
* :func:`extract_archive` unpacks a zip or tar(.gz) into ``.<name>.<random>.tmp`` (path-safe:
  zipfile's name sanitising, tarfile's ``data`` filter), runs the caller's checks on the result
  and renames the folder into place; a damaged archive leaves nothing.
* :func:`install_archive` does both for a published archive, and :func:`unpack_local_archive`
  unpacks a copy the user already has. Both write a manifest (:data:`MANIFEST_NAME`) into the
  folder recording where the files came from: URL or path, size, SHA256, and the published sum
  it matched (``None`` when none is known: the SHA256 is then computed and logged, not checked).

Checksums are written ``"sha256:<64 hex>"`` or ``"md5:<32 hex>"``; a bare 64-digit hex string
means SHA256.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import shutil
import string
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from tqdm import tqdm

from reclab.errors import InputError

logger = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 60.0
MANIFEST_NAME = ".reclab-source.json"
ARCHIVE_SUFFIXES: tuple[str, ...] = (".zip", ".tar.gz", ".tgz", ".tar")
_BLOCK = 1 << 20
_LOG_EVERY_S = 30.0
_DIGEST_LENGTHS = {"sha256": 64, "md5": 32}


def parse_checksum(value: str) -> tuple[str, str]:
    """Split a checksum into its algorithm and lower-case hex digest.

    Args:
        value: ``"sha256:<hex>"``, ``"md5:<hex>"`` or a bare 64-digit SHA256 hex string.

    Returns:
        ``(algorithm, hex digest)``.

    Raises:
        ValueError: If the text is not one of those forms.
    """
    text = value.strip().lower()
    algo, sep, digest = text.partition(":")
    if not sep:
        algo, digest = "sha256", text
    if (
        algo not in _DIGEST_LENGTHS
        or len(digest) != _DIGEST_LENGTHS[algo]
        or not set(digest) <= set(string.hexdigits)
    ):
        raise ValueError(f"checksum {value!r} is not 'sha256:<64 hex digits>' or 'md5:<32 hex>'")
    return algo, digest


def file_digests(path: Path, algorithms: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Hash a file once with several algorithms (SHA256 always included).

    Args:
        path: The file.
        algorithms: ``hashlib`` names, e.g. ``("sha256", "md5")``.

    Returns:
        Algorithm -> hex digest.
    """
    hashes = {name: hashlib.new(name) for name in {"sha256", *algorithms}}
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            for digest in hashes.values():
                digest.update(block)
    return {name: digest.hexdigest() for name, digest in hashes.items()}


def verify_checksum(path: Path, checksum: str | None, *, what: str, hint: str) -> str:
    """Check a file against a known checksum (when there is one) and return its SHA256.

    Args:
        path: The file.
        checksum: The published sum (see :func:`parse_checksum`), or None when none is known.
        what: How to name the file in messages.
        hint: How to fix a mismatch, appended to the error message.

    Returns:
        The file's SHA256 hex digest.

    Raises:
        InputError: If the file does not match ``checksum``.
    """
    algo, want = parse_checksum(checksum) if checksum else ("sha256", None)
    digests = file_digests(path, (algo,))
    if want is not None and digests[algo] != want:
        raise InputError(
            f"checksum mismatch for {what} ({path}): {algo.upper()} is {digests[algo]}, the "
            f"published sum is {want}; the file is incomplete or not the published one: {hint}"
        )
    if want is None:
        logger.warning(
            "%s: no published checksum to compare with; its SHA256 is %s (%d bytes)",
            what,
            digests["sha256"],
            path.stat().st_size,
        )
    return digests["sha256"]


@dataclass(frozen=True)
class Downloaded:
    """A completed, verified download.

    Attributes:
        path: Where the file now is.
        size: Its size in bytes.
        sha256: Its SHA256 hex digest.
        checked_against: The published checksum it matched, or None when none was known.
    """

    path: Path
    size: int
    sha256: str
    checked_against: str | None


@dataclass(frozen=True)
class Unpacking:
    """How an archive is installed into a dataset's cache folder.

    Attributes:
        dest_name: Name of the unpacked folder inside the cache folder.
        member_root: The folder inside the archive that becomes that folder (e.g.
            ``"ml-1m"``); None installs the archive's top level.
        keep: Predicate on member names: only matching members are unpacked (None: all).
        check: Called with the unpacked folder before it is renamed into place; raises
            :class:`InputError` when the content is not what was expected.
        what: How to name the archive in logs and messages (None: its file name).
        hint: How to get the data another way, appended to error messages.
    """

    dest_name: str
    member_root: str | None = None
    keep: Callable[[str], bool] | None = None
    check: Callable[[Path], None] | None = None
    what: str | None = None
    hint: str = ""


def _size_text(n_bytes: int | None) -> str:
    """Human-readable size (MiB) or 'size unknown'."""
    return "size unknown" if n_bytes is None else f"{n_bytes / 2**20:.1f} MiB"


class _Progress:
    """A tqdm bar on a terminal plus a log line every 10% or every 30 s (for step logs)."""

    def __init__(self, what: str, verb: str, total: int | None) -> None:
        self.what, self.verb, self.total = what, verb, total
        self.done = 0
        self.started = self.last_log = time.monotonic()
        self.last_tenth = 0
        self.bar = tqdm(
            total=total,
            desc=what,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            leave=False,
            disable=not sys.stderr.isatty(),
        )

    def update(self, n_bytes: int) -> None:
        self.done += n_bytes
        self.bar.update(n_bytes)
        now = time.monotonic()
        tenth = self.done * 10 // self.total if self.total else 0
        if now - self.last_log >= _LOG_EVERY_S or tenth > self.last_tenth:
            self.last_log, self.last_tenth = now, tenth
            rate = self.done / max(now - self.started, 1e-9) / 2**20
            logger.info(
                "%s %s: %s of %s (%.1f MiB/s)",
                self.verb,
                self.what,
                _size_text(self.done),
                _size_text(self.total),
                rate,
            )

    def close(self) -> None:
        self.bar.close()


def _stream(
    url: str, out: BinaryIO, hashes: dict[str, Any], timeout_s: float, what: str, hint: str
) -> int:
    """Copy ``url`` into ``out`` while hashing; return the byte count (checked when known)."""
    request = urllib.request.Request(url, headers={"User-Agent": "reclab-dataset-download"})
    received, total = 0, None
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.strip().isdigit() else None
            logger.info("downloading %s from %s (%s)", what, url, _size_text(total))
            progress = _Progress(what, "downloaded", total)
            try:
                while block := response.read(_BLOCK):
                    out.write(block)
                    for digest in hashes.values():
                        digest.update(block)
                    received += len(block)
                    progress.update(len(block))
            finally:
                progress.close()
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise InputError(
            f"could not download {what} from {url}: {reason} (after {received} bytes); nothing "
            f"was kept: check the network and retry, or {hint}"
        ) from exc
    if total is not None and received != total:
        raise InputError(
            f"the download of {what} from {url} stopped after {received} of {total} bytes (the "
            f"connection closed early); nothing was kept: retry, or {hint}"
        )
    return received


def download_file(
    url: str,
    target: Path,
    *,
    checksum: str | None = None,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
    what: str | None = None,
    hint: str = "download the file by hand and pass its folder as --data-dir",
) -> Downloaded:
    """Download ``url`` to ``target`` atomically, verified against ``checksum`` when known.

    Args:
        url: ``https://``, ``http://`` or ``file://`` URL.
        target: Final path of the file; its directory is created.
        checksum: Published sum of the file (see :func:`parse_checksum`); None computes and logs
            the SHA256 without checking it.
        timeout_s: Socket timeout, in seconds (per blocking read, not for the whole download).
        what: How to name the file in logs and messages (default: its file name).
        hint: How to get the data another way, appended to error messages.

    Returns:
        The completed download.

    Raises:
        InputError: If the download fails, is cut short, or does not match ``checksum``; the
            partial file is removed and ``target`` is left as it was.
    """
    what = what or target.name
    algo, want = parse_checksum(checksum) if checksum else ("sha256", None)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".part", dir=target.parent
    )
    tmp = Path(tmp_name)
    hashes = {name: hashlib.new(name) for name in {"sha256", algo}}
    try:
        with os.fdopen(handle, "wb") as out:
            size = _stream(url, out, hashes, timeout_s, what, hint)
            out.flush()
            os.fsync(out.fileno())
        sha256 = hashes["sha256"].hexdigest()
        if want is not None and hashes[algo].hexdigest() != want:
            raise InputError(
                f"checksum mismatch for {what} downloaded from {url}: {algo.upper()} is "
                f"{hashes[algo].hexdigest()}, the published sum is {want}; the download was "
                f"deleted: retry later, or {hint}"
            )
        if want is None:
            logger.warning(
                "%s: no published checksum to compare with; SHA256 of the download is %s "
                "(%d bytes), recorded in the cache manifest",
                what,
                sha256,
                size,
            )
        else:
            logger.info("%s: %s matches the published sum", what, algo.upper())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return Downloaded(path=target, size=size, sha256=sha256, checked_against=checksum)


def archive_kind(path: Path) -> str | None:
    """Return ``"zip"``, ``"tar"`` or None for a file, from its content (not its name)."""
    if not path.is_file():
        return None
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        return "tar" if tarfile.is_tarfile(path) else None
    except (OSError, tarfile.TarError, EOFError, zlib.error):
        return None


def looks_like_archive(path: Path) -> bool:
    """True when a file name ends in one of :data:`ARCHIVE_SUFFIXES`."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _extract_zip(archive: Path, into: Path, keep: Callable[[str], bool] | None, what: str) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.infolist() if keep is None or keep(m.filename)]
        progress = _Progress(what, "unpacked", sum(m.file_size for m in members))
        try:
            for member in members:
                zf.extract(member, into)  # sanitises absolute and ``..`` names; checks the CRC
                progress.update(member.file_size)
        finally:
            progress.close()


def _extract_tar(archive: Path, into: Path, keep: Callable[[str], bool] | None, what: str) -> None:
    with tarfile.open(archive, "r:*") as tf:
        progress = _Progress(what, "unpacked", None)
        try:
            for member in tf:
                if keep is not None and not keep(member.name):
                    continue
                tf.extract(member, into, filter="data")  # refuses unsafe paths and links
                progress.update(member.size)
        finally:
            progress.close()


def _install_dir(tree: Path, dest: Path) -> None:
    """Rename a finished folder to ``dest``, replacing an older one only once the new one is in."""
    if not dest.exists():
        try:
            os.replace(tree, dest)
        except OSError:
            if not dest.is_dir():  # else a concurrent install of the same files won the rename
                raise
        return
    old = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.old")
    os.replace(dest, old)
    try:
        os.replace(tree, dest)
    except OSError:
        os.replace(old, dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def extract_archive(
    archive: Path, cache_root: Path, how: Unpacking, manifest: dict[str, Any] | None = None
) -> Path:
    """Unpack a zip or tar(.gz) archive into ``cache_root/how.dest_name`` atomically.

    Args:
        archive: The archive file (its kind is read from its content).
        cache_root: The dataset's cache folder.
        how: The folder to create (replaced if it exists, once the new one is complete), the
            members to unpack, the check of the result and how to name the archive.
        manifest: Written as JSON to ``<dest>/<MANIFEST_NAME>`` when given.

    Returns:
        The unpacked folder.

    Raises:
        InputError: If the file is not an archive, is damaged, lacks ``how.member_root`` or
            fails ``how.check``; nothing is left at the destination (an older folder is kept).
    """
    dest = cache_root / how.dest_name
    what, hint, member_root = how.what or archive.name, how.hint, how.member_root
    kind = archive_kind(archive)
    if kind is None:
        raise InputError(f"{what} ({archive}) is not a zip or tar.gz archive; {hint}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        started = time.monotonic()
        try:
            (_extract_zip if kind == "zip" else _extract_tar)(archive, tmp, how.keep, what)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise InputError(
                f"could not unpack {what} ({archive}): {exc}; the archive is damaged or "
                f"incomplete: {hint}"
            ) from exc
        tree = tmp / member_root if member_root else tmp
        if not tree.is_dir():
            found = sorted(p.name for p in tmp.iterdir())[:10]
            raise InputError(
                f"{what} ({archive}) has no {member_root}/ folder (it holds {found}); {hint}"
            )
        if how.check is not None:
            how.check(tree)
        if manifest is not None:
            (tree / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _install_dir(tree, dest)
        logger.info("unpacked %s into %s (%.1f s)", what, dest, time.monotonic() - started)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """Return the manifest of an installed folder, or None when it has none (or a broken one)."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def install_archive(
    url: str,
    cache_root: Path,
    how: Unpacking,
    *,
    archive_name: str,
    checksum: str | None,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Download a published archive into ``cache_root`` and unpack it to ``how.dest_name``.

    The archive is verified (see :func:`download_file`), unpacked (see :func:`extract_archive`)
    and then deleted; the folder carries a manifest with the URL, size, SHA256 and the published
    sum it matched.

    Args:
        url: Where the archive is published.
        cache_root: The dataset's cache folder.
        how: How to unpack it (``how.what`` defaults to ``archive_name``).
        archive_name: File name of the published archive (it is kept only while unpacked).
        checksum: Published sum of the archive, or None when none is known.
        timeout_s: Socket timeout of the download, in seconds.

    Returns:
        The unpacked folder ``cache_root/how.dest_name``.

    Raises:
        InputError: If the download or the unpacking fails; nothing is left in the cache.
    """
    how = replace(how, what=how.what or archive_name)
    # A name of its own (dot-prefixed: never taken for a finished file), so that two processes
    # installing the same dataset at once never unpack or delete each other's archive.
    archive = cache_root / f".{uuid.uuid4().hex}.{archive_name}"
    got = download_file(
        url, archive, checksum=checksum, timeout_s=timeout_s, what=how.what, hint=how.hint
    )
    manifest = {
        "url": url,
        "archive": archive_name,
        "size": got.size,
        "sha256": got.sha256,
        "checked_against": got.checked_against,
        "installed_at": _now(),
    }
    try:
        return extract_archive(archive, cache_root, how, manifest)
    finally:
        archive.unlink(missing_ok=True)


def unpack_local_archive(
    archive: Path, cache_root: Path, how: Unpacking, *, checksum: str | None
) -> Path:
    """Unpack an archive the user already has into ``cache_root/how.dest_name`` (once per content).

    The archive is hashed (and checked against ``checksum`` when one is known); when the cached
    folder's manifest records the same SHA256 it is reused, else the archive is unpacked again.

    Args:
        archive: The user's archive file.
        cache_root: The dataset's cache folder.
        how: How to unpack it (``how.what`` defaults to the archive's file name).
        checksum: Published sum of the archive, or None when none is known.

    Returns:
        The unpacked folder.

    Raises:
        InputError: If the archive does not match ``checksum``, is damaged or lacks files.
    """
    how = replace(how, what=how.what or archive.name)
    sha256 = verify_checksum(archive, checksum, what=how.what, hint=how.hint)
    dest = cache_root / how.dest_name
    recorded = read_manifest(dest)
    if recorded is not None and recorded.get("sha256") == sha256:
        logger.info("%s: reusing %s, unpacked earlier from the same archive", how.what, dest)
        return dest
    manifest = {
        "path": str(archive),
        "archive": archive.name,
        "size": archive.stat().st_size,
        "sha256": sha256,
        "checked_against": checksum,
        "installed_at": _now(),
    }
    return extract_archive(archive, cache_root, how, manifest)
