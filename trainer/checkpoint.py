"""Checkpoints written atomically (temporary name, then rename), rotated, and found again for resume."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from tinyhub.errors import TinyhubError
from tinyhub.utils.files import full_disk_is_one_error

CHECKPOINT_RE = re.compile(r"^epoch_(\d+)$")
STATE_FILE = "trainer_state.json"
EMA_FILE = "ema.safetensors"


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first. A directory only gets its final name once fully written."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_dir() and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


class CheckpointError(TinyhubError, RuntimeError):
    """No usable checkpoint to resume from."""


def older_or_equal(run_dir: Path, newest: Path) -> list[Path]:
    """Complete checkpoints from `newest` back to the oldest: the order resume tries them in."""
    newest_epoch = int(CHECKPOINT_RE.match(Path(newest).name).group(1))
    return [p for epoch, p in reversed(list_checkpoints(run_dir)) if epoch <= newest_epoch]


def _fsync_tree(folder: Path) -> None:
    """Flush every file of a checkpoint and the folder itself to disk, so the rename that publishes it can
    never point at data still in the page cache (a power cut would otherwise leave a "complete" empty file)."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


LOCK_FILE = ".tinyhub.lock"


class RunDirBusy(TinyhubError, RuntimeError):
    """Another live process is training in this run directory."""


def lock_run_dir(run_dir: Path) -> int:
    """Own `run_dir` for as long as the returned descriptor stays open (close it to release).

    An advisory lock (flock) on run_dir/.tinyhub.lock: the kernel releases it when its process dies, however it
    dies, so the lock of a killed run is taken over by the next one without guessing about stale files."""
    import fcntl
    import socket
    import time

    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise RunDirBusy(f"run.dir={str(run_dir)!r} is being trained right now ({holder}); wait for it to finish, "
                         "or choose another run.dir.") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
             .encode())
    return fd


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint(accelerator, run_dir: Path, epoch: int, trainer_state: dict, keep: int, *, scheduler=None,
                    ema=None) -> Path:
    """Every rank calls this (accelerate writes per-rank RNG files); only the main process renames/rotates.
    The scheduler's state goes into trainer_state.json, the EMA weights into ema.safetensors."""
    root = checkpoint_dir(run_dir)
    final = root / f"epoch_{epoch}"
    tmp = root / f".epoch_{epoch}.tmp"
    previous = latest_checkpoint(run_dir)
    needed = sum(f.stat().st_size for f in previous.iterdir()) if previous else None
    # A full disk: the half-written checkpoint goes, the complete ones stay, and the error says so in one line.
    with full_disk_is_one_error(root, f"the checkpoint of epoch {epoch}", needed,
                                "training.resume=auto continues from the last complete checkpoint"):
        try:
            if accelerator.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a write that was killed
                tmp.mkdir(parents=True)
            accelerator.wait_for_everyone()
            accelerator.save_state(str(tmp), safe_serialization=True)
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                if scheduler is not None:
                    trainer_state = {**trainer_state, "scheduler": scheduler.state_dict()}
                if ema is not None:
                    save_file({k: v.detach().cpu().contiguous() for k, v in ema.state_dict().items()},
                              str(tmp / EMA_FILE))
                (tmp / STATE_FILE).write_text(json.dumps(trainer_state, indent=1))
                _fsync_tree(tmp)
                if final.exists():
                    shutil.rmtree(final)
                os.replace(tmp, final)  # the checkpoint becomes visible only when complete, and on disk
                _fsync_dir(root)
        except BaseException:
            if accelerator.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
    if accelerator.is_main_process:
        for _, old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


#: What a tinyhub checkpoint holds. The two pickles are Accelerate's, and Accelerate reads them with PyTorch's
#: weights-only unpickler, which refuses anything but tensors and plain containers; nothing else is loaded.
SAFE_FILES = re.compile(r"^(model(_\d+)?\.safetensors|optimizer(_\d+)?\.bin|random_states_\d+\.pkl|scaler\.pt|"
                        r"trainer_state\.json|ema\.safetensors)$")


class UnsafeCheckpoint(TinyhubError, RuntimeError):
    """A checkpoint holds a file tinyhub never writes (such as a pickle that would run code when loaded)."""


def refuse_unsafe_files(checkpoint: Path) -> None:
    strange = sorted(p.name for p in Path(checkpoint).iterdir() if not SAFE_FILES.match(p.name))
    if strange:
        raise UnsafeCheckpoint(
            f"{checkpoint} holds {strange}, which tinyhub never writes; loading such files could run code (a "
            "pickle), so the checkpoint is refused. It was made by another program (or an older tinyhub) or "
            "changed since: resume only from checkpoints this tinyhub wrote, or start a new run.dir.")


def check_readable(checkpoint: Path) -> None:
    """Every file of a checkpoint reads, before Accelerate loads it: Accelerate skips random-state files it cannot
    read with a log line, and a resume would then report success on a damaged checkpoint. CheckpointError names
    the file that does not read."""
    from accelerate.utils import load  # torch.load, weights only, with the numpy types Accelerate's files hold
    from safetensors import safe_open

    for path in sorted(Path(checkpoint).iterdir()):
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as f:
                    list(f.keys())
            elif path.suffix in (".pkl", ".bin", ".pt"):
                load(path, map_location="cpu", weights_only=True)
            elif path.name == STATE_FILE:
                json.loads(path.read_text())
        except Exception as e:  # noqa: BLE001 - any failure to read is the answer
            raise CheckpointError(f"{path} cannot be read ({type(e).__name__}: {str(e)[:160]}); the checkpoint is "
                                  "damaged.") from e


def restore_extra_state(checkpoint: Path, saved: dict, *, scheduler=None, ema=None) -> None:
    """The scheduler (from trainer_state.json) and the EMA weights (ema.safetensors) of a checkpoint."""
    if scheduler is not None:
        scheduler.load_state_dict(saved["scheduler"])
    if ema is not None:
        ema.load_state_dict(load_file(str(Path(checkpoint) / EMA_FILE)))


def read_trainer_state(ckpt: Path) -> dict:
    return json.loads((Path(ckpt) / STATE_FILE).read_text())
