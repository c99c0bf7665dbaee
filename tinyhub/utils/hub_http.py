"""Every request tinyhub makes to the Hub has a time limit, and a Hub that cannot be reached is tried once, not again
and again: huggingface_hub's own client waits for ever (no timeout) and retries a refused connection or a timeout
five times with back-off (about 25 s of waiting with no network at all).

`use_hub_timeouts()` installs, once per process, huggingface_hub's client with
- a connect and a read timeout of TINYHUB_HUB_TIMEOUT seconds (default 10) on every request, and a deadline of
  DEADLINE_FACTOR times that for the whole answer (connect, headers, body), so that a server dripping a byte at a
  time cannot hold a command for ever;
- a refusal of file answers whose ETag or commit headers are not plain hashes (cache paths are made of them); and
- a breaker: a connection that fails (no network, a name that does not resolve, a refused or timed-out connect)
  raises HubUnreachable at once, which huggingface_hub treats as offline mode and does not retry; every later
  request to that host in this process fails the same way without trying. A Hub that connects but does not answer
  in time is asked once more, then treated the same. Answers the Hub does give, such as 429 and 5xx, are retried
  as before.

tinyhub calls it before its own Hub requests (loading a model, pushing, loading a Hub dataset); `unreachable()`
then says in one sentence which host failed and how to work offline.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time

from huggingface_hub.errors import OfflineModeIsEnabled

from tinyhub.errors import TinyhubError, UsageError

TIMEOUT_ENV = "TINYHUB_HUB_TIMEOUT"
DEFAULT_TIMEOUT = 10.0

_installed = False
_lock = threading.Lock()
_breaker = None  # the process's breaker, once installed


def hub_timeout() -> float:
    """Seconds allowed to connect to the Hub and to wait for each answer (TINYHUB_HUB_TIMEOUT, default 10)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value < 3600:
        raise UsageError(f"{TIMEOUT_ENV}={raw!r}: give the seconds to wait for the Hub, a number above 0 "
                         f"(default {DEFAULT_TIMEOUT:g}).")
    return value


def use_hub_timeouts() -> None:
    """Install the client described above for huggingface_hub (idempotent). With a huggingface_hub that has no
    client factory (before 1.0) it does nothing."""
    global _installed, _breaker
    with _lock:
        if _installed:
            return
        import huggingface_hub

        if not hasattr(huggingface_hub, "set_client_factory"):
            _installed = True
            return
        timeout = hub_timeout()
        from huggingface_hub.utils import _http

        probe = _http.default_client_factory()  # huggingface_hub's own client: its HTTP library and event hooks
        httpx = sys.modules[type(probe).__module__.split(".")[0]]
        hooks = probe.event_hooks
        probe.close()
        breaker = _breaker = _Breaker(httpx)

        def factory():
            inner = httpx.HTTPTransport()
            # Every socket operation waits at most what is left of its request's deadline: a server that sends a
            # byte now and then resets a per-read timeout for ever, but not this. (httpcore's pool takes a network
            # backend; an httpx whose transport keeps no such pool keeps its per-read timeouts alone.)
            try:
                inner._pool = _deadline_pool(inner._pool)
            except (AttributeError, TypeError):
                pass
            return httpx.Client(event_hooks=hooks, follow_redirects=True, timeout=httpx.Timeout(timeout),
                                transport=_BreakerTransport(inner, breaker, deadline=DEADLINE_FACTOR * timeout))

        huggingface_hub.set_client_factory(factory)
        logging.getLogger(_http.__name__).addFilter(_QuietAboutAKnownSilence())
        _installed = True


class _QuietAboutAKnownSilence(logging.Filter):
    """Once a host is known not to answer, huggingface_hub's "Retrying in Ns" lines about it are noise: the
    command's error line says what happened."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (_breaker is not None and _breaker.failed and
                    ("not asking again" in message or message.startswith("Retrying in")))


class UnsafeHubResponse(TinyhubError, RuntimeError):
    """A Hub answer whose file headers are not plain hashes: huggingface_hub would build cache paths from them."""


#: What the Hub's file headers hold: a git blob id (40 hex) or an LFS SHA-256 (64 hex), and a commit id.
_PLAIN_ETAG = re.compile(r"(?:W/)?\"?([0-9a-f]{40}|[0-9a-f]{64})\"?")
_PLAIN_COMMIT = re.compile(r"[0-9a-f]{40}")


def _check_file_headers(response, host: str, path: str) -> None:
    """Refuse a file's answer whose ETag or commit header is anything but a plain hash, before anything is written:
    huggingface_hub makes the blob's and the snapshot's paths in the cache from them, and a hostile or intercepted
    endpoint could send `../` there."""
    etag = response.headers.get("X-Linked-Etag") or response.headers.get("ETag")
    commit = response.headers.get("X-Repo-Commit")
    bad = ((etag is not None and not _PLAIN_ETAG.fullmatch(etag)) and ("ETag", etag)) or \
          ((commit is not None and not _PLAIN_COMMIT.fullmatch(commit)) and ("commit", commit))
    if bad:
        response.close()
        raise UnsafeHubResponse(f"{host} answered {path[:120]} with a {bad[0]} header that is not a plain hash "
                                f"({bad[1][:60]!r}); nothing was written. Is HF_ENDPOINT the Hub (or a proxy that "
                                "rewrites its answers)?")


class HubUnreachable(OfflineModeIsEnabled):
    """The Hub's host could not be reached in this process. An OfflineModeIsEnabled, so that huggingface_hub
    neither retries it nor hides it: downloads fall back to the local cache as they do offline."""


def unreachable() -> str | None:
    """One sentence for an error line when a Hub host failed in this process: which, why, and how to work offline."""
    breaker = _breaker
    if breaker is None or not breaker.failed:
        return None
    hosts = ", ".join(f"{host} ({why})" for host, why in sorted(breaker.failed.items()))
    return (f"the Hub at {hosts} cannot be reached. Check the network (or HF_ENDPOINT); to work offline, "
            "HF_HUB_OFFLINE=1 uses what is already downloaded, a local run or model folder needs no network, and "
            f"--data-dir trains on local IDX files ({TIMEOUT_ENV}=SECONDS waits longer for a slow Hub).")


def describe(error: BaseException) -> str:
    """An error from a Hub request, in words: `unreachable()` when the network failed, else the error's own text."""
    seen = error
    while seen is not None:
        if isinstance(seen, HubUnreachable):
            return unreachable() or str(seen)
        seen = seen.__cause__ or seen.__context__
    return str(error)


def hub_unreachable() -> bool:
    """Whether the Hub is out of reach: offline mode, a host that failed before in this process, or one connection
    attempt to it that fails now (no retries). For libraries that would retry for long (`datasets`)."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    use_hub_timeouts()
    url = urlparse(constants.ENDPOINT)
    host = f"{url.scheme}://{url.netloc}"
    if _breaker is None:
        return False
    if host in _breaker.failed:
        return True
    import socket

    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=min(hub_timeout(), 5.0)).close()
    except (OSError, UnicodeError) as e:
        with _breaker.lock:
            _breaker.failed[host] = type(e).__name__
        return True
    return False


class _Breaker:
    """Hosts that did not connect or answer in time, and the error they gave."""

    def __init__(self, httpx):
        self.httpx = httpx
        self.failed: dict[str, str] = {}
        self.lock = threading.Lock()


class _BreakerTransport:
    """Sends through `inner`, unless the host has already failed in this process: then fails at once."""

    def __init__(self, inner, breaker: _Breaker, deadline: float | None = None):
        self.inner, self.breaker, self.deadline = inner, breaker, deadline

    def handle_request(self, request):
        httpx, host = self.breaker.httpx, f"{request.url.scheme}://{request.url.netloc.decode()}"
        with self.breaker.lock:
            failed = self.breaker.failed.get(host)
        if failed:
            raise HubUnreachable(f"{host} did not answer before ({failed}); not asking again")
        if self.deadline is not None:  # connect, headers and body of this request: all within it
            _deadline.end = time.monotonic() + self.deadline
        try:
            response = self.inner.handle_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:  # no network: trying again will not help
            with self.breaker.lock:
                self.breaker.failed[host] = type(e).__name__
            raise HubUnreachable(f"{host} cannot be reached ({type(e).__name__}: {e})") from e
        except httpx.TimeoutException as e:  # connected, no answer in time: asked once more, then never again
            with self.breaker.lock:
                self.breaker.failed[host] = type(e).__name__
            raise
        if "/resolve/" in request.url.path:  # a file's headers name the cache paths it will be written to
            _check_file_headers(response, host, request.url.path)
        return response

    def close(self):
        self.inner.close()

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *args):
        self.inner.__exit__(*args)


#: A request's whole answer (connect, headers and body) must arrive within this many times TINYHUB_HUB_TIMEOUT.
DEADLINE_FACTOR = 6
_deadline = threading.local()  # .end: the monotonic time this thread's current request must be done by


def _left(timeout: float | None, core) -> float | None:
    """A socket operation's timeout: its own, or what is left of the request's deadline if that is less (`core`:
    the httpcore module of the pool, whose exceptions the HTTP client maps)."""
    end = getattr(_deadline, "end", None)
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise core.ReadTimeout("the Hub's answer did not arrive within the request's deadline "
                                   f"({DEADLINE_FACTOR} x {TIMEOUT_ENV})")
    return left if timeout is None else min(timeout, left)


def _deadline_pool(pool):
    """`pool` (httpcore's ConnectionPool, or huggingface_hub's httpcore2's) again, its sockets opened through a
    backend that applies _left()."""
    core = sys.modules[type(pool).__module__.split(".")[0]]

    class Stream(core.NetworkStream):
        def __init__(self, inner):
            self.inner = inner

        def read(self, max_bytes, timeout=None):
            return self.inner.read(max_bytes, timeout=_left(timeout, core))

        def write(self, buffer, timeout=None):
            return self.inner.write(buffer, timeout=_left(timeout, core))

        def close(self):
            self.inner.close()

        def start_tls(self, ssl_context, server_hostname=None, timeout=None):
            return Stream(self.inner.start_tls(ssl_context, server_hostname, timeout=_left(timeout, core)))

        def get_extra_info(self, info):
            return self.inner.get_extra_info(info)

    class Backend(core.NetworkBackend):
        def __init__(self):
            self.inner = core.SyncBackend()

        def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
            return Stream(self.inner.connect_tcp(host, port, timeout=_left(timeout, core), local_address=local_address,
                                                 socket_options=socket_options))

        def connect_unix_socket(self, path, timeout=None, socket_options=None):
            return Stream(self.inner.connect_unix_socket(path, timeout=_left(timeout, core),
                                                         socket_options=socket_options))

        def sleep(self, seconds):
            self.inner.sleep(seconds)

    return core.ConnectionPool(
        ssl_context=pool._ssl_context, max_connections=pool._max_connections,
        max_keepalive_connections=pool._max_keepalive_connections, keepalive_expiry=pool._keepalive_expiry,
        http1=pool._http1, http2=pool._http2, retries=pool._retries, local_address=pool._local_address,
        uds=pool._uds, socket_options=pool._socket_options, network_backend=Backend())


def repo_id_problem(repo_id, option: str = "--repo-id") -> str | None:
    """What is wrong with a Hub repo id, in one sentence; None when it is NAMESPACE/NAME and valid on the Hub.
    Light (no torch): the command line asks it before anything heavy is imported."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        what = "the dataset" if option == "--dataset-id" else "the model"
        return f"{option} {repo_id!r} must be NAMESPACE/NAME (your user or organisation, then {what})."
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        return f"{option} {repo_id!r} is not a valid Hub repo id: {e}"
    return None
