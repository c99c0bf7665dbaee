"""What `tinyhub export` writes: exports.json beside the model it exported."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from tinyhub.utils.files import write_json_atomic

from pydantic import BeforeValidator, WrapSerializer

from .common import Record, RunRecordError, _refuse_constant, gather_details, spread_details
from .run import Hardware


EXPORTS_FILE = "exports.json"
#: A few labelled test images beside the exports, for readers with numpy alone (the card's onnxruntime snippet).
EXPORT_EXAMPLES_FILE = "onnx/examples.npz"
EXPORTS_KIND = "tinyhub-exports"
EXPORTS_SCHEMA_VERSION = 1


@dataclass
class ExportedFormat(Record):
    """One exported file and what onnxruntime measured of it on the whole test split."""

    format: str  # "onnx" (float32) | "int8" (static quantization, QDQ)
    file: str  # relative to the folder holding exports.json, e.g. "onnx/model.onnx"
    bytes: int
    sha256: str
    opset: int | None  # the ONNX opset; None for a format that is not ONNX (a plugin's)
    test_correct: int
    test_total: int
    agreement: float  # % of test images whose predicted class equals PyTorch's
    max_logit_difference: float  # largest |logit - PyTorch's logit| over the test split
    latency_ms: float  # one image at a time (batch 1), median
    images_per_second: float  # batches of 256, median
    passed: bool  # within the limits below; a failed export is never uploaded
    problem: str | None = None  # why it failed
    calibration: str | None = None  # int8: what it was calibrated on (training images, never test)

    @property
    def test_accuracy(self) -> float:
        return 100 * self.test_correct / self.test_total


@dataclass
class ExportsRecord(Record):
    """Every export of one model's weights (identified by their SHA-256), measured on one machine."""

    architecture: str
    weights_sha256: str  # the model.safetensors these were exported from; a push refuses stale exports
    dataset: str
    pytorch_test_correct: int
    test_total: int
    max_disagreement: float  # % of test images a float export may predict differently from PyTorch
    max_int8_loss: float  # points of test accuracy an int8 export may lose against PyTorch
    hardware: Annotated[Hardware, BeforeValidator(gather_details(Hardware)), WrapSerializer(spread_details)]
    threads: int  # onnxruntime's intra-op threads when timing
    versions: dict
    formats: list[ExportedFormat]
    kind: str = EXPORTS_KIND
    schema_version: int = EXPORTS_SCHEMA_VERSION

    @property
    def pytorch_test_accuracy(self) -> float:
        return 100 * self.pytorch_test_correct / self.test_total

    @property
    def passed(self) -> list[ExportedFormat]:
        return [f for f in self.formats if f.passed]

    @property
    def failed(self) -> list[ExportedFormat]:
        return [f for f in self.formats if not f.passed]

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / EXPORTS_FILE
        write_json_atomic(path, self.as_dict())
        return path

    @classmethod
    def load(cls, folder: str | Path) -> ExportsRecord:
        path = Path(folder) / EXPORTS_FILE
        try:
            data = json.loads(path.read_text(), parse_constant=_refuse_constant)
        except (OSError, ValueError) as e:
            raise RunRecordError(f"{path} cannot be read as tinyhub exports ({e}). Run `tinyhub export` again.") \
                from e
        if not isinstance(data, dict) or data.get("kind") != EXPORTS_KIND:
            raise RunRecordError(f"{path} is not a tinyhub exports file (no \"kind\": \"{EXPORTS_KIND}\").")
        if data.get("schema_version") != EXPORTS_SCHEMA_VERSION:
            raise RunRecordError(f"{path} has schema version {data.get('schema_version')!r}; this tinyhub reads "
                                 f"{EXPORTS_SCHEMA_VERSION}. Run `tinyhub export` again.")
        return cls.from_dict(data, str(path))
