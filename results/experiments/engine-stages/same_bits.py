"""Train the same seeds in deterministic mode and print what they produced, bit for bit: the SHA-256 of every
saved model's weights and of results.json with its timings, dates and environment left out. Run it on two commits
and diff the outputs: equal lines mean the engine computes exactly what it did.

    python results/experiments/engine-stages/same_bits.py DATA_DIR OUT.json
    python results/experiments/engine-stages/same_bits.py --compare BEFORE.json AFTER.json
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

from tinyhub import trainer

#: Recorded fields that say when, where and how fast, not what was computed.
VARYING = {"wall_seconds", "train_seconds", "epoch_seconds", "images_per_second", "eval_seconds", "created",
           "git", "hardware", "torch", "torchvision", "accelerate", "python", "platform", "device", "cpu",
           "resumed_from", "recipe", "overrides", "tinyhub", "hostname", "versions", "environment", "data",
           "command", "path", "spec",  # the script's own arguments and its temporary folders
           "times"}  # where a run's seconds went (start-up, data, set-up, train, evaluate, save)


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VARYING}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _digest(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    weights = hashlib.sha256((run_dir / "model" / "model.safetensors").read_bytes()).hexdigest()
    stable = json.dumps(_stable(results), sort_keys=True)
    return {"weights": weights, "results": hashlib.sha256(stable.encode()).hexdigest(),
            "final_test_accuracy": results["final"]["test_accuracy"], "stable_results": _stable(results)}


def main(data_dir: str, out: str) -> None:
    common = [f"data.dir={data_dir}", "data.source=local", "data.subset=3000", "data.val_size=500",
              "training.epochs=2", "training.deterministic=true", "training.threads=2", "report_to=none",
              "progress=false", "training.checkpoint_every=1"]
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain"
        trainer.train(trainer.load_config(["model=model4", *common, f"run.dir={plain}", "training.ema=0.9"]))
        found["plain model4 (onecycle, EMA)"] = _digest(plain)
        distilled = Path(tmp) / "distilled"
        trainer.train(trainer.load_config(["model=gap2k", *common, f"run.dir={distilled}",
                                           f"training.distill.teacher={plain}"]))
        found["gap2k distilled from it"] = _digest(distilled)
        stack = Path(tmp) / "stack"
        trainer.train(trainer.load_config(["model=opt6k", *common, f"run.dir={stack}", "seeds=[0,1]"]))
        for s in (0, 1):
            found[f"opt6k stack seeds=[0,1], seed {s}"] = _digest(stack / f"seed_{s}")
    Path(out).write_text(json.dumps(found, indent=1, sort_keys=True))
    for name, d in found.items():
        print(f"{name}: weights {d['weights'][:16]} results {d['results'][:16]} test {d['final_test_accuracy']}")


def compare(before: str, after: str) -> int:
    a, b = json.loads(Path(before).read_text()), json.loads(Path(after).read_text())
    same = True
    for name in a:
        weights = a[name]["weights"] == b[name]["weights"]
        results = _stable(a[name]["stable_results"]) == _stable(b[name]["stable_results"])
        same &= weights and results
        print(f"{name}: weights {'identical' if weights else 'DIFFER'}, results.json "
              f"{'identical' if results else 'DIFFERS'} (timings, dates, paths and environment aside)")
    return 0 if same else 1


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        sys.exit(compare(*sys.argv[2:]))
    main(*sys.argv[1:])
