"""What keeping freed host memory (training.keep_freed_memory, trainer/host_memory.py) does to tinyhub's epoch:
`tinyhub train` runs of each packaged recipe (2 epochs of 60,000 images, the second reported, as `tinyhub bench`
does), with the setting on and off in turn (on first in odd rounds, off first in even ones), each run in a fresh
process, for some rounds.

    python results/experiments/speed-freed-memory/host_memory.py [DATA_DIR] [--rounds N] [MODEL ...] \
        > results/experiments/speed-freed-memory/host_memory.txt
"""

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "speed"))  # results/speed/, for table.py
from table import MODELS  # results/speed/table.py's: the packaged recipes, in the speed table's order
from tinyhub.commands.bench import _engine_row, _in_own_process, epoch_of


def run(model: str, data_dir: str, keep: bool) -> dict:
    overrides = [f"model={model}", "training.epochs=2", "data.source=local", f"data.dir={data_dir}",
                 f"training.keep_freed_memory={str(keep).lower()}"]
    with tempfile.TemporaryDirectory() as tmp:
        return _in_own_process(_engine_row, overrides, str(Path(tmp) / "run"), os.cpu_count() or 1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data_dir", nargs="?", default="../shared/data/mnist")
    p.add_argument("models", nargs="*", default=list(MODELS))
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_intermixed_args()  # options anywhere, as the usage line shows
    data_dir = str(Path(args.data_dir).resolve())
    print(f"tinyhub's second epoch (training + evaluation of 10,000 test images), freed memory kept (on) and given "
          f"back to the kernel (off, glibc's defaults), in turn (on first in rounds 1, 3, ...), {args.rounds} rounds; "
          "seconds")
    width = max(17 * args.rounds, 38) + 2  # a round's cell is "10.1+0.36=10.4, "; at least the header's width
    print(f"{'recipe':<15}{'on: train + eval = epoch, each round':<{width}}{'off: the same':<{width}}off / on (median)")
    for model in args.models:
        rows = {True: [], False: []}
        for i in range(args.rounds):
            for keep in ((True, False) if i % 2 == 0 else (False, True)):  # neither always goes first
                rows[keep].append(run(model, data_dir, keep))

        def cell(rs: list[dict]) -> str:
            return ", ".join(f"{r['train_seconds']:.1f}+{r['eval_seconds']:.2f}={epoch_of(r):.1f}" for r in rs)

        ratio = statistics.median(epoch_of(rows[False][i]) / epoch_of(rows[True][i]) for i in range(args.rounds))
        print(f"{model:<15}{cell(rows[True]):<{width}}{cell(rows[False]):<{width}}{ratio:.2f}x", flush=True)


if __name__ == "__main__":
    main()
