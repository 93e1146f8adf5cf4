"""HTTP for downloads: one connection pool shared by the workers, retries with exponential
backoff and jitter, bodies checked against the length the server announced, and a deadline for
each file.

A body shorter than its ``Content-Length`` is a failure, never a file: :func:`fetch_file` writes
under a temporary name of its own (two fetches of one file never share one) and renames only a
complete body; :func:`fetch_resumable` keeps a ``.part`` file across tries and runs and continues
it with an HTTP Range request.

The read timeout catches a host gone silent; a host that trickles a byte now and then is never
silent, so each transfer also has a deadline scaled by its size (:meth:`RetryPolicy.deadline`),
checked as each piece of the body arrives (``read1``: a piece is what one receive gave, so a
trickle is seen byte by byte, not after 64 KiB).
"""

from __future__ import annotations

import os
import random
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar
from urllib.parse import urlsplit

import urllib3

from explorer.errors import Cancelled, DownloadError
from explorer.paths import storage_guard

CHUNK = 1 << 16
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a request is tried again.

    Args:
        attempts: tries per file against 5xx and 429 answers, resets, timeouts and short bodies.
        connect_attempts: tries before a host not reached yet in this run counts as unreachable
            (offline, wrong name): failing in seconds beats retrying for minutes.
        backoff: the first wait in seconds; it doubles with each try, up to ``max_wait``, and a
            random part of it is dropped (jitter) so that the workers do not retry in step.
        max_wait: the longest wait between two tries, in seconds.
        timeout: seconds allowed to connect, and the longest silence while reading.
        deadline_floor: seconds any transfer may take, however small (see :meth:`deadline`).
        min_rate: the slowest transfer accepted, in bytes per second, beyond ``deadline_floor``:
            20 kB/s gives COCO's 241 MB annotation zip 3.4 hours and a 160 kB image 68 s.
    """

    attempts: int = 8
    connect_attempts: int = 3
    backoff: float = 0.5
    max_wait: float = 30.0
    timeout: float = 30.0
    deadline_floor: float = 60.0
    min_rate: float = 20_000.0

    def wait(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (0-based)."""
        return min(self.max_wait, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)

    def deadline(self, size: int) -> float:
        """Seconds a transfer of ``size`` bytes may take in all: a host trickling a byte now and
        then, never silent for ``timeout``, is stopped here."""
        return self.deadline_floor + size / self.min_rate


class HostUnreachable(DownloadError):
    """No connection could be made to the host."""


class FileFailed(DownloadError):
    """One file failed for good (an HTTP error, or every retry spent); the others may go on."""


class _Transient(Exception):
    """A failure worth another try."""


class _ConnectFailed(_Transient):
    """No connection was made (refused, no route, unknown name, connect timeout)."""


def host_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what an error about the host names."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Client:
    """A thread-safe connection pool with the retry policy and a cancel flag.

    Args:
        policy: retries and timeouts.
        workers: connections kept open per host (one per worker thread).
        cancel: set to stop every transfer at its next chunk; a new event when None.
    """

    def __init__(
        self, policy: RetryPolicy, workers: int, cancel: threading.Event | None = None
    ) -> None:
        self.policy = policy
        self.workers = max(1, workers)
        self.cancel = cancel if cancel is not None else threading.Event()
        self.reached = False  # any answer from the host in this run: later connect errors are
        # hiccups worth the full retries, not an unreachable host
        self._pool = urllib3.PoolManager(
            maxsize=self.workers,
            retries=False,
            timeout=urllib3.Timeout(connect=policy.timeout, read=policy.timeout),
            # identity: the announced length is then the length of the bytes written
            headers={"Accept-Encoding": "identity", "User-Agent": "coco-explorer"},
        )

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("download stopped")

    def get(self, url: str, headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
        """Send one GET and return the response unread; 5xx and 429 raise ``_Transient``, other
        answers come back for the caller to judge."""
        try:
            r = self._pool.request(
                "GET", url, headers=headers, preload_content=False, decode_content=False
            )
        except urllib3.exceptions.NewConnectionError as e:
            raise _ConnectFailed(str(e).split(": ", 1)[-1]) from None
        except urllib3.exceptions.ConnectTimeoutError:
            raise _ConnectFailed("timed out while connecting") from None
        except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as e:
            raise _Transient(str(e)) from None
        self.reached = True
        if r.status >= 500 or r.status == 429:
            discard(r)
            raise _Transient(f"HTTP {r.status}")
        return r

    def retrying(self, url: str, attempt: Callable[[], T]) -> T:
        """``attempt()`` tried until it succeeds, waiting ``policy.wait`` between tries.

        Raises:
            HostUnreachable: no connection could be made to a host not reached before.
            FileFailed: every try failed.
            Cancelled: the cancel flag was set.
        """
        connect_failures = 0
        last: _Transient | None = None  # _ConnectFailed is one too
        for n in range(self.policy.attempts):
            self.check_cancel()
            try:
                return attempt()
            except _ConnectFailed as e:
                connect_failures, last = connect_failures + 1, e
                if not self.reached and connect_failures >= self.policy.connect_attempts:
                    break
            except _Transient as e:
                last = e
            if self.cancel.wait(self.policy.wait(n)):
                self.check_cancel()
        everything_refused = connect_failures == self.policy.attempts
        if isinstance(last, _ConnectFailed) and (not self.reached or everything_refused):
            raise HostUnreachable(f"{host_of(url)}: cannot reach the host ({last})")
        raise FileFailed(f"{url}: {last} (gave up after {self.policy.attempts} tries)")

    def stream_into(
        self,
        r: urllib3.BaseHTTPResponse,
        f: BinaryIO,
        expected: int | None,
        on_bytes: Callable[[int], None],
    ) -> int:
        """Copy the body of ``r`` into ``f``; the number of bytes written.

        Raises ``_Transient`` when the connection breaks, the body is shorter than ``expected``
        or its deadline passes (:meth:`RetryPolicy.deadline` of ``expected``, or of the bytes
        received so far when no length was announced); errors writing ``f`` (a full disk) pass
        unchanged.
        """
        n, started = 0, time.monotonic()
        try:
            while True:
                self.check_cancel()
                try:
                    chunk = r.read1(CHUNK, decode_content=False)
                except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as e:
                    raise _Transient(f"connection lost after {n} bytes ({e})") from None
                if not chunk:
                    break
                f.write(chunk)
                n += len(chunk)
                on_bytes(len(chunk))
                self._check_deadline(started, n, expected)
        except BaseException:
            discard(r, broken=True)
            raise
        r.release_conn()
        if expected is not None and n != expected:
            raise _Transient(f"short body: {n} of {expected} bytes")
        return n

    def _check_deadline(self, started: float, n: int, expected: int | None) -> None:
        elapsed, size = time.monotonic() - started, max(n, expected or 0)
        allowed = self.policy.deadline(size)
        if elapsed > allowed:
            of = f"{n:,} of {expected:,}" if expected is not None else f"{n:,}"
            raise _Transient(
                f"too slow: {of} bytes in {elapsed:.1f} s, past this file's deadline of "
                f"{allowed:.1f} s ({self.policy.deadline_floor:g} s + "
                f"{self.policy.min_rate / 1000:g} kB/s)"
            )


def discard(r: urllib3.BaseHTTPResponse, broken: bool = False) -> None:
    """Give the connection of a response not read to its end back to the pool in a state it
    can be reused from: a short body read to its end, a broken one closed (else the next
    request on it fails with ResponseNotReady)."""
    if broken:
        r.close()
    else:
        r.drain_conn()
    r.release_conn()


def _length(r: urllib3.BaseHTTPResponse) -> int | None:
    value = r.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def _refuse(url: str, r: urllib3.BaseHTTPResponse) -> FileFailed:
    discard(r)
    return FileFailed(f"{url}: HTTP {r.status} {r.reason or ''}".rstrip())


def fetch_file(client: Client, url: str, dest: Path, on_bytes: Callable[[int], None]) -> int:
    """Download ``url`` to ``dest`` (through a temporary name, renamed when complete); the
    number of bytes.

    Args:
        client: the pool, retry policy and cancel flag.
        url: what to fetch.
        dest: the final path; it exists only once every announced byte has arrived.
        on_bytes: called with each chunk's size, from this thread.

    Raises:
        FileFailed, HostUnreachable, Cancelled: as :meth:`Client.retrying`.
        StorageError: the disk is full (the temporary is removed).
    """
    tmp = own_temporary(dest)

    def attempt() -> int:
        r = client.get(url)
        if r.status != 200:
            raise _refuse(url, r)
        with storage_guard(dest.parent), open(tmp, "wb") as f:
            n = client.stream_into(r, f, _length(r), on_bytes)
        os.replace(tmp, dest)
        return n

    try:
        return client.retrying(url, attempt)
    finally:
        tmp.unlink(missing_ok=True)


def own_temporary(dest: Path) -> Path:
    """A temporary beside ``dest`` that no other fetch uses: two fetches of one file (two
    downloads into one folder, in one process) never write one file. Its name is not built from
    ``dest``'s (a name near the folder's limit has no room for more) and ends in the process id,
    so :func:`explorer.paths.remove_stale_temporaries` removes it once its writer is gone."""
    return dest.with_name(f".download-{secrets.token_hex(8)}.{os.getpid()}.tmp")


_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-\d+|\*)/(\d+)")


def fetch_resumable(
    client: Client,
    url: str,
    part: Path,
    on_total: Callable[[int, int], None],
    on_bytes: Callable[[int], None],
) -> int:
    """Download ``url`` into ``part``, continuing what ``part`` already holds with a Range
    request (after a failed try, or a run stopped or killed before); the file's size.

    Args:
        client: the pool, retry policy and cancel flag.
        url: what to fetch.
        part: the partial file; complete, by the announced length, when this returns.
        on_total: called with (total bytes, bytes already held) once the server says.
        on_bytes: called with each chunk's size.

    Raises:
        FileFailed, HostUnreachable, Cancelled: as :meth:`Client.retrying`.
        StorageError: the disk is full (``part`` keeps what arrived).
    """

    def attempt() -> int:
        have = part.stat().st_size if part.exists() else 0
        r = client.get(url, {"Range": f"bytes={have}-"} if have else None)
        total = _resume_point(url, r, have, part)
        if total == have:
            on_total(total, have)
            return total
        start = have if r.status == 206 else 0
        on_total(total, start)
        with storage_guard(part.parent), open(part, "ab" if start else "wb") as f:
            client.stream_into(r, f, total - start, on_bytes)
        return total

    return client.retrying(url, attempt)


def _resume_point(url: str, r: urllib3.BaseHTTPResponse, have: int, part: Path) -> int:
    """The file's total size from an answer to a (possibly ranged) GET; raises ``_Transient``
    (and drops ``part``) when the answer does not continue ``part``."""
    m = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range", "").strip())
    if r.status == 416 and m:
        discard(r)
        if int(m[2]) == have:
            return have  # the part is whole already: a run died between the last byte and rename
        part.unlink(missing_ok=True)
        raise _Transient(f"{part.name} is larger than the file on the host: started again")
    if r.status == 206 and m and m[1] is not None and int(m[1]) == have:
        return int(m[2])
    length = _length(r)
    if r.status == 200 and length is not None:
        return length
    if r.status in (200, 206):
        discard(r, broken=True)
        raise _Transient(f"HTTP {r.status} without a usable length or range")
    raise _refuse(url, r)
