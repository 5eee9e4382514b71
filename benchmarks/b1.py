"""B1: the cost of one checkout + checkin, fake driver, one green thread."""

from __future__ import annotations

from typing import Any

from . import fakedb
from .candidates import Candidate, Driver
from .harness import calibrate, cycle_loop, median, rotations, settle

SIZE = 10
TITLE = "B1  checkout + checkin, fake driver, one green thread"


def run(candidates: list[Candidate], quick: bool) -> dict[str, Any]:
    rounds = 3 if quick else 7
    seconds = 0.04 if quick else 0.12
    driver = Driver("fake", fakedb)
    cycles: dict[str, int] = {}
    for cand in candidates:  # warm-up and sizing, untimed
        opened = cand.open(SIZE, driver)
        cycles[cand.key] = calibrate(opened.get, opened.put, seconds)
        opened.close()

    samples: dict[str, list[float]] = {c.key: [] for c in candidates}
    for _, cand in rotations(candidates, rounds):
        opened = cand.open(SIZE, driver)
        n = cycles[cand.key]
        cycle_loop(opened.get, opened.put, n // 10)  # warm this pool instance
        settle()
        elapsed = cycle_loop(opened.get, opened.put, n)
        opened.close()
        samples[cand.key].append(elapsed / n * 1e6)

    rows = [
        {
            "key": c.key,
            "label": c.label,
            "us_per_cycle": median(samples[c.key]),
            "samples": samples[c.key],
            "cycles_per_round": cycles[c.key],
        }
        for c in candidates
    ]
    return {
        "title": TITLE,
        "rounds": rounds,
        "pool_size": SIZE,
        "rows": rows,
    }
