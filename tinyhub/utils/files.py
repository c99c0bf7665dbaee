"""Atomic file writes: a reader sees the old file or the new one, never half of either (a killed process, a full
disk). The one helper every writer of a file that others read uses. Folders of output the user names are written
the same way, and only ever replace a folder tinyhub made."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

from tinyhub.errors import TinyhubError, UsageError

#: Inside every output folder tinyhub writes whole (a dry run's upload folder): it made the folder and may replace
#: it. A folder without it that holds anything is the user's, and is never replaced or deleted. Its first line
#: says what kind of folder it is ("kind: upload").
OUTPUT_MARKER = ".tinyhub-output"

#: The kinds of output folder, as a note that skips one names them. None of them is a run, though an upload folder
#: holds a copy of one's results.json and a sweep folder holds its trials' runs.
OUTPUT_KINDS = {
    "upload": "an upload folder of `tinyhub push --dry-run`",
    "uploads": "the upload folders of `tinyhub push --all --dry-run`",
    "comparison": "a comparison of `tinyhub compare`",
    "evaluation": "an evaluation of `tinyhub evaluate`",
    "sweep": "a sweep folder of `tinyhub sweep`",
    "export": "the exports of `tinyhub export`",
}


class OutputFolderError(UsageError, FileExistsError):
    """An output folder the user named holds files tinyhub did not write."""


class DiskFullError(TinyhubError, OSError):
    """The disk filled up while tinyhub wrote something; what was half written has been removed."""

    def __str__(self) -> str:  # OSError's own formatting would show its arguments as a tuple
        return self.args[0]


#: Free space under which a failed write is taken for a full disk, whatever the writer said (torch's C++ writer
#: reports ENOSPC as "basic_ios::clear").
NEARLY_FULL = 1 << 20


def is_disk_full(error: BaseException, folder: str | Path | None = None) -> bool:
    """ENOSPC (or a full quota) however the library that wrote reports it, or any write error in `folder` while
    its disk has less than NEARLY_FULL bytes free."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(seen) or "os error 28" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    if folder is not None:
        with contextlib.suppress(OSError):
            return shutil.disk_usage(_existing(Path(folder))).free < NEARLY_FULL
    return False


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@contextlib.contextmanager
def full_disk_is_one_error(folder: str | Path, what: str, needed: int | None = None, then: str = ""):
    """A full disk while writing `what` into `folder` becomes one DiskFullError naming the folder, the space free
    and (when known) the space needed. Other errors pass unchanged. The caller removes what was half written."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as e:
        if not is_disk_full(e, folder):
            raise
        raise DiskFullError(disk_full_message(folder, what, needed, then)) from e


def disk_full_message(folder: str | Path, what: str, needed: int | None = None, then: str = "") -> str:
    free = None
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(_existing(Path(folder))).free
    return (f"the disk is full: writing {what} to {folder} failed"
            + (f" with {_size(free)} free" if free is not None else "")
            + (f"; it needs about {_size(needed)}" if needed else "")
            + ". Nothing half-written was left behind; free some space and run the command again"
            + (f" ({then})" if then else "") + ".")


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


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


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks: the one helper for weights, data files and uploads."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def replace_between(path: str | Path, begin: str, end: str, body: str) -> None:
    """Replace what lies between the markers `begin` and `end` in a text file (a README's generated block)."""
    text = Path(path).read_text()
    start, stop = text.index(begin) + len(begin), text.index(end)
    write_text_atomic(path, text[:start] + "\n" + body + text[stop:])


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


#: What a model argument may be, for the error line of one that is none of them.
#: How to train without a network, said wherever data cannot be found.
OFFLINE_HINT = (
    "To train offline, point tinyhub at the four MNIST IDX files (.gz or raw): "
    "pass --data-dir /path/to/mnist to the command (every tinyhub command takes it), or set TINYHUB_DATA_DIR."
)
MODEL_ARGUMENT_HINT = "Give a run directory, a model folder or a Hub repo id (NAMESPACE/NAME[@revision])."

#: Endings of a file's name: a model argument ending so names a file here, never a Hub repo.
_FILE_SUFFIXES = (".json", ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".yaml", ".yml", ".onnx", ".txt", ".gz")


def missing_local_path(spec: str) -> str | None:
    """When `spec` (a model argument: a folder here or a Hub repo id NAMESPACE/NAME[@revision]) reads as a path on
    this machine and nothing is there, one sentence naming what is missing; else None (it exists, or it is a repo
    id). A path: it starts with . / or ~, holds a backslash or more than one /, ends in a file name, or its first
    part is a folder here (`runs/model4-s0` where ./runs exists)."""
    path = Path(spec).expanduser()
    if path.exists():
        return None
    first = spec.split("/", 1)[0]
    local = (spec.startswith((".", "/", "~")) or "\\" in spec or spec.count("/") > 1
             or spec.lower().endswith(_FILE_SUFFIXES) or ("/" in spec and Path(first).expanduser().is_dir()))
    if not local:
        return None
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    near = []
    with contextlib.suppress(OSError):
        import difflib

        names = sorted(p.name for p in parent.iterdir() if not p.name.startswith("."))
        relative = path.relative_to(parent).parts[0] if path.is_relative_to(parent) else path.name
        near = difflib.get_close_matches(relative, names, n=3, cutoff=0.5)
    hint = f" (in {parent}: {', '.join(near)})" if near else ""
    return f"{spec} does not exist{hint}"


def check_output_folder(path: str | Path, own: tuple[str, ...] = ()) -> None:
    """`path` may become a folder tinyhub writes: it is absent, an empty folder, a folder tinyhub made (marked), or
    one that holds only files named like tinyhub's outputs there (`own`: glob patterns; folders written before the
    marker existed). Anything else (a file, a link, a folder of the user's) raises OutputFolderError with the fix."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise OutputFolderError(f"{path} exists and is not a folder tinyhub made; give a new folder, or an empty "
                                "one, as the output.")
    if path.is_dir() and not (path / OUTPUT_MARKER).is_file():
        theirs = [p.name for p in path.iterdir() if not (p.is_file() and any(p.match(g) for g in own))]
        if theirs:
            raise OutputFolderError(f"{path} already holds files that tinyhub did not write ({', '.join(theirs[:3])}"
                                    f"{', ...' if len(theirs) > 3 else ''}), and tinyhub never replaces them; give a "
                                    "new or empty folder as the output (or move that one away first).")


def claim_output_folder(path: str | Path, kind: str, own: tuple[str, ...] = ()) -> Path:
    """A folder tinyhub adds its outputs to (evaluations, comparisons): checked as check_output_folder says,
    created, and marked as tinyhub's folder of this `kind` (a key of OUTPUT_KINDS)."""
    path = Path(path)
    check_output_folder(path, own)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / OUTPUT_MARKER).is_file():
        mark_output_folder(path, kind)
    return path


def mark_output_folder(folder: Path, kind: str) -> None:
    """Say in `folder` that tinyhub wrote it, and what it is (a key of OUTPUT_KINDS)."""
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown kind of output folder {kind!r}")
    (Path(folder) / OUTPUT_MARKER).write_text(f"kind: {kind}\nWritten by tinyhub, which may add to or replace what "
                                              "is in this folder. Files of your own belong elsewhere.\n")


def output_kind(folder: str | Path) -> str | None:
    """What a folder tinyhub wrote, other than a run, is ("an upload folder of `tinyhub push --dry-run`"), or None
    for anything else (a run, a folder of the user's). Commands that take globs of runs skip these with a note."""
    folder = Path(folder)
    marker = folder / OUTPUT_MARKER
    if marker.is_file() and not marker.is_symlink():
        with contextlib.suppress(OSError):
            first = marker.read_text(errors="replace").split("\n", 1)[0]
            return OUTPUT_KINDS.get(first.removeprefix("kind: ").strip(), "a folder of tinyhub's outputs")
        return "a folder of tinyhub's outputs"
    if (folder / "sweep_config.yaml").is_file():  # a sweep from before the marker
        return OUTPUT_KINDS["sweep"]
    return None


def output_kind_above(path: str | Path, root: str | Path) -> tuple[Path, str] | None:
    """The outermost folder from `root` (excluded) down to `path` that output_kind recognises, with its kind."""
    path, root = Path(path), Path(root)
    with contextlib.suppress(ValueError):
        folder = root
        for part in path.relative_to(root).parts:
            folder = folder / part
            kind = output_kind(folder)
            if kind:
                return folder, kind
    return None


@contextlib.contextmanager
def output_folder(path: str | Path, kind: str):
    """Yields a new temporary folder beside `path`; fill it, and on leaving the block it becomes `path`, marked as
    tinyhub's. Only an absent or empty folder, or one tinyhub made, is replaced (checked before and again at the
    end). On an error the temporary folder is removed and `path` is untouched."""
    path = Path(path)
    check_output_folder(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        mark_output_folder(tmp, kind)
        check_output_folder(path)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
