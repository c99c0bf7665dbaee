"""tinyhub evaluate: evaluate a tinyhub model on a whole split.

    tinyhub evaluate runs/model4-s0-...                      # a run directory (uses the run's own data)
    tinyhub evaluate path/to/saved_model --data-dir DIR      # a save_pretrained folder
    tinyhub evaluate me/model4-mnist@v1 --tta                # a Hub repo id, optional @revision
    torchrun --nproc_per_node 2 -m tinyhub evaluate MODEL --cpu   # several processes, every image counted once
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import ArgumentParser, run_model_command


def parser(prog: str) -> argparse.ArgumentParser:
    p = ArgumentParser(prog, __doc__)
    p.add_argument("model", help="run directory, saved model folder, or Hub repo id[@revision]")
    p.add_argument("--split", choices=["test", "train"], default="test")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files (default: the run's own data)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per forward pass (default: training's data.eval_batch_size)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation: average over 1-pixel shifts")
    p.add_argument("--output-dir", default=None, help="default: MODEL/eval (or ./eval/<repo> for a repo id)")
    p.add_argument("--cpu", action="store_true", help="evaluate on the CPU even if a GPU is present")
    return p


def main(argv: list[str] | None = None, prog: str = "tinyhub evaluate") -> int:
    p = parser(prog)
    args = p.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        p.error(f"--batch-size must be at least 1, got {args.batch_size}")
    return run_model_command(_evaluate, args)


def _evaluate(args) -> int:
    from accelerate import Accelerator

    from tinyhub.trainer.data import load_from_config
    from tinyhub.trainer.evaluation import check_model_fits, data_settings, load_model, predict, resolve_model
    from tinyhub.trainer.schema import DataConfig

    accelerator = Accelerator(cpu=args.cpu)
    source = resolve_model(args.model)
    model = load_model(source).to(accelerator.device)
    with accelerator.main_process_first():
        splits = load_from_config(data_settings(source, args.data_dir))
    check_model_fits(model, splits, args.model)
    images = getattr(splits, f"{args.split}_images").to(accelerator.device)
    labels = getattr(splits, f"{args.split}_labels").to(accelerator.device)
    batch_size = DataConfig.eval_batch_size if args.batch_size is None else args.batch_size
    log_probs = predict(model, images, accelerator, batch_size, tta=args.tta)
    if accelerator.is_main_process:
        _report(args, source, model, images, labels, log_probs, accelerator.num_processes)
    # Every rank leaves the process group together: a rank that exits early aborts the others' gloo threads.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return 0


def _report(args, source, model, images, labels, log_probs, num_processes: int) -> None:
    """Metrics, the saved evaluation and the misclassified grid: the main process only."""
    import datetime

    import evaluate

    from tinyhub.utils.files import claim_output_folder
    from tinyhub.trainer.evaluation import compute_metrics
    from tinyhub.trainer.record import EvaluationRecord
    from tinyhub.trainer.report import misclassified_grid

    metrics = compute_metrics(log_probs, labels, model.num_classes)
    out_dir = claim_output_folder(Path(args.output_dir) if args.output_dir else source.default_output, "evaluation",
                                  own=("eval_*.json", "misclassified_*.png"))  # an evaluation from before the marker
    names = [model.id2label[str(i)] for i in range(model.num_classes)]
    suffix = f"{args.split}{'_tta' if args.tta else ''}"  # a TTA evaluation never overwrites the plain one
    losses = -log_probs.gather(1, labels.view(-1, 1)).flatten()
    grid = misclassified_grid(images.cpu(), labels.cpu(), log_probs.argmax(1).cpu(), losses.cpu(), names,
                              out_dir / f"misclassified_{suffix}.png")
    record = EvaluationRecord(model=args.model, architecture=model.architecture, split=args.split, tta=args.tta,
                              num_processes=num_processes, labels=names, **metrics,
                              timestamp=datetime.datetime.now().isoformat(), evaluate_version=evaluate.__version__,
                              python_version=sys.version)
    # evaluate.save's fields, written whole; not evaluate.save itself, which asks git about the working folder
    # (printing `fatal: not a git repository` outside one) and leaves a half-written file when interrupted.
    saved = record.save(out_dir / f"eval_{suffix}.json")
    print(f"{args.model} on the {args.split} split ({metrics['total']:,} images{', TTA' if args.tta else ''}):")
    print(f"  accuracy {100 * metrics['accuracy']:.2f}% ({metrics['correct']}/{metrics['total']}), "
          f"loss {metrics['loss']:.4f}")
    print("  per class: " + ", ".join(f"{n} {100 * a:.2f}%" if a is not None else f"{n} -"
                                      for n, a in zip(names, metrics["per_class_accuracy"])))
    print(f"  results: {saved}\n  worst misclassified: {grid}")


if __name__ == "__main__":
    sys.exit(main())
