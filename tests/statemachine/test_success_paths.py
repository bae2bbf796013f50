"""Runs that succeed: every message written, or a bad one dead-lettered alone."""

from __future__ import annotations

from .harness import (
    SUCCEEDED_PATH,
    Batch,
    ChildExecutionArn,
    DeadLetterMessage,
    Engine,
    order_placed,
    outcome,
    valid_batch,
)

TRUNCATED_MESSAGE = b'{"specversion":"1.0","id":'


def test_happy_path_writes_every_message(engine: Engine) -> None:
    # GIVEN a batch of valid messages that makes two full slices and a short one
    batch = valid_batch(2 * engine.slice_size + 1)
    slices = batch.expected_slices(engine.slice_size)
    messages = len(batch.lines)

    # WHEN it lands
    run = engine.run(batch)

    # THEN the run takes the main path and reports every message written
    assert run.status == "SUCCEEDED"
    assert run.path() == SUCCEEDED_PATH
    assert run.output == {
        "run": run.name,
        "batch": run.batch,
        "slices": 3,
        "read": messages,
        "written": messages,
        "dead_lettered": 0,
        "duplicates": 0,
    }
    # AND Plan cut the batch as the contract specifies
    assert engine.manifest(run) == slices
    # AND the table contains exactly the messages, with exact numbers
    assert engine.table_items(batch.source) == batch.expected_items(list(range(1, messages + 1)))
    # AND every slice recorded its counts, and nothing was dead-lettered
    assert engine.ledger(run.name) == {
        piece["index"]: {
            "outcome": outcome(read=piece["messages"], written=piece["messages"]),
            "execution": ChildExecutionArn(run.arn),
        }
        for piece in slices
    }
    assert engine.dead_letters(run.name) == []
    # AND every child of the Map succeeded
    item_counts = engine.map_run(run)["itemCounts"]
    assert item_counts["total"] == 3
    assert item_counts["succeeded"] == 3
    assert item_counts["failed"] == 0


def test_malformed_message_dead_lettered_alone(engine: Engine) -> None:
    # GIVEN a batch whose middle slice has one truncated message
    batch = valid_batch(2 * engine.slice_size + 1)
    bad_line = engine.slice_size + 2
    batch.lines[bad_line - 1] = TRUNCATED_MESSAGE
    slices = batch.expected_slices(engine.slice_size)
    good_lines = [line for line in range(1, len(batch.lines) + 1) if line != bad_line]

    # WHEN it lands
    run = engine.run(batch)

    # THEN the run succeeds with one message dead-lettered
    assert run.status == "SUCCEEDED"
    assert run.path() == SUCCEEDED_PATH
    assert run.output == {
        "run": run.name,
        "batch": run.batch,
        "slices": 3,
        "read": len(batch.lines),
        "written": len(good_lines),
        "dead_lettered": 1,
        "duplicates": 0,
    }
    # AND the dead-letter queue has that message alone, with its bytes and where it failed
    assert engine.dead_letters(run.name) == [
        DeadLetterMessage(
            body={
                "kind": "message",
                "message": TRUNCATED_MESSAGE.decode(),
                "error": "InvalidJsonError",
                "cause": f"line {bad_line}, column 27: Expecting value",
                "state": "Parse",
                "execution": ChildExecutionArn(run.arn),
                "run": run.name,
                "batch": {"bucket": run.bucket, "key": run.key},
                "line": bad_line,
            },
            attributes={"error_type": "InvalidJsonError", "kind": "message"},
        )
    ]
    # AND the rest of its slice, and the other slices, are written
    assert engine.table_items(batch.source) == batch.expected_items(good_lines)
    size = engine.slice_size
    assert {index: record["outcome"] for index, record in engine.ledger(run.name).items()} == {
        0: outcome(read=size, written=size),
        1: outcome(read=size, written=size - 1, dead_lettered=1),
        2: outcome(read=1, written=1),
    }
    assert [piece["messages"] for piece in slices] == [size, size, 1]


def test_duplicate_key_in_slice_written_once(engine: Engine) -> None:
    # GIVEN a one-slice batch whose last message repeats the key of the first
    source = valid_batch(0).source
    lines = [order_placed(source, number) for number in range(1, engine.slice_size + 1)]
    repeated = lines[0].replace(b'"total":19.9', b'"total":25')
    batch = Batch(source, [*lines[:-1], repeated])

    # WHEN it lands
    run = engine.run(batch)

    # THEN the later line wins and the earlier one counts as a duplicate
    assert run.status == "SUCCEEDED"
    assert run.path() == SUCCEEDED_PATH
    assert run.output["written"] == engine.slice_size - 1
    assert run.output["duplicates"] == 1
    assert engine.table_items(source) == batch.expected_items(list(range(2, engine.slice_size + 1)))
    assert engine.ledger(run.name)[0]["outcome"] == outcome(
        read=engine.slice_size, written=engine.slice_size - 1, duplicates=1
    )
    assert engine.dead_letters(run.name) == []
