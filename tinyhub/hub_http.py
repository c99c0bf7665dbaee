"""Every request tinyhub makes to the Hub has a time limit, and a Hub that does not answer is asked once, not again
and again: huggingface_hub's own client waits for ever (no timeout) and retries a timeout or a refused connection
five times with back-off, so a Hub that accepts connections and never answers used to hang a push for many minutes.

`use_hub_timeouts()` installs, once per process, huggingface_hub's client with
- a connect and a read timeout of TINYHUB_HUB_TIMEOUT seconds (default 10) on every request, and
- a breaker: once a host has failed to connect or to answer in time, further requests to it in this process fail
  at once (huggingface_hub's retries then cost only their short waits), so a silent Hub ends any command within
  about a minute with one error line. Answers the Hub does give, such as 429 and 5xx, are retried as before.

tinyhub calls it before its own Hub requests (loading a model, pushing, loading a Hub dataset).
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from tinyhub.errors import UsageError

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
            return httpx.Client(event_hooks=hooks, follow_redirects=True, timeout=httpx.Timeout(timeout),
                                transport=_BreakerTransport(httpx.HTTPTransport(), breaker))

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


def unanswered_note() -> str:
    """For an error line: the Hub hosts that did not answer in this process and what to do ("" if none)."""
    breaker = _breaker
    if breaker is None or not breaker.failed:
        return ""
    hosts = ", ".join(f"{host} ({why})" for host, why in sorted(breaker.failed.items()))
    return (f" (The Hub did not answer: {hosts}. Check the connection or HF_ENDPOINT; {TIMEOUT_ENV}=SECONDS waits "
            "longer, HF_HUB_OFFLINE=1 uses what is already downloaded.)")


class _Breaker:
    """Hosts that did not connect or answer in time, and the error they gave."""

    def __init__(self, httpx):
        self.httpx = httpx
        self.failed: dict[str, str] = {}
        self.lock = threading.Lock()


class _BreakerTransport:
    """Sends through `inner`, unless the host has already failed in this process: then fails at once."""

    def __init__(self, inner, breaker: _Breaker):
        self.inner, self.breaker = inner, breaker

    def handle_request(self, request):
        httpx, host = self.breaker.httpx, f"{request.url.scheme}://{request.url.netloc.decode()}"
        with self.breaker.lock:
            failed = self.breaker.failed.get(host)
        if failed:
            raise httpx.ConnectError(f"{host} did not answer before ({failed}); not asking again", request=request)
        try:
            return self.inner.handle_request(request)
        except (httpx.TimeoutException, httpx.ConnectError) as e:
            with self.breaker.lock:
                self.breaker.failed[host] = type(e).__name__
            raise

    def close(self):
        self.inner.close()

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *args):
        self.inner.__exit__(*args)
