"""Where tinyhub's messages go. Library code logs to the `tinyhub.*` loggers and never prints; this module holds
the two places that decide on handlers: the command line's console, and a run's own train.log."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

ROOT = "tinyhub"
_PLAIN = logging.Formatter("%(message)s")


def _console_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_PLAIN)
    handler.set_name("tinyhub-console")
    return handler


def console_logging() -> None:
    """The `tinyhub` command's console: INFO messages of the tinyhub loggers as plain lines on stdout."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(logging.INFO)
    if not any(h.get_name() == "tinyhub-console" for h in logger.handlers) and not logging.getLogger().handlers:
        logger.addHandler(_console_handler())


@contextlib.contextmanager
def run_log(path: Path | None):
    """During one training run, copy the tinyhub messages into `path` (train.log; None on non-main processes).

    Called as a library (a notebook, a test) with no logging set up anywhere, the messages also go to stdout for
    the run's duration, as the command line shows them; an application's own logging setup is left alone."""
    logger = logging.getLogger(ROOT)
    added: list[logging.Handler] = []
    old_level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    if path is not None:
        file_handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        added.append(file_handler)
    if not _reaches_a_console(logger):
        added.append(_console_handler())
    for handler in added:
        logger.addHandler(handler)
    try:
        yield logger
    finally:
        for handler in added:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(old_level)


def _reaches_a_console(logger: logging.Logger) -> bool:
    """Whether some handler on the way up (other than a file) already shows this logger's messages."""
    node: logging.Logger | None = logger
    while node is not None:
        if any(not isinstance(h, logging.FileHandler) for h in node.handlers):
            return True
        if not node.propagate:
            return False
        node = node.parent
    return False
