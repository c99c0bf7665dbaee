"""Evaluate a tinyhub model on a whole split.

    python scripts/evaluate.py runs/model4-s0-...            # a run directory
    python scripts/evaluate.py path/to/saved_model            # a save_pretrained folder
    python scripts/evaluate.py me/model4-mnist@v1             # a Hub repo id, optional @revision
    torchrun --nproc_per_node 2 scripts/evaluate.py MODEL     # several processes, exact counts
Options: --split test|train, --data-dir DIR, --batch-size N, --tta (average over 1-pixel shifts), --output-dir DIR
"""

import argparse
import sys
from pathlib import Path

# This file is named like the `evaluate` library; drop its folder from the import path so `import evaluate`
# finds the library, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import modeling
import trainer
from trainer.evaluation import EvaluationError, compute_metrics, data_arguments, load_model, predict, resolve_model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="run directory, saved model folder, or Hub repo id[@revision]")
    p.add_argument("--split", choices=["test", "train"], default="test")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files (default: the run's own data)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--tta", action="store_true", help="test-time augmentation: average over 1-pixel shifts")
    p.add_argument("--output-dir", default=None, help="default: MODEL/eval (or ./eval/<repo> for a repo id)")
    p.add_argument("--cpu", action="store_true", help="evaluate on the CPU even if a GPU is present")
    args = p.parse_args(argv)

    import evaluate
    import torch
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=args.cpu)
    try:
        source = resolve_model(args.model)
        model = load_model(source).to(accelerator.device)
        with accelerator.main_process_first():
            splits = trainer.load_dataset_splits(**data_arguments(source, args.data_dir))
    except (EvaluationError, trainer.DataError, modeling.UnknownModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    images = getattr(splits, f"{args.split}_images").to(accelerator.device)
    labels = getattr(splits, f"{args.split}_labels").to(accelerator.device)
    mean = torch.tensor(model.mean, device=accelerator.device).view(1, -1, 1, 1)
    std = torch.tensor(model.std, device=accelerator.device).view(1, -1, 1, 1)
    log_probs = predict(model, images, accelerator, args.batch_size, lambda x: (x - mean) / std, tta=args.tta)
    if not accelerator.is_main_process:
        return 0
    metrics = compute_metrics(log_probs, labels, model.num_classes)
    out_dir = Path(args.output_dir) if args.output_dir else source.default_output
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [model.id2label[str(i)] for i in range(model.num_classes)]
    from trainer.report import misclassified_grid

    losses = -log_probs.gather(1, labels.view(-1, 1)).flatten()
    grid = misclassified_grid(images.cpu(), labels.cpu(), log_probs.argmax(1).cpu(), losses.cpu(), names,
                              out_dir / f"misclassified_{args.split}.png")
    record = {"model": args.model, "architecture": model.architecture, "split": args.split, "tta": args.tta,
              "num_processes": accelerator.num_processes, "labels": names, **metrics}
    saved = out_dir / f"eval_{args.split}{'_tta' if args.tta else ''}.json"
    evaluate.save(str(saved), **record)
    print(f"{args.model} on the {args.split} split ({metrics['total']:,} images{', TTA' if args.tta else ''}):")
    print(f"  accuracy {100 * metrics['accuracy']:.2f}% ({metrics['correct']}/{metrics['total']}), "
          f"loss {metrics['loss']:.4f}")
    print("  per class: " + ", ".join(f"{n} {100 * a:.2f}%" if a is not None else f"{n} -"
                                      for n, a in zip(names, metrics["per_class_accuracy"])))
    print(f"  results: {saved}\n  worst misclassified: {grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
