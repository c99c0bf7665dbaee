"""The model zoo itself: every packaged family registered, and loading any tinyhub model by its config.json
(tinyhub.modeling forwards these names, importing torch only when one is first used)."""

from __future__ import annotations

from . import efficient, fast, gap, minimobilenet, model4, net24k, opt6k  # noqa: F401  (registers the families)
from ._base import (
    InputShapeError,
    ModelConfigError,
    PickleRefusedError,
    PushRefusedError,
    TinyClassifier,
    WeightsMismatchError,
    clean_state_dict,
    read_config,
    unwrap_model,
)
from ._registry import (
    ModelArgumentError,
    ParameterBudgetError,
    UnknownModelError,
    check_model_arguments,
    create_model,
    get_model_class,
    list_models,
    model_arguments,
    model_info,
    register_model,
)
from ._summary import summary

__all__ = [
    "InputShapeError", "ModelArgumentError", "ModelConfigError", "ParameterBudgetError", "PickleRefusedError",
    "PushRefusedError", "TinyClassifier",
    "UnknownModelError", "WeightsMismatchError",
    "check_model_arguments", "clean_state_dict", "create_model", "from_pretrained", "get_model_class", "list_models",
    "model_arguments", "model_info", "register_model", "summary", "unwrap_model",
]


def from_pretrained(path_or_repo_id, *, revision: str | None = None, cache_dir=None, force_download: bool = False,
                    local_files_only: bool = False, token=None, **model_kwargs) -> TinyClassifier:
    """Load any tinyhub model from a folder or Hub repo; the class is chosen by config.json's `architecture`.

    What a stranger's files may do is limited: see TinyClassifier.from_pretrained."""
    model_id = str(path_or_repo_id)
    download = {"revision": revision, "cache_dir": cache_dir, "force_download": force_download,
                "local_files_only": local_files_only, "token": token}
    config = read_config(model_id, **download)
    if not isinstance(config, dict):
        raise ModelConfigError(f"config.json of {model_id!r} must be a JSON object, not {type(config).__name__}.")
    name = config.get("architecture")
    if not name:
        raise ModelConfigError(
            f"config.json of {model_id!r} has no 'architecture' field, so it was not saved by tinyhub; "
            "load it with its model class instead (e.g. Model4.from_pretrained)."
        )
    if not isinstance(name, str):
        raise ModelConfigError(f"config.json of {model_id!r}: 'architecture' must be a string, not {name!r}.")
    return get_model_class(name)._from_config(model_id, config, download, model_kwargs)


def _bind_to_package() -> None:
    """Put the zoo's names on tinyhub.modeling itself, so later uses skip its forwarding `__getattr__`."""
    import sys

    package = sys.modules[__package__]
    for name in package.__all__:
        setattr(package, name, globals()[name])


_bind_to_package()
