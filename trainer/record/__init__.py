"""The run record: what a finished run is, as one typed object. The engine writes it as results.json; the card,
the report, evaluation, distillation, reproduce, bench and publish read it through `load_run`, never as raw JSON.

    record = load_run("runs/model4-s0")      # a run directory or its results.json
    record.final.test_accuracy, record.epochs[-1].lr, record.dataset.name, record.hardware_text

`load_run` checks what it reads: a file from another tool, from an older tinyhub whose records cannot be read
honestly, or from a newer one is refused with what to do; a file of the previous schema is migrated in memory.

One module per family: common (kind, identity, errors), run (results.json), evaluation, sweep, seeds (the
repository's records) and exports."""

from __future__ import annotations

from .common import (  # noqa: F401
    RECORD_KIND, RESULTS_SCHEMA_VERSION, RESULTS_FILE, DatasetIdentity, RunRecordError)
from .run import (  # noqa: F401
    EpochRecord, FinalMetrics, TeacherRecord, Distillation, DataRecord, LayerRecord, ArchitectureSummary,
    Augmentation, RunTimes, Hardware, GitState, typed_recipe, RunRecord, parse_record, load_run)
from .evaluation import (  # noqa: F401
    EvaluationRecord)
from .sweep import (  # noqa: F401
    SWEEP_SUMMARY_FILE, SWEEP_SCHEMA_VERSION, SweepTrial, SweepBest, SweepSummary)
from .seeds import (  # noqa: F401
    SeedRecord, RERUNS_FILE, Rerun, load_reruns, log_rerun, SeedStats, finite_metrics)
from .exports import (  # noqa: F401
    EXPORTS_FILE, EXPORT_EXAMPLES_FILE, EXPORTS_KIND, EXPORTS_SCHEMA_VERSION, ExportedFormat, ExportsRecord)


#: Each file tinyhub writes, with the type it holds. Their JSON Schemas (the docs' reference publishes them) are
#: generated from these types by pydantic, so they cannot drift from what is written.
RECORD_FILES = {
    RESULTS_FILE: RunRecord,  # a run directory's
    "results/<recipe>/seed_<n>.json": SeedRecord,  # a seed kept in the repository
    f"results/{RERUNS_FILE}": list[Rerun],
    EXPORTS_FILE: ExportsRecord,
    "eval/eval_<split>.json": EvaluationRecord,
    SWEEP_SUMMARY_FILE: SweepSummary,
}


def json_schema(kind) -> dict:
    """The JSON Schema (draft 2020-12) of a record type of RECORD_FILES, as written to disk."""
    from pydantic import TypeAdapter

    schema = TypeAdapter(kind).json_schema(mode="validation")  # what a reader accepts: the recipe typed
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
