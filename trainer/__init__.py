"""tinyhub's training engine: data on the device, batched augmentation, one Accelerate loop, run directories.

Its names are imported when first used, so that `tinyhub train --help`, a configuration mistake and the record
types answer without importing torch.
"""

from typing import TYPE_CHECKING

_WHERE = {"AugmentConfig": "augment", "augment_batch": "augment", "DataError": "data", "DatasetSplits": "data",
          "load_dataset_splits": "data", "load_config": "config", "compose": "config", "TrainConfig": "schema",
          "ConfigError": "schema",
          "TrainingDiverged": "engine", "evaluate": "engine", "train": "engine", "RunRecord": "record",
          "RunRecordError": "record", "load_run": "record"}

__all__ = sorted(_WHERE)

if TYPE_CHECKING:
    from .augment import AugmentConfig, augment_batch  # noqa: F401
    from .config import compose, load_config  # noqa: F401
    from .data import DataError, DatasetSplits, load_dataset_splits  # noqa: F401
    from .engine import TrainingDiverged, evaluate, train  # noqa: F401
    from .record import RunRecord, RunRecordError, load_run  # noqa: F401
    from .schema import ConfigError, TrainConfig  # noqa: F401


def __getattr__(name: str):
    import importlib

    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
