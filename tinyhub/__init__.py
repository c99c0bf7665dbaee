"""tinyhub: tiny image classifiers, trained with Accelerate and published on the Hugging Face Hub.

    >>> import tinyhub
    >>> tinyhub.list_models()
    ['efficient', 'fast24k', 'gap20k', 'gap2k', 'gap5k', 'gap8k', 'minimobilenet', 'model4', 'net24k', 'opt6k']
    >>> model = tinyhub.from_pretrained("namespace/model4-mnist", revision="v1")   # or a local folder
    >>> print(tinyhub.summary(model))

Importing tinyhub (or tinyhub.modeling) needs only torch, safetensors and huggingface_hub. Training lives in
`tinyhub.trainer` and publishing in `tinyhub.cards`; both need the extra: pip install "tinyhub[train]".
"""

__version__ = "0.2.0"

__all__ = ["__version__", "create_model", "from_pretrained", "list_models", "summary"]

from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:  # for type checkers and the API reference; at run time they are imported when first used
    from .modeling import create_model, from_pretrained, list_models, summary  # noqa: F401


def __getattr__(name: str):
    """The model zoo's functions and the subpackages, imported when first used: `tinyhub --version`, `--help` and
    a command's mistakes answer without importing torch."""
    import importlib

    if name in ("create_model", "from_pretrained", "list_models", "summary"):
        return getattr(importlib.import_module("tinyhub.modeling"), name)
    if name in ("modeling", "trainer", "cards"):
        return importlib.import_module(f"tinyhub.{name}")
    raise AttributeError(f"module 'tinyhub' has no attribute {name!r}")
