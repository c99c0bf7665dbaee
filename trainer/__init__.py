"""tinyhub's training engine: data on the device, batched augmentation, one Accelerate loop, run directories."""

from .augment import AugmentConfig, augment_batch
from .data import DataError, DatasetSplits, load_dataset_splits
from .config import load_config
from .engine import ConfigError, TrainingDiverged, evaluate, train
from .record import RunRecord, RunRecordError, load_run

__all__ = ["AugmentConfig", "ConfigError", "DataError", "DatasetSplits", "RunRecord", "RunRecordError",
           "augment_batch", "evaluate", "load_config", "load_dataset_splits", "load_run", "train",
           "TrainingDiverged"]
