"""A trained model out to where tiny models run: ONNX (float32) and int8, each verified by onnxruntime on the whole
test split before anyone is told it works.

    record = export_model(model, splits, "runs/model4-s0", weights_sha256=..., dataset="MNIST")
    record.formats[0].agreement, record.formats[1].test_accuracy      # what exports.json says

The exported graph takes raw pixels: float32 (batch, C, H, W) in [0, 1], named `images`; the model's normalisation
is inside it, so no reader needs the mean and std. The class names, the architecture and the input layout are in
the graph's metadata. int8 is onnxruntime's static quantization (QDQ, weights per channel), calibrated on training
images only. A float export whose predictions differ from PyTorch's on more than MAX_DISAGREEMENT % of the test
images, or an int8 export that loses more than MAX_INT8_LOSS points of test accuracy, is recorded as failed: its
figures are kept, and it is never uploaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tinyhub.errors import TinyhubError
from tinyhub.utils.files import atomic_path, sha256_file

from tinyhub.trainer.record import EXPORT_EXAMPLES_FILE, ExportedFormat, ExportsRecord
from tinyhub.trainer.run_info import library_versions, this_machine
from tinyhub.trainer.scores import classification_scores

INPUT_NAME, OUTPUT_NAME = "images", "logits"
MAX_DISAGREEMENT = 0.05  # % of test images
MAX_INT8_LOSS = 0.3  # points of test accuracy
CALIBRATION_IMAGES = 1024
CALIBRATION_SEED = 0
#: Timing: one image at a time for latency, batches of 256 for throughput; medians over these many runs.
LATENCY_RUNS, THROUGHPUT_BATCH, THROUGHPUT_RUNS = 200, 256, 10
EVAL_BATCH = 1000


class ExportError(TinyhubError, RuntimeError):
    """The model could not be exported or checked; nothing was replaced."""


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """One way out (tinyhub.registry.EXPORT_FORMATS). tinyhub verifies every format the same way: `run` gives the
    exported file's logits for raw pixels in [0, 1], on the whole test split and for the timings.

    build(model, splits, work, built) -> (path of the file written in `work`, how it was calibrated or None);
    `built` holds the paths of the formats built before it (the float ONNX graph comes first).
    open(path, threads) -> run, where run(images01: float32 (N, C, H, W) ndarray) -> logits ndarray (N, classes).
    """

    file: str  # where it goes, relative to the folder that holds exports.json
    build: Callable
    open: Callable
    help: str = ""  # its name on the card and in the reference ("ONNX float32")
    quantized: bool = False  # held to the accuracy it loses (MAX_INT8_LOSS), not to agreement with PyTorch


def _build_onnx(model, splits, work: Path, built: dict) -> tuple[Path, None]:
    path = work / "model.onnx"
    _export_onnx(model, path)
    return path, None


def _build_int8(model, splits, work: Path, built: dict) -> tuple[Path, str]:
    return _quantize(built["onnx"], splits.train_images, work), _calibration_text(splits)


def _open_onnx(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda images01: session.run([OUTPUT_NAME], {INPUT_NAME: images01})[0]


export_onnx_float = ExportFormat("onnx/model.onnx", _build_onnx, _open_onnx, "ONNX float32")
export_onnx_int8 = ExportFormat("onnx/model_int8.onnx", _build_int8, _open_onnx, "ONNX int8 (static, QDQ)",
                                quantized=True)


def export_model(model, splits, out_dir: str | Path, *, weights_sha256: str, dataset: str,
                 examples: tuple[torch.Tensor, torch.Tensor] | None = None, formats=("onnx", "int8"),
                 threads: int | None = None, log=print) -> ExportsRecord:
    """Export `model` (a TinyClassifier in eval mode) in `formats` (names of tinyhub.registry.EXPORT_FORMATS),
    verify each on `splits`' whole test split, and write the files, `onnx/examples.npz` and exports.json into
    `out_dir`. Files are written whole (a failure leaves the previous ones); exports.json last, naming each
    file's SHA-256."""
    from tinyhub.registry import EXPORT_FORMATS

    out_dir = Path(out_dir)
    threads = threads or len(os.sched_getaffinity(0))
    test_x = splits.test_images.float().div_(255)
    test_y = splits.test_labels.numpy()
    log(f"PyTorch reference on the {len(test_y):,} test images ...")
    reference = _torch_logits(model, test_x)
    torch_pred = reference.argmax(1)
    torch_correct = classification_scores(torch_pred, test_y, model.num_classes).correct
    chosen = {name: EXPORT_FORMATS.get(name) for name in dict.fromkeys(["onnx", *formats])}  # ONNX first: int8's input
    results, built = [], {}
    with tempfile.TemporaryDirectory(prefix="tinyhub-export-") as tmp:
        for name, fmt_spec in chosen.items():
            log(f"exporting {EXPORT_FORMATS.help(name)} ...")
            with _format_failures(name):
                path, calibration = fmt_spec.build(model, splits, Path(tmp), built)
            built[name] = path
            if name not in formats:
                continue
            log(f"verifying {name} on the whole test split and timing it ...")
            with _format_failures(name):
                run = fmt_spec.open(path, threads)
                logits = np.concatenate([run(test_x[i:i + EVAL_BATCH].numpy())
                                         for i in range(0, len(test_x), EVAL_BATCH)])
                latency, throughput = _timings(run, test_x.numpy())
            pred = logits.argmax(1)
            scores = classification_scores(pred, test_y, model.num_classes)
            fmt = ExportedFormat(
                format=name, file=fmt_spec.file, bytes=path.stat().st_size, sha256=sha256_file(path),
                opset=_onnx_opset(path), test_correct=scores.correct, test_total=scores.total,
                agreement=100 * float((pred == torch_pred).mean()),
                max_logit_difference=float(np.abs(logits - reference).max()),
                latency_ms=latency, images_per_second=throughput, passed=True, calibration=calibration)
            fmt.problem = _problem(fmt, torch_correct, fmt_spec.quantized)
            fmt.passed = fmt.problem is None
            results.append(fmt)
        record = ExportsRecord(
            architecture=model.architecture, weights_sha256=weights_sha256, dataset=dataset,
            pytorch_test_correct=torch_correct, test_total=len(test_y),
            max_disagreement=MAX_DISAGREEMENT, max_int8_loss=MAX_INT8_LOSS, hardware=this_machine(threads),
            threads=threads, versions=library_versions(("torch", "onnx", "onnxruntime", "onnxscript")),
            formats=results)
        for fmt in results:
            _replace(built[fmt.format], out_dir / fmt.file)
        images, labels = examples if examples is not None else (splits.test_images[:8], splits.test_labels[:8])
        with atomic_path(out_dir / EXPORT_EXAMPLES_FILE) as tmp_npz:
            write_examples_npz(tmp_npz, images.numpy(), labels.numpy())
        record.save(out_dir)
    return record


@contextlib.contextmanager
def _format_failures(name: str):
    """A format that fails to build or to run (a plugin's included) is one error line naming it; nothing written."""
    try:
        yield
    except TinyhubError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the format's own code raised
        said = str(e).splitlines()[0][:300] if str(e) else ""
        raise ExportError(f"the {name} export format failed ({type(e).__name__}: {said}); nothing was written.") from e


def _onnx_opset(path: Path) -> int | None:
    """The ONNX opset of an exported graph; None for a file that is not ONNX (a plugin's format)."""
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not an ONNX file
        return None
    return next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), None)


class _RawPixels(torch.nn.Module):
    """The exported graph: raw pixels in [0, 1] -> logits, through the model's own normalisation."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model.forward_features(self.model.normalize01(images))


def _torch_logits(model, images01: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model.forward_features(model.normalize01(chunk))
                          for chunk in images01.split(EVAL_BATCH)]).float().numpy()


def _export_onnx(model, path: Path) -> int:
    import onnx

    example = torch.rand(2, *model.expected_input_shape)
    try:
        with _quiet():
            torch.onnx.export(_RawPixels(model).eval(), (example,), str(path), input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
                              dynamo=True, external_data=False, verbose=False)
    except Exception as e:  # noqa: BLE001 - any exporter failure: say which model, keep nothing
        raise ExportError(f"torch.onnx could not export {model.architecture} ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:300]}); nothing was written.") from e
    graph = onnx.load(str(path))
    c, h, w = model.expected_input_shape
    metadata = {
        "architecture": model.architecture,
        "id2label": json.dumps(model.id2label, sort_keys=True),
        "input": f"{INPUT_NAME}: float32 (batch, {c}, {h}, {w}), raw pixels in [0, 1]; normalised inside the graph "
                 f"with mean {list(model.mean)} and std {list(model.std)}",
        "output": f"{OUTPUT_NAME}: float32 (batch, {model.num_classes}), unnormalised class scores",
        "producer": "tinyhub",
    }
    del graph.metadata_props[:]
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    graph.doc_string = f"tinyhub {model.architecture}: raw pixels in [0, 1] -> logits"
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(path))
    return next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))


def _calibration_sample(train_images: torch.Tensor) -> np.ndarray:
    """CALIBRATION_IMAGES training images (never test), drawn with a fixed seed: the same int8 model every time."""
    generator = torch.Generator().manual_seed(CALIBRATION_SEED)
    n = min(CALIBRATION_IMAGES, len(train_images))
    pick = torch.randperm(len(train_images), generator=generator)[:n]
    return train_images[pick].float().div_(255).numpy()


def _calibration_text(splits) -> str:
    n = min(CALIBRATION_IMAGES, len(splits.train_images))
    return f"{n:,} training images drawn with seed {CALIBRATION_SEED} (min-max ranges)"


def _quantize(float_path: Path, train_images: torch.Tensor, tmp: Path) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    sample = _calibration_sample(train_images)

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(np.array_split(sample, max(1, len(sample) // 128)))

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    prepared, out = tmp / "model_prepared.onnx", tmp / "model_int8.onnx"
    try:
        with _quiet():
            quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(out), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"onnxruntime could not quantize the model to int8 ({type(e).__name__}: "
                          f"{str(e).splitlines()[0][:300]}); nothing was written.") from e
    return out


def _timings(run, images01: np.ndarray) -> tuple[float, float]:
    """(median ms for one image, median images/s in batches of 256), after a warm-up of each."""
    one, batch = images01[:1], images01[:THROUGHPUT_BATCH]

    def seconds(x: np.ndarray) -> float:
        start = time.perf_counter()
        run(x)
        return time.perf_counter() - start

    for _ in range(10):
        seconds(one)
    seconds(batch)
    latency = statistics.median(seconds(one) for _ in range(LATENCY_RUNS))
    per_batch = statistics.median(seconds(batch) for _ in range(THROUGHPUT_RUNS))
    return 1000 * latency, len(batch) / per_batch


def _problem(fmt: ExportedFormat, torch_correct: int, quantized: bool) -> str | None:
    if not quantized and 100 - fmt.agreement > MAX_DISAGREEMENT:
        return (f"its predictions differ from PyTorch's on {100 - fmt.agreement:.2f}% of the test images "
                f"(limit {MAX_DISAGREEMENT}%)")
    loss = 100 * (torch_correct - fmt.test_correct) / fmt.test_total
    if quantized and loss > MAX_INT8_LOSS:
        return f"it loses {loss:.2f} points of test accuracy against PyTorch (limit {MAX_INT8_LOSS})"
    return None


def _replace(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)


def write_examples_npz(path: str | Path, images: np.ndarray, labels: np.ndarray) -> None:
    """`images` (uint8) and `labels` as an .npz that numpy alone reads (np.load; no pickles), with fixed zip
    timestamps, so that the same examples always give the same bytes (an unchanged push uploads nothing)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in (("images", images.astype(np.uint8)), ("labels", labels.astype(np.int64))):
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


@contextlib.contextmanager
def _quiet():
    """The exporter and the quantizer print progress and warnings meant for their developers: kept off the
    user's terminal (a failure still raises, with its message)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        root.setLevel(level)
