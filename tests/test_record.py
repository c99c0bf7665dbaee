"""The run record: every consumer reads results.json through load_run, which refuses what it cannot read honestly."""

import json
import shutil

import pytest

from tinyhub import cards
from tinyhub.trainer.record import RESULTS_SCHEMA_VERSION, RunRecordError, SeedRecord, SeedStats, load_run


def _rewrite(run, tmp_path, change):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    d = json.loads((copy / "results.json").read_text())
    change(d)
    (copy / "results.json").write_text(json.dumps(d))
    return copy


def test_the_previous_schema_is_migrated_and_still_cards(tiny_runs, tmp_path):
    def as_schema_2(d):
        d.pop("kind")
        d.pop("distillation")
        d["schema_version"] = 2
    old = _rewrite(tiny_runs[0], tmp_path, as_schema_2)
    record = load_run(old)
    assert record.schema_version == RESULTS_SCHEMA_VERSION and record.distillation is None
    assert record.final == load_run(tiny_runs[0]).final
    assert "opt6k" in cards.build_card(old, repo_id="me/opt6k").content


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(schema_version=1), "schema 1, written by a tinyhub that did not record what data"),
    (lambda d: d.update(schema_version=99), "newer than this tinyhub reads .* upgrade tinyhub"),
    (lambda d: d.update(kind="other-tool"), "written by another tool"),
    (lambda d: d.update(surprise=1), "fields this tinyhub does not know: surprise"),
    (lambda d: d.pop("epochs"), "no final evaluation on the test split"),
    (lambda d: d["final"].pop("test_correct"), "final lacks test_correct"),
])
def test_old_foreign_and_damaged_records_are_refused_with_the_reason(tiny_runs, tmp_path, change, message):
    run = _rewrite(tiny_runs[0], tmp_path, change)
    with pytest.raises(RunRecordError, match=message):
        load_run(run)
    with pytest.raises(cards.CardError, match=message):  # and so nothing is carded or pushed from it
        cards.build_card(run, repo_id="me/x")


def test_a_results_json_from_another_tool_is_refused(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"eval_accuracy": 0.99, "epoch": 3.0}))  # HF Trainer style
    with pytest.raises(RunRecordError, match="not a tinyhub run record .* another tool"):
        load_run(tmp_path)
    (tmp_path / "results.json").write_text('{"schema_version": 3, "model": "x", "final": NaN}')
    with pytest.raises(RunRecordError, match="not valid JSON"):
        load_run(tmp_path)
    with pytest.raises(RunRecordError, match="not a finished run"):
        load_run(tmp_path / "missing")


def test_a_seed_record_keeps_the_history_that_shows_the_final_epoch(tiny_runs, tmp_path):
    record = load_run(tiny_runs[0])
    seed = SeedRecord.from_run(record, tiny_runs[0], label="variant")
    seed.save(tmp_path / "seed_0.json")
    again = SeedRecord.load(tmp_path / "seed_0.json")
    assert again == seed and again.history == record.epochs and again.final_is_last_epoch is True
    assert again.label == "variant" and again.hardware == record.hardware_text


def test_seed_stats_compare_the_exact_mean_with_the_target():
    stats = SeedStats.of([(0, 9945, 10000), (1, 9942, 10000), (2, 9933, 10000)])  # 29,820 / 30,000 = 99.40%
    assert stats.meets(99.4) is True and stats.meets(99.41) is False and stats.meets(None) is None
    assert stats.text() == "99.40% ± 0.06" and SeedStats.of([(0, 9931, 10000)]).text() == "99.31%"


def test_every_record_validates_against_the_json_schema_generated_from_its_type(tiny_runs):
    """The JSON Schemas the reference publishes hold for what tinyhub writes: every record kept in results/ (seeds,
    reruns, exports) and a fresh run's results.json; a record with a wrong type is caught."""
    import jsonschema

    from conftest import REPO
    from tinyhub.trainer.record import RECORD_FILES, ExportsRecord, Rerun, RunRecord, json_schema

    def validator(kind):
        schema = json_schema(kind)
        jsonschema.Draft202012Validator.check_schema(schema)
        return jsonschema.Draft202012Validator(schema)

    kept = {SeedRecord: sorted(REPO.glob("results/*/seed_*.json")),
            ExportsRecord: sorted(REPO.glob("results/exports/*.json")),
            list[Rerun]: [REPO / "results" / "reruns.json"]}
    assert len(kept[SeedRecord]) >= 50 and len(kept[ExportsRecord]) >= 10
    for kind, paths in kept.items():
        check = validator(kind)
        for path in paths:
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in check.iter_errors(json.loads(path.read_text()))]
            assert not errors, f"{path}: {errors[:3]}"
    fresh = json.loads((tiny_runs[0] / "results.json").read_text())
    run_schema = validator(RunRecord)
    assert not list(run_schema.iter_errors(fresh))
    fresh["final"]["test_accuracy"] = "99%"
    assert [e.message for e in run_schema.iter_errors(fresh)] == ["'99%' is not of type 'number'"]
    assert set(RECORD_FILES.values()) >= {RunRecord, SeedRecord, ExportsRecord}
