"""Datasets and weight files: declared with checksums, resolved offline first, downloaded only as a last resort.

Resolution order for each declared file:

1. mirror folders listed in ``$CORTEXBENCH_MIRRORS`` (``<mirror>/<dataset folder>/<file path>``);
2. the local cache (``$CORTEXBENCH_HOME/data/<dataset folder>/<file path>``);
3. a download from the file's public origin URL (resumable, with a progress bar), unless offline.

A file is used only if its size and sha256 match the declaration; a mismatching file is reported and skipped.
Verified hashes are remembered per (path, size, mtime, inode) so large files are hashed once.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import config
from .errors import ChecksumError, DataError

CHUNK = 1 << 20


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset: its path inside the dataset folder, checksum, size and public origin."""

    path: str
    sha256: str
    size: int
    url: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """A named set of files. ``folder`` is the sub-folder used in mirrors and the cache (default: identifier)."""

    identifier: str
    files: tuple[FileSpec, ...]
    description: str
    license: str = ""
    citation: str = ""
    folder: str = ""
    _by_path: dict[str, FileSpec] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_path", {f.path: f for f in self.files})
        if not self.folder:
            object.__setattr__(self, "folder", self.identifier)

    def file(self, path: str) -> FileSpec:
        try:
            return self._by_path[path]
        except KeyError:
            raise DataError(f"dataset {self.identifier!r} declares no file {path!r}; "
                            f"it declares {len(self.files)} files, e.g. {[f.path for f in self.files[:3]]}") from None

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @classmethod
    def from_manifest(cls, identifier: str, manifest: str | os.PathLike, **kwargs) -> DatasetSpec:
        """Read files from a tab-separated manifest with columns ``path sha256 size url``."""
        with open(manifest, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        files = tuple(FileSpec(r["path"], r["sha256"], int(r["size"]), r.get("url", "")) for r in rows)
        return cls(identifier=identifier, files=files, **kwargs)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class _HashMemo:
    """Persistent memo of file hashes keyed by (path, size, mtime_ns, inode); safe across processes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._memory: dict[tuple, str] = {}

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection | None]:
        try:
            path = config.data_cache_dir() / "verified-hashes.sqlite"
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30)
        except (OSError, sqlite3.Error):
            yield None  # an unwritable cache only costs re-hashing
            return
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS hashes (key TEXT PRIMARY KEY, sha256 TEXT NOT NULL)")
            yield conn
            conn.commit()
        finally:
            conn.close()

    def sha256(self, path: Path) -> str:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            if key in self._memory:
                return self._memory[key]
        skey = repr(key)
        with self._db() as db:
            row = db.execute("SELECT sha256 FROM hashes WHERE key=?", (skey,)).fetchone() if db else None
            digest = row[0] if row else sha256_file(path)
            if db and not row:
                db.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?)", (skey, digest))
        with self._lock:
            self._memory[key] = digest
        return digest


_memo = _HashMemo()


def check_file(path: Path, spec: FileSpec) -> str | None:
    """Return None if ``path`` matches ``spec``, else a short reason."""
    if not path.is_file():
        return "absent"
    size = path.stat().st_size
    if size != spec.size:
        return f"size {size} bytes, declared {spec.size}"
    digest = _memo.sha256(path)
    if digest != spec.sha256:
        return f"sha256 {digest[:16]}..., declared {spec.sha256[:16]}... (corrupt or a different version)"
    return None


def resolve(dataset: DatasetSpec, path: str, *, progress: bool = True) -> Path:
    """Local path of a verified copy of ``dataset``'s file ``path``; downloads it if no verified copy exists."""
    spec = dataset.file(path)
    attempts: list[str] = []
    for mirror in config.mirror_dirs():
        candidate = mirror / dataset.folder / spec.path
        problem = check_file(candidate, spec)
        if problem is None:
            return candidate
        attempts.append(f"mirror {candidate}: {problem}")
    if not config.mirror_dirs():
        attempts.append(f"mirrors: none configured (${config.MIRRORS_ENV} is unset)")
    cached = config.data_cache_dir() / dataset.folder / spec.path
    problem = check_file(cached, spec)
    if problem is None:
        return cached
    attempts.append(f"cache {cached}: {problem}")
    if config.offline():
        attempts.append(f"download: disabled (${config.OFFLINE_ENV} is set)")
    elif not spec.url:
        attempts.append("download: the declaration has no origin URL")
    else:
        try:
            return download(spec.url, cached, sha256=spec.sha256, size=spec.size, progress=progress)
        except DataError as err:
            attempts.append(f"download from {spec.url}: {err}")
    raise DataError(
        f"Cannot obtain file {spec.path!r} of dataset {dataset.identifier!r} (sha256 {spec.sha256}).\n  "
        + "\n  ".join(attempts)
        + f"\nFix: put a verified copy at <mirror>/{dataset.folder}/{spec.path} and list <mirror> in "
        f"${config.MIRRORS_ENV} (CI uses ../shared/data), or allow downloads from {spec.url or 'its origin'}."
    )


def resolve_many(dataset: DatasetSpec, paths: Sequence[str] | None = None, *, progress: bool = True) -> dict[str, Path]:
    """Resolve several files (default: all), with one progress bar."""
    from .progress import bar

    paths = [f.path for f in dataset.files] if paths is None else list(paths)
    files = bar(paths, desc=f"verifying {dataset.identifier}", unit="file", disable=not progress or len(paths) < 20)
    return {p: resolve(dataset, p, progress=progress) for p in files}


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock so that concurrent processes do not download the same file at once."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def download(url: str, dest: Path, *, sha256: str, size: int | None = None, progress: bool = True,
             timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` with resume (HTTP Range), a progress bar and a checksum check.

    Bytes go to ``dest.part`` first; only a file whose sha256 matches is renamed into place.
    """
    import requests

    from .progress import bar as progress_bar

    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    with _file_lock(dest.with_name(dest.name + ".lock")):
        if dest.is_file() and sha256_file(dest) == sha256:  # another process finished it meanwhile
            return dest
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with requests.get(url, stream=True, headers=headers, timeout=timeout) as response:
                if have and response.status_code == 416:  # nothing left to fetch
                    pass
                else:
                    if response.status_code == 200:
                        have = 0  # the server ignored Range: start over
                    elif response.status_code != 206:
                        response.raise_for_status()
                        raise DataError(f"unexpected HTTP status {response.status_code}")
                    with open(part, "ab" if have else "wb") as out, progress_bar(
                        total=size, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                        desc=f"downloading {dest.name}", disable=not progress,
                    ) as bar:
                        for chunk in response.iter_content(CHUNK):
                            out.write(chunk)
                            bar.update(len(chunk))
        except requests.RequestException as err:
            raise DataError(f"{type(err).__name__}: {err} (offline? partial bytes kept in {part} for resume)") from err
        digest = sha256_file(part)
        if digest != sha256:
            part.unlink(missing_ok=True)
            raise ChecksumError(f"downloaded bytes have sha256 {digest}, declared {sha256}; discarded {part}")
        os.replace(part, dest)
    return dest


def verify(dataset: DatasetSpec, *, progress: bool = True) -> list[tuple[str, str | None]]:
    """Check every file of a dataset; returns (path, problem or None) for each."""
    results = []
    for spec in dataset.files:
        try:
            resolve(dataset, spec.path, progress=progress)
            results.append((spec.path, None))
        except DataError as err:
            results.append((spec.path, str(err).splitlines()[0]))
    return results


def iter_declared(datasets: Iterable[DatasetSpec]) -> Iterator[tuple[DatasetSpec, FileSpec]]:
    for dataset in datasets:
        for spec in dataset.files:
            yield dataset, spec
