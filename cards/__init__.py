"""The ways out of a finished run: model cards, publishing runs to the Hugging Face Hub (publish, space), and
exports to where tiny models run (export: ONNX and int8, and the formats plugins add).

    from tinyhub import cards
    card = cards.build_card("runs/model4-s0-...", repo_id="me/model4-mnist")
"""

from .card import CardError, build_card, load_publishable_run, merge_with_existing, validate_card

__all__ = ["CardError", "build_card", "load_publishable_run", "merge_with_existing", "validate_card"]
