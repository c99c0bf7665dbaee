"""How a recorded run is started again: its command line. The records say what ran (overrides, processes, device);
the command that runs it is said here, once, for the report and the card."""

from __future__ import annotations

import shlex


def train_command(record, *, data_dir: str | None = None, replace: dict[str, str] | None = None) -> str:
    """The command that trains `record`'s recipe again (a RunRecord): the launcher for its process count, its
    overrides (a value in `replace`, by key, is written instead of the recorded one, or added) and `--data-dir` when given.

    Several CPU processes start with torchrun (`accelerate launch` starts one process on a machine without GPUs);
    several GPUs with `accelerate launch`, given every value it would otherwise pick and announce."""
    args, replace = [], dict(replace or {})
    for arg in record.overrides:
        key = arg.partition("=")[0]
        args.append(f"{key}={replace.pop(key)}" if key in replace else arg)
    args += [f"{key}={shlex.quote(value)}" for key, value in replace.items()]  # not recorded: where, not what
    if data_dir:
        args.append(f"--data-dir {shlex.quote(data_dir)}")
    launcher = "tinyhub train"
    if record.world_size > 1 and record.device == "cpu":
        launcher = f"torchrun --nproc_per_node {record.world_size} -m tinyhub train"
    elif record.world_size > 1:
        launcher = (f"accelerate launch --multi_gpu --num_processes {record.world_size} --num_machines 1 "
                    f"--mixed_precision {record.mixed_precision} --dynamo_backend no -m tinyhub train")
    return " ".join([launcher, *args])
