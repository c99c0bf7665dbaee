"""The packaged architectures, said once and without torch: name, family module, parameters at the default input
(1x28x28, 10 classes), parameter budget and where the design comes from. `register_model` takes a packaged
family's budget and design from here, and `tinyhub list-models` prints this table without importing torch
(tests/test_modeling.py builds every entry and checks its parameter count)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    module: str  # modeling/<module>.py defines and registers it
    parameters: int  # at the default input: 1x28x28 images, 10 classes
    param_budget: int | None
    design: str


CATALOG: dict[str, CatalogEntry] = {e.name: e for e in (
    CatalogEntry("efficient", "efficient", 19_578, 20_000, "seed 001: Efficient MNIST Neural Network (19,578 params)"),
    CatalogEntry("fast24k", "fast", 24_314, 25_000, "tinyhub layout for time to a good model on a CPU"),
    CatalogEntry("gap20k", "gap", 18_720, 20_000, "tinyhub variant for the <20k budget of efficient"),
    CatalogEntry("gap2k", "gap", 1_956, 2_000, "tinyhub variant for the <=2k frontier"),
    CatalogEntry("gap5k", "gap", 4_836, 5_000, "tinyhub variant for the <=5k frontier"),
    CatalogEntry("gap8k", "gap", 7_432, 8_000, "tinyhub variant for the <8k budget of model4 / opt6k"),
    CatalogEntry("minimobilenet", "minimobilenet", 3_114, 10_000,
                 "seed 000: MNIST MiniMobileNet (Ray Tune, W&B, Hydra)"),
    CatalogEntry("model4", "model4", 7_194, 8_000, "seed 003: MNIST Classification with PyTorch, Model_4"),
    CatalogEntry("net24k", "net24k", 24_552, 25_000, "seed 002: MNIST CNN Training Project (24,552 params)"),
    CatalogEntry("opt6k", "opt6k", 6_132, 8_000, "seed 004: MNIST Training Experiments, Opt-2 (6,132 params)"),
)}
