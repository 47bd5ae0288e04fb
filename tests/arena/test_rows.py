"""Compare on rows: intervals, paired differences, upload validation, the cache (FakeEngine)."""

from __future__ import annotations

import pytest

from lora_land.arena import contestants as cs
from lora_land.arena import rows as rw
from lora_land.errors import UserError
from tests.arena.conftest import BASE, SST2


def test_upload_validation_names_every_bad_row(services):
    task = services.catalog.tasks["glue_sst2"]
    text = "\n".join(
        [
            '{"sentence": "good", "target": "1"}',
            "not json",
            '{"sentence": "no target"}',
            '{"sentence": "  ", "target": "0"}',
            "[1, 2]",
        ]
    )
    with pytest.raises(UserError) as info:
        rw.parse_upload(task, text, 10)
    message = str(info.value)
    assert message.startswith("4 bad row(s) in the upload; each needs sentence, target")
    for part in (
        "line 2: not JSON",
        "line 3: missing target",
        "line 4: empty sentence",
        "line 5: expected a JSON object, got list",
    ):
        assert part in message
    assert rw.parse_upload(task, text.splitlines()[0], 10) == [{"sentence": "good", "target": "1"}]
    with pytest.raises(UserError, match=f"between 1 and {rw.MAX_ROWS}, got 0"):
        rw.parse_upload(task, text, 0)


def test_eval_rows_come_from_the_local_samples(services, samples_dir):
    rows = rw.eval_rows(services.catalog.tasks["glue_sst2"], 7, samples_dir)
    assert len(rows) == 7 and all(r["target"] in ("0", "1") and r["sentence"] for r in rows)


def test_run_rows_scores_each_contestant_and_caches_the_run(services, samples_dir):
    task = services.catalog.tasks["glue_sst2"]
    services.engine.replies[None] = "Hmm, hard to say."
    rows = rw.eval_rows(task, 10, samples_dir)
    chosen = cs.find(services, "glue_sst2", [BASE, SST2])
    cache = rw.RowsCache()
    report = rw.run_rows(services, task, chosen, rows, 8, cache)
    positives = sum(r["target"] == "1" for r in rows) / len(rows)
    assert report.means[1].mean == pytest.approx(positives)  # the fake adapter always says 1
    assert report.means[0].mean == 0.0  # the fake base never answers with a label
    assert report.diffs[0] is None and report.diffs[1].mean == pytest.approx(positives)
    asked = len(services.engine.requests)
    assert rw.run_rows(services, task, chosen, rows, 8, cache) is report
    assert len(services.engine.requests) == asked  # cached: the engine was not asked again
    split = rw.disagreements(report, "split")
    assert split == [i for i, r in enumerate(rows) if r["target"] == "1"]
    assert rw.disagreements(report, "all") == list(range(10))


def test_rows_that_repeat_an_input_are_resampled_as_one(services, samples_dir):
    # the same sentence three times (as e2e_nlg repeats a meaning representation with several
    # references) and seven others: the intervals resample 8 inputs, not 10 rows
    task = services.catalog.tasks["glue_sst2"]
    rows = rw.eval_rows(task, 8, samples_dir)
    rows = [rows[0], rows[0], *rows[1:], rows[0]]
    chosen = cs.find(services, "glue_sst2", [BASE, SST2])
    report = rw.run_rows(services, task, chosen, rows, 8, rw.RowsCache())
    assert [m.inputs for m in report.means] == [8, 8] and report.diffs[1].inputs == 8
    assert report.means[1].text().endswith("n=10 (8 inputs)")
