"""tinyhub's model zoo: tiny image classifiers that save to and load from the Hugging Face Hub.

    >>> from tinyhub import modeling
    >>> modeling.list_models()
    ['efficient', 'fast24k', 'gap20k', 'gap2k', 'gap5k', 'gap8k', 'minimobilenet', 'model4', 'net24k', 'opt6k']
    >>> model = modeling.create_model("model4")
    >>> model.save_pretrained("model4-mnist")           # config.json + model.safetensors
    >>> same = modeling.from_pretrained("model4-mnist")  # or a Hub repo id, revision="v1"

`import tinyhub.modeling` (and its torch-free table, tinyhub.modeling.catalog) does not import torch: the zoo is
imported when one of its names is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = [
    "InputShapeError",
    "ModelArgumentError",
    "ModelConfigError",
    "ParameterBudgetError",
    "PickleRefusedError",
    "PushRefusedError",
    "TinyClassifier",
    "UnknownModelError",
    "WeightsMismatchError",
    "check_model_arguments",
    "clean_state_dict",
    "create_model",
    "from_pretrained",
    "get_model_class",
    "list_models",
    "model_arguments",
    "model_info",
    "read_config",
    "register_model",
    "summary",
    "unwrap_model",
]

if TYPE_CHECKING:  # for type checkers and the API reference
    from ._base import (InputShapeError, ModelConfigError, PickleRefusedError, PushRefusedError,  # noqa: F401
                        TinyClassifier, WeightsMismatchError, clean_state_dict, read_config, unwrap_model)
    from ._registry import (ModelArgumentError, ParameterBudgetError, UnknownModelError,  # noqa: F401
                            check_model_arguments, create_model, get_model_class, list_models, model_arguments,
                            model_info, register_model)
    from ._summary import summary  # noqa: F401
    from ._zoo import from_pretrained  # noqa: F401


def __getattr__(name: str):
    if name in __all__:
        from . import _zoo

        return getattr(_zoo, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
