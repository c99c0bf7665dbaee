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

from tinyhub.utils.files import atomic_path, claim_output_folder, write_text_atomic  # noqa: E402
from tinyhub.utils.launch import train_command  # noqa: E402
from tinyhub.utils.tables import markdown_table  # noqa: E402

from .record import RunRecord, load_run  # noqa: E402
from .schema import config_dict, learning_rate_text  # noqa: E402

# No timestamps in the files: the same results always give the same bytes, so an unchanged run re-pushes nothing.
_PNG_META = {"Software": None}


def _save_png(fig, path: Path) -> None:
    """A figure written whole or not at all (a killed run never leaves half a PNG for the card)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata=_PNG_META)


def epoch_axis(ax, epochs: int) -> None:
    """Epochs 1..N on the x axis with whole-number ticks only, a one-epoch run included (matplotlib would zoom
    in on its single point and label fractions of an epoch)."""
    ax.set_xlim(0.5, max(epochs, 1) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def training_curves(results: RunRecord, path: Path) -> Path:
    history = results.epochs
    epochs = [e.epoch for e in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, [e.train_loss for e in history], "o-", label="train")
    ax_acc.plot(epochs, [e.train_accuracy for e in history], "o-", label="train")
    evaluated = [e for e in history if e.evaluated]  # training.eval_every may skip epochs; the last never
    ax_loss.plot([e.epoch for e in evaluated], [e.test_loss for e in evaluated], "s-", label="test")
    ax_acc.plot([e.epoch for e in evaluated], [e.test_accuracy for e in evaluated], "s-", label="test")
    if results.has_validation:
        ax_loss.plot([e.epoch for e in evaluated], [e.val_loss for e in evaluated], "^-", label="validation")
        ax_acc.plot([e.epoch for e in evaluated], [e.val_accuracy for e in evaluated], "^-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        epoch_axis(ax, len(epochs))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{results.model} ({results.parameters:,} parameters)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_png(fig, path)
    plt.close(fig)
    return path


#: Tick labels longer than this are cut (with "…") so that long class names never overlap the matrix.
LABEL_CHARS = 14


def short_label(name: str, limit: int = LABEL_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def confusion_matrix_plot(matrix: list[list[int]], labels: list[str], path: Path) -> Path:
    """Readable from 2 to ~50 classes: the figure grows with the class count, long names are cut and the x labels
    turned, and the counts are written in the cells only while they fit."""
    n = len(matrix)
    ticks = [str(name) for name in labels]
    if any(len(t) > LABEL_CHARS for t in ticks):  # cut names may look alike: lead with the class index
        ticks = [short_label(f"{i}: {t}") for i, t in enumerate(ticks)]
    longest = max((len(t) for t in ticks), default=1)
    cell = 0.42 if n <= 20 else 0.26
    side = max(4.6, n * cell + 2.0)
    margin = 0.09 * longest  # inches for the tick labels
    fig, ax = plt.subplots(figsize=(side + margin + 0.8, side + margin))
    im = ax.imshow(matrix, cmap="Blues")
    vmax = max(max(row) for row in matrix) or 1
    if n <= 20:
        size = 7 if n <= 12 else 5
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i][j]), ha="center", va="center", fontsize=size,
                        color="white" if matrix[i][j] > vmax / 2 else "black")
    tick_size = 8 if n <= 20 else 6
    ax.set_xticks(range(n), ticks, fontsize=tick_size,
                  rotation=0 if longest <= 2 and n <= 20 else 60, ha="center" if longest <= 2 and n <= 20 else "right",
                  rotation_mode="anchor")
    ax.set_yticks(range(n), ticks, fontsize=tick_size)
    ax.set(xlabel="predicted", ylabel="true",
           title=f"Test confusion matrix ({sum(matrix[i][i] for i in range(n))}/{sum(map(sum, matrix))})")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_png(fig, path)
    plt.close(fig)
    return path


def write_run_report(run_dir: str | Path, results: RunRecord) -> dict[str, Path]:
    """images/training_curves.png, images/confusion_matrix.png and report.html in `run_dir`."""
    run_dir = Path(run_dir)
    curves = training_curves(results, run_dir / "images" / "training_curves.png")
    confusion = confusion_matrix_plot(results.final.confusion_matrix, results.label_names,
                                      run_dir / "images" / "confusion_matrix.png")
    html = render_html(results, curves.read_bytes(), confusion.read_bytes())
    report = run_dir / "report.html"
    write_text_atomic(report, html)
    return {"curves": curves, "confusion": confusion, "report": report}


def render_html(results: RunRecord, curves_png: bytes, confusion_png: bytes) -> str:
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("report.html.j2").render(
        title=f"{results.model} — {results.final.test_accuracy:.2f}% test accuracy",
        final=results.final, parameters=results.parameters, macs=results.macs,
        epochs=results.epochs, has_val=results.has_validation, per_class=results.per_class(),
        train_seconds=results.train_seconds, device=results.device,
        hardware=results.hardware_text, summary=results.summary, world_size=results.world_size,
        mixed_precision=results.mixed_precision,
        git=results.git, versions=results.versions,
        command=train_command(results, data_dir=results.data.details.get("dir")
                              if results.dataset.source == "idx" else None,
                              replace={"data.path": results.data.details["path"]}
                              if results.data.details.get("path") else None),
        target=results.target_accuracy, training_time=results.training_time_text,
        config_yaml=yaml.safe_dump(config_dict(results.recipe), sort_keys=False),
        curves_png=base64.b64encode(curves_png).decode(), confusion_png=base64.b64encode(confusion_png).decode(),
    )


def misclassified_grid(images, true, pred, losses, labels: list[str], path: Path, k: int = 25) -> Path:
    """The k misclassified images with the highest loss, each titled with its true and predicted label."""
    import torch

    wrong = (true != pred).nonzero().flatten()
    order = wrong[torch.argsort(losses[wrong], descending=True)][:k]
    cols = 5
    rows = max(1, math.ceil(len(order) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.7, rows * 2.0))
    for ax in list(getattr(axes, "flat", [axes])):
        ax.axis("off")
    for ax, i in zip(getattr(axes, "flat", [axes]), order.tolist()):
        if images.shape[1] == 1:
            ax.imshow(images[i, 0].cpu().numpy(), cmap="gray_r", vmin=0, vmax=255)
        else:
            ax.imshow(images[i].permute(1, 2, 0).cpu().numpy())
        ax.set_title(f"true {short_label(labels[true[i]], 11)}\npred {short_label(labels[pred[i]], 11)}", fontsize=7)
    if not len(order):
        fig.text(0.5, 0.5, "no misclassified images", ha="center")
    fig.suptitle(f"Worst {len(order)} of {len(wrong)} misclassified (highest loss first)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_png(fig, path)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------------------
# Comparing runs
# ---------------------------------------------------------------------------------------------------------
COMPARE_COLUMNS = ("run", "model", "parameters", "epochs", "batch size", "learning rate", "dropout", "augmentation",
                   "train acc %", "test acc %", "gap", "time (s)")


def comparison_rows(runs: list[tuple[str, RunRecord]]) -> list[dict]:
    rows = []
    for name, r in runs:
        train_acc, test_acc = r.final.train_accuracy, r.final.test_accuracy
        rows.append({
            "run": name, "model": r.model, "parameters": f"{r.parameters:,}", "epochs": len(r.epochs),
            "batch size": r.global_batch_size,
            "learning rate": f"{r.recipe.training.optimizer.name} {learning_rate_text(r.recipe)}",
            "dropout": r.model_kwargs.get("dropout", "—"),
            "augmentation": r.augmentation.text,
            "train acc %": f"{train_acc:.2f}", "test acc %": f"{test_acc:.2f}", "gap": f"{train_acc - test_acc:+.2f}",
            "time (s)": f"{r.train_seconds:.0f}",
        })
    return rows


def compare_runs(run_dirs: list[Path], out_dir: Path) -> dict[str, Path]:
    """comparison.md, comparison.html and test_accuracy.png (overlaid curves) for finished runs."""
    import html as html_lib

    runs = [(Path(d).name, load_run(d)) for d in run_dirs]
    if not runs:
        raise FileNotFoundError("no runs to compare")
    rows = comparison_rows(runs)
    claim_output_folder(out_dir, "comparison", own=("comparison.md", "comparison.html", "test_accuracy.png"))
    write_text_atomic(out_dir / "comparison.md", markdown_table(list(COMPARE_COLUMNS),
                                                          [[row[c] for c in COMPARE_COLUMNS] for row in rows]))

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, r in runs:
        evaluated = [e for e in r.epochs if e.evaluated]
        ax.plot([e.epoch for e in evaluated], [e.test_accuracy for e in evaluated], "o-", label=f"{name} ({r.model})")
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="Test accuracy per epoch")
    epoch_axis(ax, max(len(r.epochs) for _, r in runs))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    png = out_dir / "test_accuracy.png"
    _save_png(fig, png)
    plt.close(fig)

    cells = "".join("<th>" + html_lib.escape(c) + "</th>" for c in COMPARE_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html_lib.escape(str(row[c]))}</td>" for c in COMPARE_COLUMNS) + "</tr>"
                   for row in rows)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>tinyhub run comparison</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse;font-size:.85rem}"
            "td,th{border:1px solid #ddd;padding:3px 8px}th{background:#f4f4f4}</style></head><body>"
            f"<h1>Run comparison</h1><table id='comparison'><tr>{cells}</tr>{body}</table>"
            f"<h2>Test accuracy</h2><img id='curves' alt='test accuracy curves' "
            f"src='data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}'></body></html>")
    write_text_atomic(out_dir / "comparison.html", page)
    return {"markdown": out_dir / "comparison.md", "html": out_dir / "comparison.html", "plot": png}
