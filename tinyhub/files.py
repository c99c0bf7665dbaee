"""Atomic file writes: a reader sees the old file or the new one, never half of either (a killed process, a full
disk). The one helper every writer of a file that others read uses."""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yields a temporary path beside `path`; write it, and on leaving the block it replaces `path` in one rename.
    On an error the temporary file is removed and `path` is untouched. The name, `<name>.<pid>.tmp`, says which
    process wrote it, so a leftover from a killed process can be recognised."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, obj, *, sort_keys: bool = False, indent: int = 1) -> None:
    """JSON that every parser reads: NaN and infinities (not JSON) are written as null."""
    write_text_atomic(path, json.dumps(_finite(obj), indent=indent, default=str, allow_nan=False,
                                       sort_keys=sort_keys))


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
