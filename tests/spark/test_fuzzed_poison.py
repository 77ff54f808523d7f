"""Fuzzed poison at small scale: every fuzzed record is quarantined, every valid run lands.

Fault: 300 records from ``testkit.fuzzed_poison`` (random bytes, random bytes behind a valid
header, events truncated at a random byte, header bit flips, random fingerprints, empty and
null values, two oversized records), shuffled among 40 valid events over both topics and sent
in two chunks to the running job. Invariant: the quarantine holds exactly the fuzzed values
(compared as a multiset of SHA-256 digests), model_runs holds exactly the valid runs, the
query is active with no exception after each chunk. (``bench/reliability.py`` scenario f runs
10,000.)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runstream.consumer.job import start
from runstream.devtools.testkit import (
    T0,
    digests,
    encoded,
    fuzzed_poison,
    job_config,
    key_of,
    new_id,
    produce,
    quarantined_digests,
    recorded,
    rows_by_id,
)

POISON = 300
VALID = 40


def test_fuzzed_poison_is_all_quarantined_and_valid_runs_all_land(
    spark: Any, kafka_bootstrap: str, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    live, replay = new_topic("fuzz-live"), new_topic("fuzz-replay")
    config = job_config(kafka_bootstrap, live, replay, tmp_path)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    valid = [recorded(new_id("valid"), T0, mae_14day=1.0 + i) for i in range(VALID)]
    poison = fuzzed_poison(rng, [encoded(e) for e in valid], POISON)
    records: list[tuple[str, bytes | None, bytes | None]] = [
        (rng.choice((live, replay)), key_of(e), encoded(e)) for e in valid
    ]
    records += [(rng.choice((live, replay)), b"fuzz", value) for _, value in poison]
    rng.shuffle(records)

    query = start(spark, config, once=False, trigger_seconds=0.5)
    try:
        for chunk in (records[: len(records) // 2], records[len(records) // 2 :]):
            produce(kafka_bootstrap, chunk)
            query.processAllAvailable()
            assert query.isActive and query.exception() is None, f"seed {seed}"
    finally:
        query.stop()

    quarantined = quarantined_digests(spark, config.tables.rejects)
    expected = digests(value for _, value in poison)
    assert quarantined == expected, (
        f"seed {seed}: not quarantined {sum((expected - quarantined).values())}, "
        f"quarantined but not poison {sum((quarantined - expected).values())}"
    )
    assert set(rows_by_id(spark, config.tables.runs)) == {e["experiment_id"] for e in valid}
    assert spark.table(config.tables.events).count() == VALID
