"""Run reports, drawn from results.json: training-curve and confusion-matrix PNGs (the card uses them) and a
self-contained HTML report with everything about the run."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import yaml
from jinja2 import Environment, FileSystemLoader, select_autoescape

import matplotlib

matplotlib.use("Agg")  # headless: no display on training machines
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# No timestamps in the files: the same results always give the same bytes, so an unchanged run re-pushes nothing.
_PNG_META = {"Software": None}


def training_curves(results: dict, path: Path) -> Path:
    epochs = [e["epoch"] for e in results["epochs"]]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, [e["train_loss"] for e in results["epochs"]], "o-", label="train")
    ax_loss.plot(epochs, [e["test_loss"] for e in results["epochs"]], "s-", label="test")
    ax_acc.plot(epochs, [e["train_accuracy"] for e in results["epochs"]], "o-", label="train")
    ax_acc.plot(epochs, [e["test_accuracy"] for e in results["epochs"]], "s-", label="test")
    if all("val_accuracy" in e for e in results["epochs"]):
        ax_loss.plot(epochs, [e["val_loss"] for e in results["epochs"]], "^-", label="validation")
        ax_acc.plot(epochs, [e["val_accuracy"] for e in results["epochs"]], "^-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{results['model']} ({results['parameters']:,} parameters)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata=_PNG_META)
    plt.close(fig)
    return path


def confusion_matrix_plot(results: dict, labels: list[str], path: Path) -> Path:
    matrix = results["final"]["confusion_matrix"]
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    im = ax.imshow(matrix, cmap="Blues")
    vmax = max(max(row) for row in matrix) or 1
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(matrix[i][j]), ha="center", va="center", fontsize=7,
                    color="white" if matrix[i][j] > vmax / 2 else "black")
    ax.set(xticks=range(n), yticks=range(n), xticklabels=labels, yticklabels=labels,
           xlabel="predicted", ylabel="true",
           title=f"Test confusion matrix ({results['final']['test_correct']}/{results['final']['test_total']})")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata=_PNG_META)
    plt.close(fig)
    return path


def write_run_report(run_dir: str | Path, results: dict) -> dict[str, Path]:
    """images/training_curves.png, images/confusion_matrix.png and report.html in `run_dir`."""
    run_dir = Path(run_dir)
    curves = training_curves(results, run_dir / "images" / "training_curves.png")
    labels = results.get("label_names") or [str(i) for i in range(len(results["final"]["confusion_matrix"]))]
    confusion = confusion_matrix_plot(results, labels, run_dir / "images" / "confusion_matrix.png")
    html = render_html(results, curves.read_bytes(), confusion.read_bytes())
    report = run_dir / "report.html"
    tmp = report.with_name(".report.html.tmp")
    tmp.write_text(html)
    tmp.replace(report)
    return {"curves": curves, "confusion": confusion, "report": report}


def render_html(results: dict, curves_png: bytes, confusion_png: bytes) -> str:
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    hw = results.get("hardware") or {}
    return env.get_template("report.html.j2").render(
        title=f"{results['model']} — {results['final']['test_accuracy']:.2f}% test accuracy",
        final=results["final"], parameters=results["parameters"], macs=results["macs"],
        epochs=results["epochs"], has_val=all("val_accuracy" in e for e in results["epochs"]),
        train_seconds=results.get("train_seconds", 0), device=results.get("device"),
        hardware=hw.get("gpu") or hw.get("cpu"), summary=results["summary"], world_size=results.get("world_size"),
        mixed_precision=results.get("mixed_precision"), wall_seconds=results.get("wall_seconds", 0),
        git=results.get("git") or {}, versions=results.get("versions") or {}, command=results.get("command"),
        config_yaml=yaml.safe_dump(results.get("recipe"), sort_keys=False),
        curves_png=base64.b64encode(curves_png).decode(), confusion_png=base64.b64encode(confusion_png).decode(),
    )


def misclassified_grid(images, true, pred, losses, labels: list[str], path: Path, k: int = 25) -> Path:
    """The k misclassified images with the highest loss, each titled with its true and predicted label."""
    import torch

    wrong = (true != pred).nonzero().flatten()
    order = wrong[torch.argsort(losses[wrong], descending=True)][:k]
    cols = 5
    rows = max(1, math.ceil(len(order) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.8))
    for ax in list(getattr(axes, "flat", [axes])):
        ax.axis("off")
    for ax, i in zip(getattr(axes, "flat", [axes]), order.tolist()):
        ax.imshow(images[i, 0].cpu().numpy(), cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(f"true {labels[true[i]]} / pred {labels[pred[i]]}", fontsize=7)
    if not len(order):
        fig.text(0.5, 0.5, "no misclassified images", ha="center")
    fig.suptitle(f"Worst {len(order)} of {len(wrong)} misclassified (highest loss first)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata=_PNG_META)
    plt.close(fig)
    return path
