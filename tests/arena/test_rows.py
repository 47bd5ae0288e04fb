"""Compare on rows: intervals, paired differences, upload validation, the cache (FakeEngine)."""

from __future__ import annotations

import numpy as np
import pytest

from lora_land.arena import contestants as cs
from lora_land.arena import rows as rw
from lora_land.errors import UserError
from tests.arena.conftest import BASE, SST2


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small = rw.bootstrap_mean(rng.integers(0, 2, 20).tolist())
    large = rw.bootstrap_mean(rng.integers(0, 2, 800).tolist())
    for iv in (small, large):
        assert iv.low <= iv.mean <= iv.high
    assert large.high - large.low < small.high - small.low
    assert rw.bootstrap_mean([1.0] * 5) == rw.Interval(1.0, 1.0, 1.0, 5)


def test_paired_difference_sees_a_consistent_gain_that_unpaired_noise_would_hide():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 60)
    b = a + 0.1  # every row 0.1 better: the paired interval excludes 0
    diff = rw.paired_difference(a.tolist(), b.tolist())
    assert diff.mean == pytest.approx(0.1) and diff.low > 0
    assert rw.bootstrap_mean(a.tolist()).high > rw.bootstrap_mean(b.tolist()).low  # overlap


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
