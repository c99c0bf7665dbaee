"""tinyhub export: ONNX and int8 exports of a trained model, each verified by onnxruntime on the whole test split.

    tinyhub export runs/model4-s0-...                   # writes runs/.../onnx/ and runs/.../exports.json
    tinyhub export me/model4-mnist@v1 --data-dir DIR    # a Hub model: into ./exports/me__model4-mnist@v1
    tinyhub export path/to/saved_model --formats onnx    # a save_pretrained folder; float32 only

The graph takes raw pixels in [0, 1] (the model's normalisation is inside it) and has a dynamic batch; the class
names are in its metadata. int8 is calibrated on training images only. exports.json records, per format, the test
accuracy, the agreement with PyTorch's predictions, the largest logit difference, the size and the CPU latency on
this machine. A float export that disagrees with PyTorch on more than 0.05% of the test images, or an int8 export
that loses more than 0.3 points, is recorded as failed (exit status 1) and `tinyhub push` does not upload it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinyhub.registry import EXPORT_FORMATS

from ._common import ArgumentParser, run_model_command


def parser(prog: str) -> argparse.ArgumentParser:
    p = ArgumentParser(prog, __doc__)
    p.add_argument("model", help="run directory, saved model folder, or Hub repo id[@revision]")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files (default: the run's own data)")
    p.add_argument("--output-dir", default=None,
                   help="default: the run directory (or the model folder; ./exports/<repo> for a repo id)")
    p.add_argument("--formats", nargs="+", choices=EXPORT_FORMATS.names(), default=["onnx", "int8"],
                   help="what to export: " + "; ".join(f"{n}: {EXPORT_FORMATS.help(n)}" for n in EXPORT_FORMATS.names())
                   + " (int8 is quantized from the float32 ONNX graph; a plugin adds its own)")
    p.add_argument("--threads", type=int, default=None,
                   help="onnxruntime threads when verifying and timing (default: every core this process may use)")
    return p


def main(argv: list[str] | None = None, prog: str = "tinyhub export") -> int:
    p = parser(prog)
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    return run_model_command(_export, args)


def _export(args) -> int:
    from safetensors.torch import load_file

    from tinyhub.utils.files import claim_output_folder, sha256_file
    from tinyhub.trainer.data import load_from_config
    from tinyhub.trainer.evaluation import (EvaluationError, check_model_fits, data_settings, load_model,
                                            resolve_model)
    from tinyhub.cards.export import export_model
    from tinyhub.trainer.record import EXPORT_EXAMPLES_FILE, EXPORTS_FILE
    from tinyhub.trainer.run_info import EXAMPLES_FILE

    source = resolve_model(args.model)
    changed = source.run_results.changed_weights(Path(source.model_ref).parent) if source.run_results else None
    if changed:  # exports.json would tie the run's recorded accuracy to weights it never measured
        raise EvaluationError(f"{changed}; nothing was exported.")
    model = load_model(source)
    weights = _weights_file(source)
    if args.output_dir:
        out_dir = Path(args.output_dir)
    elif source.kind == "hub":
        out_dir = Path("exports") / source.default_output.name
    else:
        out_dir = Path(source.model_ref).parent if source.kind == "run" else Path(source.model_ref)
    if source.kind == "hub" or args.output_dir:  # a folder of its own: never one of the user's other files
        claim_output_folder(out_dir, "export", own=(EXPORTS_FILE, "onnx"))
    splits = load_from_config(data_settings(source, args.data_dir))
    check_model_fits(model, splits, args.model)
    examples = None
    if source.kind == "run" and (Path(source.model_ref).parent / EXAMPLES_FILE).is_file():
        stored = load_file(str(Path(source.model_ref).parent / EXAMPLES_FILE))  # the card's own examples
        examples = (stored["images"], stored["labels"])
    dataset = (source.run_results.dataset.name if source.run_results else None) or splits.source.get("name") \
        or "the given data"
    record = export_model(model, splits, out_dir, weights_sha256=sha256_file(weights), dataset=dataset,
                          examples=examples, formats=tuple(dict.fromkeys(["onnx", *args.formats])),
                          threads=args.threads, log=lambda line: print(line, flush=True))
    _print_table(record)
    print(f"  files: {', '.join(str(out_dir / f.file) for f in record.formats)}, {out_dir / EXPORT_EXAMPLES_FILE}")
    print(f"  figures: {out_dir / EXPORTS_FILE}")
    if record.failed:
        for f in record.failed:
            print(f"error: the {f.format} export failed its check: {f.problem}. It is recorded in "
                  f"{out_dir / EXPORTS_FILE} and `tinyhub push` will not upload it.", file=sys.stderr)
        return 1
    return 0


def _weights_file(source) -> Path:
    if source.kind != "hub":
        return Path(source.model_ref) / "model.safetensors"
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(source.model_ref, "model.safetensors", revision=source.revision))


def _print_table(record) -> None:
    from tinyhub.utils.tables import markdown_table

    rows = [["PyTorch (float32)", "", f"{record.pytorch_test_accuracy:.2f}%", "", "", "", "", ""]]
    rows += [[f.format, f"{f.bytes:,}", f"{f.test_accuracy:.2f}%", f"{f.agreement:.2f}%",
              f"{f.max_logit_difference:.2g}", f"{f.latency_ms:.3f}", f"{f.images_per_second:,.0f}",
              "yes" if f.passed else f"no: {f.problem}"] for f in record.formats]
    print(f"{record.architecture} on the {record.test_total:,} {record.dataset} test images, "
          f"onnxruntime {record.versions.get('onnxruntime')} on {record.hardware.text}:")
    print(markdown_table(["format", "bytes", "test accuracy", "agrees with PyTorch", "largest logit difference",
                          "ms per image (batch 1)", "images/s (batch 256)", "passed"], rows, "lrrrrrrl"))


if __name__ == "__main__":
    sys.exit(main())
