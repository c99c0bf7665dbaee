"""Model cards built from a run directory alone: every number comes from results.json, none is typed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.repocard_data import model_index_to_eval_results
from huggingface_hub.utils import validate_repo_id, yaml_dump
from safetensors import SafetensorError
from safetensors.torch import load_file

from tinyhub.errors import TinyhubError
from tinyhub.utils.files import sha256_file
from tinyhub.utils.launch import train_command
from tinyhub.trainer.data import MNIST_HUB_ID, certified_name
from tinyhub.trainer.record import (EXPORTS_FILE, RESULTS_FILE, ArchitectureSummary, DatasetIdentity, ExportsRecord, RunRecord, RunRecordError, SeedStats, TeacherRecord, finite_metrics,
                                    load_run)
from tinyhub.trainer.schema import optimizer_text, schedule_text
from tinyhub.trainer.run_info import EXAMPLES_FILE

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
BEGIN, END = "<!-- tinyhub:begin", "<!-- tinyhub:end -->"
MNIST_AUTHORS = ("MNIST by Yann LeCun, Corinna Cortes and Christopher J.C. Burges "
                 "(http://yann.lecun.com/exdb/mnist/)")


#: Every tinyhub card carries these, so that Hub search by library or tag finds every tinyhub model.
LIBRARY_TAGS = ("image-classification", "tinyhub", "pytorch", "safetensors", "model_hub_mixin")


class CardError(TinyhubError, ValueError):
    """A run cannot be carded, or a card failed validation. Nothing is uploaded."""


def load_publishable_run(run_dir: str | Path) -> RunRecord:
    """The RunRecord of a finished run, checked for everything a card and a push need."""
    run_dir = Path(run_dir)
    path = run_dir / RESULTS_FILE
    try:
        results = load_run(run_dir)
    except RunRecordError as e:
        raise CardError(str(e)) from e
    if results.final.test_total is None or results.final.test_accuracy is None or not results.epochs:
        raise CardError(f"{path} has no final evaluation on the test split; the run did not finish.")
    if not finite_metrics(results):
        raise CardError(f"{path} records metrics that are not finite numbers (a diverged run); it is not published.")
    weights = run_dir / "model" / "model.safetensors"
    if not weights.is_file() or not (run_dir / "model" / "config.json").is_file():
        raise CardError(f"{run_dir}/model must hold config.json and model.safetensors (save_pretrained output).")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise CardError(f"{weights} cannot be read as safetensors ({e}); the run's model is damaged, so it is not "
                        "published. Train it again, or restore the file.") from e
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise CardError(f"{weights} holds non-finite values in {bad[:5]} (a diverged run); it is not published.")
    changed = results.changed_weights(run_dir)
    if changed:
        raise CardError(f"{changed}; a card never describes other weights than the ones it ships.")
    missing = [p for p in ("images/training_curves.png", "images/confusion_matrix.png") if not (run_dir / p).is_file()]
    if missing:
        raise CardError(f"{run_dir} lacks {missing}, which every finished run writes; was it copied incompletely?")
    return results


@dataclass(frozen=True)
class CardDataset:
    """The dataset as the card states it: decided from results.json (what the run loaded), never from a default."""

    name: str
    type: str  # model-index dataset.type: the Hub id, else the name as a slug
    hub_id: str | None  # linked, and listed in the `datasets` metadata, only when the data is on the Hub
    revision: str | None
    mnist: bool
    credit: str
    identified_by: str  # how the name was decided: from the data, or given at push time
    identity: DatasetIdentity


def card_dataset(results: RunRecord, *, dataset_name: str | None = None,
                 dataset_id: str | None = None) -> CardDataset:
    """What the card says the model was trained on. `dataset_name` / `dataset_id` (push --dataset-name /
    --dataset-id) only fill in what results.json leaves unknown; contradicting it is refused."""
    identity = results.dataset
    mnist = identity.canonical == "mnist"
    name, hub_id = identity.name, identity.hub_id or (MNIST_HUB_ID if mnist else None)
    for given, recorded, option in ((dataset_name, name, "--dataset-name"), (dataset_id, hub_id, "--dataset-id")):
        if given is not None and recorded is not None and given != recorded:
            raise CardError(f"{option} {given!r} contradicts the run's results.json, which records the dataset as "
                            f"{recorded!r} ({identity.identified_by}); a card never says otherwise.")
    claimed = [n for n in (dataset_name, dataset_id, name, identity.hub_id) if certified_name(n)]
    if not mnist and claimed:
        raise CardError(f"{claimed[0]!r} names MNIST, but this run's data is not canonical MNIST (results.json records "
                        "its content fingerprint), so its card cannot name MNIST in any spelling; give the dataset's "
                        "own name.")
    if dataset_id is not None and hub_id is None:
        try:
            validate_repo_id(dataset_id)
        except HFValidationError as e:
            raise CardError(f"--dataset-id {dataset_id!r} is not a Hub dataset id: {e}") from e
    identified_by = identity.identified_by if name else (
        "the name given at push time (--dataset-name)" if dataset_name else "its Hub id, given at push time")
    hub_id = hub_id or dataset_id
    name = name or dataset_name or hub_id
    if name is None:
        raise CardError(
            f"this run's dataset is not identified (results.json: identified by {identity.identified_by}), and a "
            "card never guesses. Name it when pushing: --dataset-name NAME (and --dataset-id NAMESPACE/NAME if it "
            "is on the Hub), or train with data.name=NAME.")
    credit = _credit(identity, name, hub_id)
    return CardDataset(name=name, type=hub_id or _slug(name), hub_id=hub_id, revision=identity.revision,
                       mnist=mnist, credit=credit, identified_by=identified_by, identity=identity)


def _credit(identity: DatasetIdentity, name: str, hub_id: str | None) -> str:
    link = f"[`{hub_id}`](https://huggingface.co/datasets/{hub_id})" if hub_id else None
    at = f" at revision `{identity.revision}`" if identity.revision else ""
    if identity.canonical == "mnist":
        where = {"idx": "from the original IDX files (SHA-256 checksums verified)",
                 "hub": f"loaded from the Hugging Face dataset {link}{at}",
                 "folder": "from a saved copy whose every image and label is canonical MNIST's",
                 **{source: f"from {kind}, every image and label canonical MNIST's"
                    for source, kind in FILE_SOURCES.items()}}.get(
            identity.source, f"read by the `{identity.source}` data source, every image and label canonical MNIST's")
        return f"{MNIST_AUTHORS}, {where}."
    if identity.source == "hub" or (hub_id and identity.source != "idx"):
        return f"the Hugging Face dataset {link}{at}."
    kind = {"idx": "local IDX files", "folder": "a folder saved with 🤗 Datasets", **FILE_SOURCES}.get(
        identity.source, f"read by the `{identity.source}` data source")
    return f"`{name}` ({kind}" + (f"; on the Hub as {link}" if link else "") + ")."


#: The sources that read image files or arrays from data.path (DatasetIdentity.source), as a card names them.
FILE_SOURCES = {"image-folder": "a folder of image files, one folder per class", "csv": "a CSV file of pixels",
                "npz": "NumPy arrays in an .npz file"}


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-") or "dataset"


def param_size_tag(parameters: int) -> str:
    return f"{max(1, round(parameters / 1000))}k-params"


def _architecture_table(summary: ArchitectureSummary) -> str:
    lines = ["| layer | type | output shape | parameters | MACs |", "|---|---|---|---:|---:|"]
    for r in summary.layers:
        lines.append(f"| {r.name} | {r.kind} | {r.output_shape} | {r.params:,} | {r.macs:,} |")
    lines.append(f"| **total** | | | **{summary.total_params:,}** | **{summary.macs:,}** |")
    return "\n".join(lines)


def _speed_text(results: RunRecord) -> str | None:
    """A speed recipe's card says so, with the time this run took as its user saw it and the machine."""
    if results.recipe.recipe.purpose != "speed":
        return None
    target = f"{results.target_accuracy}%" if results.target_accuracy is not None else "its target"
    took = (f"this run took {results.process_seconds:.1f} s from process start to saved model "
            f"({results.train_seconds:.1f} s of it training) on {results.hardware_text}"
            if results.process_seconds is not None else f"this run trained in {results.training_time_text}")
    return f"built to reach {target} soonest, not for the best accuracy of its size; {took}"


def _hyperparameters(results: RunRecord) -> list[tuple[str, str]]:
    """The recipe as the card states it: only the settings that acted (never a learning rate a schedule overrode)."""
    tr = results.recipe.training
    model_kwargs = {k: v for k, v in results.model_kwargs.items() if k != "param_budget"}
    return [
        ("model arguments", ", ".join(f"{k}={v}" for k, v in model_kwargs.items()) or "defaults"),
        ("epochs", str(len(results.epochs))),
        ("optimizer", optimizer_text(results.recipe)),
        ("scheduler", schedule_text(results.recipe)),
        ("batch size", f"{results.global_batch_size} ({results.batch_size_per_process} × "
                       f"{results.world_size} process{'es' if results.world_size > 1 else ''})"),
        ("label smoothing", str(tr.label_smoothing)),
        ("gradient clipping", str(tr.grad_clip or "off")),
        ("EMA of weights", str(tr.ema or "off")),
        ("mixed precision", results.mixed_precision),
        ("training images", f"{results.data.train_size:,}"
                            + (f" (+{results.data.val_size:,} for validation)" if results.data.val_size else "")),
        ("seed", str(results.seed)),
    ]


def _augmentation_rows(results: RunRecord) -> list[tuple[str, str]]:
    aug = results.augmentation
    if not aug.enabled:
        return [("augmentation", "none")]
    rows = [("rotation (degrees, ±)", aug.rotation), ("translate (fraction, ±x, ±y)", aug.translate),
            ("scale", aug.scale), ("shear (degrees, ±)", aug.shear)]
    if aug.center_crop_size and aug.center_crop_p:
        rows.append(("centre crop then resize", f"{aug.center_crop_size} px with p={aug.center_crop_p}"))
    if aug.erase_p:
        rows.append(("random erasing", f"p={aug.erase_p}, area {aug.erase_area}, ratio {aug.erase_ratio}"))
    return [(k, str(tuple(v) if isinstance(v, list) else v)) for k, v in rows]


def _teacher_text(t: TeacherRecord) -> str:
    """One teacher, as the card names it: linked at its exact commit when it is on the Hub."""
    accuracy = f", {t.test_accuracy:.2f}% test accuracy" if t.test_accuracy is not None else ""
    what = f"`{t.architecture}`, {t.parameters:,} parameters{accuracy}"
    if t.kind == "hub":
        return (f"[{t.repo_id}](https://huggingface.co/{t.repo_id}/tree/{t.commit}) at commit "
                f"`{t.commit[:12]}` ({what})")
    kind = "run" if t.kind == "run" else "model"
    return f"a local {kind} with weights sha256 `{t.weights_sha256[:16]}…` ({what})"


#: Up to this many class names are listed on the card; the rest are counted.
LISTED_CLASSES = 30


def _classes_text(results: RunRecord) -> str:
    names = results.label_names
    listed = ", ".join(f"`{n}`" for n in names[:LISTED_CLASSES])
    more = f", … ({len(names) - LISTED_CLASSES} more)" if len(names) > LISTED_CLASSES else ""
    source = results.data.label_names_from
    if source == "indices":
        return (f"{len(names)}: the class names are their indices, 0 to {len(names) - 1} (no names came with the "
                "data: no labels.txt beside the IDX files, no data.label_names)")
    return f"{len(names)}: {listed}{more}" + (f" (from {source.split(' (')[0]})" if source else "")


def build_card(run_dir: str | Path, *, repo_id: str, revision: str = "main",
               seed_runs: list[str | Path] = (), project_url: str | None = None,
               dataset_name: str | None = None, dataset_id: str | None = None,
               space_id: str | None = None) -> ModelCard:
    """The card for `run_dir`. `seed_runs` are other seeds of the same recipe: the card then reports their mean.
    `project_url` (tinyhub's home page) is linked when given, and no address is printed when it is not.
    `dataset_name` / `dataset_id` name a dataset the run could not identify (see `card_dataset`). `space_id` is
    the Space that demonstrates the model (push --space), linked from the card."""
    results = load_publishable_run(run_dir)
    others = [load_publishable_run(r) for r in seed_runs]
    for o in others:
        if o.model != results.model or o.model_kwargs != results.model_kwargs:
            raise CardError("seed runs must train the same model with the same arguments as the main run.")
    stats = SeedStats.of_records([results, *others])
    ds = card_dataset(results, dataset_name=dataset_name, dataset_id=dataset_id)
    for o in others:
        if card_dataset(o, dataset_name=dataset_name, dataset_id=dataset_id).type != ds.type:
            raise CardError("seed runs must be trained on the same dataset as the main run.")
    config = json.loads((Path(run_dir) / "model" / "config.json").read_text())
    arch = results.model
    accuracy = round(stats.mean, 4)
    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1],
        library_name="tinyhub",
        license="mit",
        pipeline_tag="image-classification",
        tags=sorted({*LIBRARY_TAGS, arch, param_size_tag(results.parameters), *(["mnist"] if ds.mnist else []),
                   *(["knowledge-distillation"] if results.distillation else [])}),
        datasets=[ds.hub_id] if ds.hub_id else None,
        metrics=["accuracy"],
        eval_results=[EvalResult(
            task_type="image-classification", task_name="Image Classification",
            dataset_type=ds.type, dataset_name=ds.name, dataset_split="test",
            dataset_revision=ds.revision, metric_type="accuracy",
            # The Hub's metric fields have no spread: the name says what the value is, `args` carries the rest.
            metric_name=("Test accuracy (%)" if stats.n == 1 else
                         f"Test accuracy (%), mean of {stats.n} seeds (± {stats.std:.2f} std)"),
            metric_value=accuracy,
            metric_args={"seeds": stats.n, "std": round(stats.std, 4)} if stats.n > 1 else None,
        )],
    )
    card_data.tinyhub = {"parameters": results.parameters, "architecture": arch,
                         "test_accuracy_mean": accuracy, "test_accuracy_std": round(stats.std, 4),
                         "n_seeds": stats.n, "epochs": len(results.epochs)}
    exports = load_exports(run_dir)
    speed = _speed_text(results)
    if speed:
        card_data.tinyhub["purpose"] = "speed"
        card_data.tinyhub["process_seconds"] = results.process_seconds
    accuracy_text = stats.text() + (f" (mean ± std, n={stats.n})" if stats.n > 1 else "")
    target = results.target_accuracy
    target_text = "—" if target is None else f"≥ {target}% ({'met' if stats.meets(target) else 'not met'})"
    versions = ", ".join(f"{k} {v}" for k, v in results.versions.items() if v)
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        title=f"{arch} — {results.parameters:,} parameters, {stats.mean:.2f}% on {ds.name}",
        architecture=arch,
        design=results.design,
        parameters=results.parameters,
        macs=results.macs,
        dataset_name=ds.name,
        mnist=ds.mnist,
        data=results.data,
        identity=ds.identity,
        identified_by=ds.identified_by,
        classes=_classes_text(results),
        distillation=results.distillation,
        teachers=[_teacher_text(t) for t in results.distillation.teachers] if results.distillation else [],
        dataset_split="test",
        accuracy_text=accuracy_text,
        own_accuracy=results.final.test_accuracy,
        target_text=target_text,
        epochs=len(results.epochs),
        train_time=results.training_time_text,
        speed=speed,
        hardware=results.hardware_text,
        repo_id=repo_id,
        revision=revision,
        project_url=project_url,
        space_id=space_id,
        has_examples=(Path(run_dir) / EXAMPLES_FILE).is_file(),
        input_shape=[config["in_chans"], config["input_size"], config["input_size"]],
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        n_runs=stats.n,
        seeds=", ".join(str(s) for s in stats.seeds),
        per_seed=", ".join(f"seed {s}: {v:.2f}%" for s, v in zip(stats.seeds, stats.values)),
        seed=results.seed,
        history=results.epochs,
        has_val=results.has_validation,
        architecture_table=_architecture_table(results.summary),
        hyperparameters=_hyperparameters(results),
        augmentation=_augmentation_rows(results),
        command=_reproduce_command(results, ds),
        git_commit=results.git.commit or "unknown",
        git_dirty=bool(results.git.dirty),
        versions=versions,
        dataset_credit=ds.credit,
        per_class=results.per_class(),
        data_rows=_data_rows(results.data),
        exports=exports,
        deploy_rows=_deploy_rows(exports, Path(run_dir)) if exports else [],
    )
    validate_card(card.content, expected_accuracy=accuracy, dataset=ds)
    return card


def load_exports(run_dir: str | Path) -> ExportsRecord | None:
    """The run's exports.json (tinyhub export), checked against the run: made from these very weights, and every
    file it lists as passed present with the SHA-256 it records. None when the run was never exported."""
    run_dir = Path(run_dir)
    if not (run_dir / EXPORTS_FILE).exists():
        return None
    try:
        exports = ExportsRecord.load(run_dir)
    except RunRecordError as e:
        raise CardError(str(e)) from e
    if exports.weights_sha256 != sha256_file(run_dir / "model" / "model.safetensors"):
        raise CardError(f"{run_dir / EXPORTS_FILE} was made from other weights than the run's model: run "
                        f"`tinyhub export {run_dir}` again before publishing.")
    for f in exports.passed:
        path = run_dir / f.file
        if not path.is_file() or sha256_file(path) != f.sha256:
            raise CardError(f"{path} is missing or is not the file {EXPORTS_FILE} measured: run `tinyhub export "
                            f"{run_dir}` again before publishing.")
    return exports


def _format_name(name: str) -> str:
    """How the card names an export format: its registry's text (a plugin's, when it is installed)."""
    from tinyhub.registry import EXPORT_FORMATS

    try:
        return EXPORT_FORMATS.help(name) or name
    except (KeyError, ImportError):
        return name


def _deploy_rows(exports: ExportsRecord, run_dir: Path) -> list[list[str]]:
    weights = (run_dir / "model" / "model.safetensors").stat().st_size
    rows = [["PyTorch float32 (`model.safetensors`)", f"{weights / 1024:,.1f} KiB",
             f"{exports.pytorch_test_accuracy:.2f}%", "—", "—", "", ""]]
    for f in exports.passed:
        rows.append([f"{_format_name(f.format)} (`{f.file}`)", f"{f.bytes / 1024:,.1f} KiB",
                     f"{f.test_accuracy:.2f}%", f"{f.agreement:.2f}%", f"{f.max_logit_difference:.2g}",
                     f"{f.latency_ms:.3f} ms", f"{f.images_per_second:,.0f}"])
    return rows


def _data_rows(data) -> list[tuple[str, str]]:
    """What was done to the data beyond reading it: decoding, carved splits, files left out."""
    rows = []
    if data.decoding:
        rows.append(("Pixels", data.decoding))
    if data.carved_test:
        c = data.carved_test
        rows.append(("Test split", f"{c.images:,} of the {c.of:,} images carved out (the data had none), the same "
                                   f"share of every class, data.split_seed={c.seed}; SHA-256 `{c.sha256[:16]}…`"))
    if data.carved_val:
        c = data.carved_val
        rows.append(("Validation split", f"{c.images:,} of the {c.of:,} training images carved out; SHA-256 "
                                         f"`{c.sha256[:16]}…`"))
    if data.skipped:
        rows.append(("Left out", f"{data.skipped:,} unreadable or bad file(s) or row(s) (data.skip_bad=true)"))
    return rows


def _reproduce_command(results: RunRecord, dataset: CardDataset) -> str:
    """The installed CLI with the run's recipe overrides, and no path that exists only where it trained: local data
    other than MNIST (which tinyhub finds on the Hub) appears as a placeholder the reader fills in."""
    replace = {}
    if results.distillation:  # pinned: Hub teachers at the commit used, local ones as a placeholder
        pinned = [f"{t.repo_id}@{t.commit}" if t.kind == "hub" else "/path/to/teacher"
                  for t in results.distillation.teachers]
        replace["training.distill.teacher"] = pinned[0] if len(pinned) == 1 else "[" + ",".join(pinned) + "]"
    placeholder, data_dir = f"/path/to/{_slug(dataset.name)}", None
    if dataset.identity.source == "folder" and not dataset.mnist:
        replace["data.dataset"] = placeholder
    elif dataset.identity.source in FILE_SOURCES:  # where the files are is this machine's: said as a placeholder
        replace["data.path"] = placeholder
    elif dataset.identity.source not in ("hub", "folder") and not dataset.mnist:  # IDX files, a plugin's data
        data_dir = placeholder
    return train_command(results, data_dir=data_dir, replace=replace)


def validate_card(text: str, *, expected_accuracy: float | None = None, dataset: CardDataset | None = None) -> None:
    """Parse the card as the Hub does and check what tinyhub promises; raise CardError naming the problem.
    With `dataset` (from the run's results.json), the card must name that dataset and no other."""
    try:
        card = ModelCard(text)
    except Exception as e:  # noqa: BLE001 - any parse failure means the Hub would not read it either
        raise CardError(f"the card does not parse with ModelCard: {e}") from e
    data = card.data.to_dict()
    missing = [k for k in ("license", "library_name", "pipeline_tag", "tags", "model-index") if not data.get(k)]
    if missing:
        raise CardError(f"the card's metadata lacks required fields: {missing}")
    for tag in LIBRARY_TAGS:
        if tag not in data["tags"]:
            raise CardError(f"the card's tags lack {tag!r}")
    try:
        _, results = model_index_to_eval_results(data["model-index"])
    except Exception as e:  # noqa: BLE001
        raise CardError(f"the card's model-index does not parse: {e}") from e
    accuracy = [r for r in results if r.metric_type == "accuracy" and r.dataset_split == "test"]
    if not accuracy:
        raise CardError("the card's model-index has no test accuracy")
    if expected_accuracy is not None and abs(float(accuracy[0].metric_value) - expected_accuracy) > 1e-9:
        raise CardError(f"model-index accuracy {accuracy[0].metric_value} != results {expected_accuracy}")
    if dataset is not None:
        said = (accuracy[0].dataset_type, accuracy[0].dataset_name, data.get("datasets"), "mnist" in data["tags"])
        recorded = (dataset.type, dataset.name, [dataset.hub_id] if dataset.hub_id else None, dataset.mnist)
        if said != recorded:
            raise CardError(f"the card names the dataset {said[:3]} (mnist tag: {said[3]}), but the run's results.json "
                            f"records {recorded[:3]} (mnist tag: {recorded[3]}); it is not published.")
    if BEGIN not in card.content or END not in card.content:
        raise CardError("the card lacks the tinyhub markers around its generated part")


#: Metadata keys every tinyhub card sets (or leaves out on purpose): never carried over from an older card.
GENERATED_METADATA = ("license", "library_name", "pipeline_tag", "tags", "datasets", "metrics", "model-index",
                      "model_name", "tinyhub")


def merge_with_existing(generated: str, existing: str | None) -> str:
    """Keep hand-written text outside the markers of a README already on the Hub; replace the generated part
    and the metadata. Metadata keys a person added (not produced by tinyhub) are kept."""
    if not existing or BEGIN not in existing or END not in existing:
        return generated
    new, old = ModelCard(generated), ModelCard(existing)
    # Keys tinyhub writes are tinyhub's alone: an old card's `datasets` must not outlive a run on other data.
    kept = {k: v for k, v in old.data.to_dict().items() if k not in GENERATED_METADATA}
    meta = {**kept, **new.data.to_dict()}
    gen_block = new.text[new.text.index(BEGIN): new.text.index(END) + len(END)]
    old_text = old.text
    merged_body = old_text[: old_text.index(BEGIN)] + gen_block + old_text[old_text.index(END) + len(END):]
    body = merged_body if merged_body.startswith("\n") else "\n" + merged_body
    return f"---\n{yaml_dump(meta, sort_keys=False)}---\n{body}"
