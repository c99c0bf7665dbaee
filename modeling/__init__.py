"""tinyhub's model zoo: tiny image classifiers that save to and load from the Hugging Face Hub.

    >>> from tinyhub import modeling
    >>> modeling.list_models()
    ['efficient', 'gap20k', 'gap8k', 'minimobilenet', 'model4', 'net24k', 'opt6k']
    >>> model = modeling.create_model("model4")
    >>> model.save_pretrained("model4-mnist")           # config.json + model.safetensors
    >>> same = modeling.from_pretrained("model4-mnist")  # or a Hub repo id, revision="v1"
"""

from __future__ import annotations

from . import efficient, gap, minimobilenet, model4, net24k, opt6k  # noqa: F401  (registers the families)
from ._base import (
    PickleRefusedError,
    PushRefusedError,
    TinyClassifier,
    WeightsMismatchError,
    clean_state_dict,
    read_config,
    unwrap_model,
)
from ._registry import (
    ParameterBudgetError,
    UnknownModelError,
    create_model,
    get_model_class,
    list_models,
    model_info,
    register_model,
)
from .summary import summary

__all__ = [
    "ParameterBudgetError", "PickleRefusedError", "PushRefusedError", "TinyClassifier", "UnknownModelError", "WeightsMismatchError",
    "clean_state_dict", "create_model", "from_pretrained", "get_model_class", "list_models", "model_info",
    "register_model", "summary", "unwrap_model",
]


def from_pretrained(path_or_repo_id, *, revision: str | None = None, **kwargs) -> TinyClassifier:
    """Load any tinyhub model from a folder or Hub repo; the class is chosen by config.json's `architecture`."""
    download_args = {k: kwargs[k] for k in ("cache_dir", "force_download", "local_files_only", "token") if k in kwargs}
    config = read_config(str(path_or_repo_id), revision=revision, **download_args)
    name = config.get("architecture")
    if not name:
        raise ValueError(
            f"config.json of {str(path_or_repo_id)!r} has no 'architecture' field, so it was not saved by tinyhub; "
            "load it with its model class instead (e.g. Model4.from_pretrained)."
        )
    return get_model_class(name).from_pretrained(path_or_repo_id, revision=revision, **kwargs)
