"""tinyhub: tiny image classifiers, trained with Accelerate and published on the Hugging Face Hub.

    >>> import tinyhub
    >>> tinyhub.list_models()
    ['efficient', 'gap20k', 'gap2k', 'gap5k', 'gap8k', 'minimobilenet', 'model4', 'net24k', 'opt6k']
    >>> model = tinyhub.from_pretrained("namespace/model4-mnist", revision="v1")   # or a local folder
    >>> print(tinyhub.summary(model))

Importing tinyhub (or tinyhub.modeling) needs only torch, safetensors and huggingface_hub. Training lives in
`tinyhub.trainer` and publishing in `tinyhub.cards`; both need the extra: pip install "tinyhub[train]".
"""

__version__ = "0.2.0"

from .modeling import create_model, from_pretrained, list_models, summary  # noqa: E402

__all__ = ["__version__", "create_model", "from_pretrained", "list_models", "summary"]
