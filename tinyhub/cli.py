"""The `tinyhub` command (also `python -m tinyhub`): one entry point, one subcommand per job.

    tinyhub train model=opt6k training.epochs=30 --data-dir ../mnist     # Hydra overrides, as the recipes name them
    tinyhub evaluate runs/opt6k-s0-...                                   # each subcommand has --help
    accelerate launch -m tinyhub train model=opt6k                      # several processes / GPUs

Exit status: 0 done, 1 failed at run time (network, Hub, corrupt or missing files), 2 invalid command or
configuration. Expected failures print one `error:` line; a traceback means a bug.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from . import __version__

#: subcommand -> (module in tinyhub.commands, one-line help, the extras it needs)
COMMANDS = {
    "train": ("train", "train a recipe (Hydra overrides: model=opt6k training.epochs=30 ...)", ("train",)),
    "evaluate": ("evaluate", "evaluate a run, a saved model or a Hub repo on a whole split", ("train",)),
    "push": ("push", "publish a run (or a folder of runs) to the Hugging Face Hub with its model card", ("train",)),
    "export": ("export", "export a model to ONNX and int8, each verified on the whole test split",
               ("train", "export")),
    "demo": ("demo", "try a model in the browser: draw or upload an image, see the top classes", ("train", "demo")),
    "compare": ("compare", "compare finished runs side by side (table, HTML, curves)", ("train",)),
    "sweep": ("sweep", "search hyperparameters with Ray Tune and ASHA", ("train", "hpo")),
    "bench": ("bench", "time tinyhub against the seeds' pipeline: whole epochs, or the time to a target accuracy",
              ("train", "bench")),
    "reproduce": ("reproduce", "train every recipe for several seeds and write the results tables", ("train",)),
    "list-models": ("list_models", "list the registered architectures with their parameters and budgets", ()),
}
#: what each extra installs, by import name (checked before a command starts, so a missing one is named)
EXTRA_MODULES = {
    "train": ("accelerate", "hydra", "omegaconf", "datasets", "evaluate", "jinja2", "matplotlib", "yaml"),
    "hpo": ("ray",),
    "bench": ("torchvision",),
    "export": ("onnx", "onnxruntime", "onnxscript"),
    "demo": ("gradio",),
}


def missing_extras(extras: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(extras with something missing, the missing import names)."""
    bad_extras, missing = [], []
    for extra in extras:
        gone = [m for m in EXTRA_MODULES[extra] if not _importable(m)]
        if gone:
            bad_extras.append(extra)
            missing += gone
    return bad_extras, missing


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _usage() -> str:
    width = max(len(c) for c in COMMANDS) + 2
    lines = [f"usage: tinyhub <command> [options]      (tinyhub {__version__})", "", "commands:"]
    lines += [f"  {name:<{width}}{help_}" for name, (_, help_, _) in COMMANDS.items()]
    lines += ["", "`tinyhub <command> --help` shows a command's options. Exit status: 0 done, 1 run-time failure, "
              "2 invalid command or configuration."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"tinyhub {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        print(f"error: unknown command {name!r}{hint}; the commands are {', '.join(COMMANDS)} "
              "(`tinyhub --help` says what each does).", file=sys.stderr)
        return 2
    module, _, extras = COMMANDS[name]
    bad_extras, missing = missing_extras(extras)
    if bad_extras:
        spec = ",".join(bad_extras)
        print(f"error: `tinyhub {name}` needs the {spec} extra{'s' if len(bad_extras) > 1 else ''} "
              f"(not importable here: {', '.join(missing)}); install it with pip install \"tinyhub[{spec}]\"",
              file=sys.stderr)
        return 1
    command = importlib.import_module(f"tinyhub.commands.{module}")
    return command.main(rest, prog=f"tinyhub {name}")


def run() -> None:
    """The `tinyhub` command itself (the console script and `python -m tinyhub`): main(), then the process ends."""
    code = main()
    if code == 0 and sys.argv[1:2] == ["train"]:
        _end_process(code)
    sys.exit(code)


def _end_process(code: int) -> None:
    """A finished training run's process ends here rather than in the interpreter's teardown of torch and every
    module it imported, which took 0.8 s on an idle 2-core CPU (0.04 s this way), a tenth of a speed recipe's whole
    run (results/experiments/time-to-target/exit-times.txt). What a normal exit does first is done first: other
    threads are joined, every exit handler runs (logging, trackers), and the output is flushed; only the freeing of
    memory the process is giving back anyway is skipped."""
    import atexit
    import os
    import threading

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
