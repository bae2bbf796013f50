"""The Map's MaxConcurrency bound, measured by the local Lambda service's counters."""

from __future__ import annotations

from nightly_ingest.local import LocalAWS

from .harness import SUCCEEDED_PATH, Engine, valid_batch

# Long enough that the handlers of two slices always overlap, and short enough to stay cheap.
DELAY_SECONDS = 0.3
SLICE_FUNCTIONS = ("ParseFunction", "WriteFunction")


def test_slices_in_flight_bounded_by_max_concurrency(engine: Engine, faults: LocalAWS) -> None:
    # GIVEN three times as many slices as MaxConcurrency, and Parse and Write slowed down so
    # that every slice the Map starts is still running when the next one starts
    slices = 3 * engine.max_concurrency
    batch = valid_batch(slices * engine.slice_size)
    names = {function: faults.resources[function] for function in SLICE_FUNCTIONS}
    for name in names.values():
        faults.add_fault(
            "lambda", "Invoke", "delay", resource=name, seconds=DELAY_SECONDS, times=None
        )
    faults.reset_lambda_peaks()
    before = faults.lambda_stats()["functions"]

    # WHEN the batch lands
    run = engine.run(batch)

    # THEN each function ran exactly MaxConcurrency slices at its peak. The functions' reserved
    # concurrency is MaxConcurrency too, so a Map that started more would have been throttled.
    after = faults.lambda_stats()["functions"]
    for function, name in names.items():
        assert after[name]["peak_concurrent_invocations"] == engine.max_concurrency, function
        assert after[name]["concurrency_limit"] == engine.max_concurrency, function
        assert after[name]["throttles"] == before[name]["throttles"], function
        assert after[name]["invocations"] - before[name]["invocations"] == slices, function
    assert engine.map_run(run)["maxConcurrency"] == engine.max_concurrency
    assert run.status == "SUCCEEDED"
    assert run.path() == SUCCEEDED_PATH
    assert run.output["written"] == len(batch.lines)
    assert engine.table_items(batch.source) == batch.expected_items(
        list(range(1, len(batch.lines) + 1))
    )
