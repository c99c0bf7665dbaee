"""Model cards for tinyhub runs, and publishing runs to the Hugging Face Hub.

    from tinyhub import cards
    card = cards.build_card("runs/model4-s0-...", repo_id="me/model4-mnist")
"""

from .card import CardError, build_card, load_publishable_run, merge_with_existing, validate_card

__all__ = ["CardError", "build_card", "load_publishable_run", "merge_with_existing", "validate_card"]
