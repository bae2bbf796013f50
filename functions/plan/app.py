"""Plan state: cut the batch object into slices of whole lines and store the slice list in S3."""

import json
from collections.abc import Iterable
from contextlib import closing

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from ingest_common.clients import create_client, raise_transient
from ingest_common.contract import PlanInput, PlanOutput, Slice
from ingest_common.lines import BLANK_BYTES, strip_bom

READ_CHUNK_BYTES = 1024 * 1024

s3 = create_client("s3")

logger = Logger(utc=True)
metrics = Metrics()


@logger.inject_lambda_context(correlation_id_path="execution", clear_state=True)
@metrics.log_metrics
def handler(event: PlanInput, context: LambdaContext) -> PlanOutput:
    run, bucket, key, slice_size = event["run"], event["bucket"], event["key"], event["slice_size"]
    if isinstance(slice_size, bool) or not isinstance(slice_size, int) or slice_size < 1:
        raise ValueError(f"slice_size must be a positive integer, got {slice_size!r}")

    with raise_transient(f"GetObject s3://{bucket}/{key}"):
        response = s3.get_object(Bucket=bucket, Key=key)
        with closing(response["Body"]) as body:
            planner = SlicePlanner(slice_size)
            planner.scan(body.iter_chunks(READ_CHUNK_BYTES))
    slices = planner.slices()

    manifest_key = f"runs/{run}/slices.json"
    with raise_transient(f"PutObject s3://{bucket}/{manifest_key}"):
        s3.put_object(
            Bucket=bucket,
            Key=manifest_key,
            Body=json.dumps(slices, separators=(",", ":")).encode("ascii"),
            ContentType="application/json",
        )

    _report(planner, slices)
    return {
        "batch": {"bucket": bucket, "key": key, "size": planner.size, "etag": response["ETag"]},
        "manifest": {"bucket": bucket, "key": manifest_key},
        "slices": len(slices),
        "messages": planner.messages,
    }


class SlicePlanner:
    """Scanner of a byte stream that cuts it into slices of `slice_size` messages each.

    Only the current chunk is held in memory. Slices tile the object: the first starts at byte 0
    and each next one starts where the previous one ended. A slice ends just before the line
    that would be its (slice_size + 1)-th message, so blank lines after a slice's last message
    belong to that slice, and the last slice runs to the end of the object. An object without
    messages has no slices.
    """

    def __init__(self, slice_size: int) -> None:
        self.slice_size = slice_size
        self.size = 0
        self.messages = 0
        self._slices: list[Slice] = []
        self._line = 1
        self._line_start = 0
        self._line_has_content = False
        self._open: Slice | None = None

    def scan(self, chunks: Iterable[bytes]) -> None:
        """Read the whole stream, then finish the last line."""
        self.size, rest = strip_bom(chunks)
        for chunk in rest:
            self._scan_chunk(chunk)
        if self.size > self._line_start:
            # The last line has no LF but is a line all the same.
            self._end_line(self.size - 1)

    def slices(self) -> list[Slice]:
        """Return the slices, the last one closed at the end of the object."""
        if self._open is None:
            return list(self._slices)
        last: Slice = {**self._open, "last_line": self._line - 1, "end_byte": self.size - 1}
        return [*self._slices, last]

    def _scan_chunk(self, chunk: bytes) -> None:
        position = 0
        while True:
            newline = chunk.find(b"\n", position)
            segment_end = len(chunk) if newline == -1 else newline
            if not self._line_has_content and chunk[position:segment_end].strip(BLANK_BYTES):
                self._line_has_content = True
            if newline == -1:
                break
            self._end_line(self.size + newline)
            position = newline + 1
        self.size += len(chunk)

    def _end_line(self, end_byte: int) -> None:
        if self._line_has_content:
            self._count_message()
        self._line += 1
        self._line_start = end_byte + 1
        self._line_has_content = False

    def _count_message(self) -> None:
        if self._open is None:
            self._open = self._new_slice(index=0, first_line=1, start_byte=0)
        elif self._open["messages"] == self.slice_size:
            closed: Slice = {
                **self._open,
                "last_line": self._line - 1,
                "end_byte": self._line_start - 1,
            }
            self._slices.append(closed)
            self._open = self._new_slice(len(self._slices), self._line, self._line_start)
        self._open["messages"] += 1
        self.messages += 1

    @staticmethod
    def _new_slice(index: int, first_line: int, start_byte: int) -> Slice:
        return {
            "index": index,
            "first_line": first_line,
            "last_line": first_line,
            "start_byte": start_byte,
            "end_byte": start_byte,
            "messages": 0,
        }


def _report(planner: SlicePlanner, slices: list[Slice]) -> None:
    metrics.add_metric(name="MessagesPlanned", unit=MetricUnit.Count, value=planner.messages)
    metrics.add_metric(name="SlicesPlanned", unit=MetricUnit.Count, value=len(slices))
    logger.info(
        "Batch planned",
        extra={
            "size": planner.size,
            "messages": planner.messages,
            "slices": len(slices),
            "slice_size": planner.slice_size,
        },
    )
