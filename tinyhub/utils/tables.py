"""Markdown tables: the one helper every table tinyhub writes (results, sweeps, the zoo, comparisons) goes through."""

from __future__ import annotations


def markdown_table(head: list[str], rows: list[list], align: str = "") -> str:
    """`align` has one letter a column, "l" or "r" (default: left); a "|" inside a cell is escaped."""
    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align.ljust(len(head), "l")) + "|"
    return "\n".join([line(head), rule, *(line(r) for r in rows)]) + "\n"
