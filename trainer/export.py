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

import numpy as np
import torch

from tinyhub.errors import TinyhubError
from tinyhub.files import atomic_path, sha256_file

from .record import EXPORT_EXAMPLES_FILE, ExportedFormat, ExportsRecord
from .run_info import library_versions, this_machine

#: Where each format goes, relative to the folder that holds exports.json (the run directory for a run).
FILES = {"onnx": "onnx/model.onnx", "int8": "onnx/model_int8.onnx"}
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


def export_model(model, splits, out_dir: str | Path, *, weights_sha256: str, dataset: str,
                 examples: tuple[torch.Tensor, torch.Tensor] | None = None, formats=("onnx", "int8"),
                 threads: int | None = None, log=print) -> ExportsRecord:
    """Export `model` (a TinyClassifier in eval mode) in `formats`, verify each on `splits`' whole test split, and
    write the files, `onnx/examples.npz` and exports.json into `out_dir`. Files are written whole (a failure
    leaves the previous ones); exports.json last, naming each file's SHA-256."""
    import onnxruntime as ort

    out_dir = Path(out_dir)
    threads = threads or len(os.sched_getaffinity(0))
    test_x = splits.test_images.float().div_(255)
    test_y = splits.test_labels.numpy()
    log(f"PyTorch reference on the {len(test_y):,} test images ...")
    reference = _torch_logits(model, test_x)
    torch_pred = reference.argmax(1)
    results = []
    with tempfile.TemporaryDirectory(prefix="tinyhub-export-") as tmp:
        float_path = Path(tmp) / "model.onnx"
        log("exporting ONNX (float32, dynamic batch, normalisation inside the graph) ...")
        opset = _export_onnx(model, float_path)
        built = {"onnx": (float_path, None)}
        if "int8" in formats:
            log(f"quantizing to int8 (static, calibrated on {CALIBRATION_IMAGES:,} training images) ...")
            built["int8"] = (_quantize(float_path, splits.train_images, Path(tmp)), _calibration_text(splits))
        for name in formats:
            path, calibration = built[name]
            log(f"verifying {name} with onnxruntime on the whole test split and timing it ...")
            session = _session(ort, path, threads)
            logits = _ort_logits(session, test_x.numpy())
            pred = logits.argmax(1)
            latency, throughput = _timings(session, test_x.numpy())
            fmt = ExportedFormat(
                format=name, file=FILES[name], bytes=path.stat().st_size, sha256=sha256_file(path), opset=opset,
                test_correct=int((pred == test_y).sum()), test_total=len(test_y),
                agreement=100 * float((pred == torch_pred).mean()),
                max_logit_difference=float(np.abs(logits - reference).max()),
                latency_ms=latency, images_per_second=throughput, passed=True, calibration=calibration)
            fmt.problem = _problem(fmt, int((torch_pred == test_y).sum()))
            fmt.passed = fmt.problem is None
            results.append(fmt)
        record = ExportsRecord(
            architecture=model.architecture, weights_sha256=weights_sha256, dataset=dataset,
            pytorch_test_correct=int((torch_pred == test_y).sum()), test_total=len(test_y),
            max_disagreement=MAX_DISAGREEMENT, max_int8_loss=MAX_INT8_LOSS, hardware=this_machine(threads),
            threads=threads, versions=library_versions(("torch", "onnx", "onnxruntime", "onnxscript")),
            formats=results)
        for fmt in results:
            _replace(built[fmt.format][0], out_dir / fmt.file)
        images, labels = examples if examples is not None else (splits.test_images[:8], splits.test_labels[:8])
        with atomic_path(out_dir / EXPORT_EXAMPLES_FILE) as tmp_npz:
            write_examples_npz(tmp_npz, images.numpy(), labels.numpy())
        record.save(out_dir)
    return record


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


def _session(ort, path: Path, threads: int):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _ort_logits(session, images01: np.ndarray) -> np.ndarray:
    return np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: images01[i:i + EVAL_BATCH]})[0]
                           for i in range(0, len(images01), EVAL_BATCH)])


def _timings(session, images01: np.ndarray) -> tuple[float, float]:
    """(median ms for one image, median images/s in batches of 256), after a warm-up of each."""
    one, batch = images01[:1], images01[:THROUGHPUT_BATCH]

    def seconds(x: np.ndarray) -> float:
        start = time.perf_counter()
        session.run([OUTPUT_NAME], {INPUT_NAME: x})
        return time.perf_counter() - start

    for _ in range(10):
        seconds(one)
    seconds(batch)
    latency = statistics.median(seconds(one) for _ in range(LATENCY_RUNS))
    per_batch = statistics.median(seconds(batch) for _ in range(THROUGHPUT_RUNS))
    return 1000 * latency, len(batch) / per_batch


def _problem(fmt: ExportedFormat, torch_correct: int) -> str | None:
    if fmt.format == "onnx" and 100 - fmt.agreement > MAX_DISAGREEMENT:
        return (f"its predictions differ from PyTorch's on {100 - fmt.agreement:.2f}% of the test images "
                f"(limit {MAX_DISAGREEMENT}%)")
    loss = 100 * (torch_correct - fmt.test_correct) / fmt.test_total
    if fmt.format == "int8" and loss > MAX_INT8_LOSS:
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
