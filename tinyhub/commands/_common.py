"""What every subcommand shares: one `error:` line and the right exit status for expected failures, the shared
spellings of options, and running the Hydra-configured commands (train, sweep) from an argument list."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinyhub.errors import TinyhubError, UsageError
from tinyhub.utils.files import is_disk_full
from tinyhub.utils.hub_http import unreachable

class ArgumentParser(argparse.ArgumentParser):
    """argparse with tinyhub's one `error:` line (and where the options are) instead of a usage block."""

    def __init__(self, prog: str, doc: str | None):
        super().__init__(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)

    def error(self, message: str):
        print(f"error: {message} (`{self.prog} --help` lists the options)", file=sys.stderr)
        raise SystemExit(2)


def fail(error: BaseException) -> int:
    """Print an expected failure as one line and return its exit status (1 run time, 2 usage). In a process
    group, an error that the main process reports for everyone is printed once, by it."""
    if not getattr(error, "reported_by_main", False):
        text, said = str(error), unreachable()
        note = f" ({said})" if said and said not in text else ""  # the network's part, unless the error said it
        print(f"error: {text}{note}", file=sys.stderr)
    return getattr(error, "exit_code", 1)


def run_model_command(body, args) -> int:
    """Run the body of a command that takes a model (run directory, saved folder or Hub repo id) as `args.model`:
    a local path that does not exist is said at once, before torch and the Hub are ever asked."""
    from tinyhub.utils.files import MODEL_ARGUMENT_HINT, missing_local_path

    missing = missing_local_path(args.model)
    if missing:
        return fail(TinyhubError(f"{missing}. {MODEL_ARGUMENT_HINT}"))
    return run_reporting(body, args)


def run_reporting(body, *args) -> int:
    """Run a command's body: expected failures (tinyhub's own, the Hub's answers, network faults) become one
    `error:` line and their exit status; anything else is a bug and keeps its traceback."""
    try:
        return body(*args)
    except TinyhubError as e:
        return fail(e)
    except Exception as e:
        code = hub_failure(e)
        if code is None and is_disk_full(e):  # wherever it happened: one line, not a C++ or Rust traceback
            print(f"error: the disk is full ({type(e).__name__}: {str(e)[:200]}). Free some space and run the "
                  "command again.", file=sys.stderr)
            code = 1
        if code is None:
            raise
        return code


def hub_failure(error: BaseException) -> int | None:
    """Hub answers and network faults, which are run-time failures (1); None for anything else."""
    from huggingface_hub.errors import HfHubHTTPError

    from tinyhub.cards.publish import NETWORK_ERRORS

    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else "?"
        hint = (" Check HF_TOKEN (or `hf auth login`) and that it can write to this namespace."
                if status in (401, 403) else "")
        print(f"error: the Hub answered {status}: {error.server_message or error}.{hint}", file=sys.stderr)
        return 1
    if isinstance(error, NETWORK_ERRORS):
        said = unreachable()
        print(f"error: {said}" if said else
              f"error: could not reach the Hub ({error.__class__.__name__}: {error}). Check the connection (or "
              "HF_ENDPOINT) and run the command again.", file=sys.stderr)
        return 1
    return None


def translate_shared_options(argv: list[str]) -> list[str]:
    """`--data-dir DIR` / `--batch-size N` (or `--opt=value`) -> the Hydra overrides data.dir=DIR, data.batch_size=N:
    the options the configuration declares on its settings."""
    from tinyhub.trainer.schema import TrainConfig, declared

    shared = {d.facts.option: d.key for d in declared(TrainConfig) if d.facts.option}
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in shared:
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{name} needs a value")
                value, i = argv[i + 1], i + 1
            out.append(f"{shared[name]}={value}")
        else:
            out.append(arg)
        i += 1
    return out


def _check_data_dir(given: list[str], overrides: list[str]) -> None:
    """A --data-dir that is not a folder, said before torch and the data code are imported (the overrides' own
    data.dir=... is checked where the data is read)."""
    if not any(a == "--data-dir" or a.startswith("--data-dir=") for a in given):
        return
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun: the main process says it once, later
        return
    value = next(o.partition("=")[2] for o in reversed(overrides) if o.startswith("data.dir="))
    if not Path(value).expanduser().is_dir():
        from tinyhub.utils.files import OFFLINE_HINT

        raise TinyhubError(f"The data folder {value!r} is not a directory. {OFFLINE_HINT}")


#: Hydra's flags that print or plan instead of running one job: its own handling stands for them.
_HYDRA_OWN_FLAGS = ("help", "hydra_help", "version", "cfg", "info", "shell_completion", "multirun",
                    "experimental_rerun", "config_path")


def run_hydra(task, *, config_name: str, argv: list[str], prog: str, schema: type | None = None,
              typed: bool = True) -> int:
    """Run `task(cfg)` with `argv` as the command line (overrides, --config-dir, --help, ...): cfg is the checked
    TrainConfig (`typed`), or the composition itself (a sweep's, which its own checks type).

    The configuration is composed once, here, so a mistake in it (an unknown recipe or key, a value of the wrong
    type) is one `error:` line with the fix and exit 2. Hydra's own flags (--help, --cfg, --info, -m, ...) run
    under @hydra.main as Hydra documents them; so do `--verbose` and HYDRA_FULL_ERROR=1, which show Hydra's own
    report of a mistake. Once the task runs, its own exit status stands."""
    import os

    from hydra._internal.utils import get_args_parser

    from tinyhub.trainer.config import check_composes

    verbose = "--verbose" in argv
    argv = [a for a in argv if a != "--verbose"]
    try:
        given = argv
        argv = translate_shared_options(argv)
        _check_data_dir(given, argv)
        args, unknown = get_args_parser().parse_known_args(argv)
        if unknown:
            raise UsageError(f"unknown option {unknown[0]!r}: {prog} takes settings as key=value (see {prog} "
                             "--help), and --data-dir, --batch-size, --config-dir, --config-name and --verbose.")
        hydra_runs_it = (verbose or os.environ.get("HYDRA_FULL_ERROR") == "1"
                         or any(getattr(args, flag, None) for flag in _HYDRA_OWN_FLAGS))
        if not hydra_runs_it:
            composed, checked = check_composes(args.overrides, config_name=args.config_name or config_name,
                                               config_dir=args.config_dir, schema=schema)
    except TinyhubError as e:  # a configuration mistake (exit 2), or a --data-dir that is not there (exit 1)
        return fail(e)
    if not hydra_runs_it:
        from tinyhub.trainer.logs import console_logging

        console_logging()
        return task(checked if typed else composed) or 0
    return _under_hydra(task, config_name=config_name, argv=argv, prog=prog)


def _under_hydra(task, *, config_name: str, argv: list[str], prog: str) -> int:
    """`task` under @hydra.main, which hands it the DictConfig it composed."""
    import hydra

    started = False

    def job(cfg) -> None:
        nonlocal started
        started = True
        code = task(cfg)
        if code:
            sys.exit(code)

    entry = hydra.main(version_base=None, config_path="pkg://tinyhub.trainer.recipes", config_name=config_name)(job)
    saved_argv = sys.argv
    sys.argv = [prog.replace(" ", "-"), *argv]
    try:
        entry()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        return 2 if code == 1 and not started else code
    finally:
        sys.argv = saved_argv
    return 0
