"""Event source mappings, polled the way Lambda polls them.

moto fires an SQS mapping synchronously inside SendMessage, deletes the whole
batch on success and ignores `batchItemFailures`, and never reads Kinesis.
The launcher unhooks those, and a poller per enabled mapping does what AWS
documents, with the function's execution role (assumed as
lambda.amazonaws.com), so a role that may not read its source reads nothing:

- SQS: receive up to BatchSize messages (gathering for up to
  MaximumBatchingWindowInSeconds), invoke synchronously; on success delete
  the batch, or, with ReportBatchItemFailures, all but the reported items (an
  unknown or empty identifier fails the whole batch); on error delete
  nothing, so the messages return after the queue's visibility timeout and
  the queue's redrive policy moves them to its dead-letter queue after
  maxReceiveCount receives.
- Kinesis: per shard, from the mapping's StartingPosition taken when the
  mapping is created; batches of up to BatchSize gathered for up to the
  window; on error, split the batch in two when BisectBatchOnFunctionError is
  on, else retry up to MaximumRetryAttempts (-1: until the record expires);
  with ReportBatchItemFailures, resume from the first reported sequence
  number; a batch that is given up on sends its description (not its data)
  to the OnFailure destination, and the shard moves on.

The waits (visibility timeout, batching window) are scaled by
SLUICE_HARNESS_DELAY_FACTOR, so tests can run AWS's timing faster.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import threading
import time
from datetime import UTC, datetime

from moto.awslambda.models import lambda_backends
from moto.kinesis.models import kinesis_backends

from .context import Emulator, log
from .invoke import function
from .lambda_runtime import Runtimes
from .roles import RoleError, assume

_POLL_SECONDS = 0.2


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Poller(threading.Thread):
    def __init__(self, esm) -> None:  # type: ignore[no-untyped-def]
        super().__init__(name=f"esm-{esm.uuid[:8]}", daemon=True)
        self.esm = esm
        self.stopped = threading.Event()
        arn = esm.event_source_arn.split(":")
        self.region, self.account = arn[3], arn[4]

    def stop(self) -> None:
        self.stopped.set()

    def function(self):  # type: ignore[no-untyped-def]
        return function(self.esm.function_arn, self.region, self.account)

    def client(self, service: str):  # type: ignore[no-untyped-def]
        fn = self.function()
        if fn is None:
            return None
        return Emulator.client(service, self.region, assume(fn.role, "lambda.amazonaws.com", self.region))

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                if not self.poll_once():
                    self.stopped.wait(_POLL_SECONDS)
            except RoleError as e:
                log.warning("mapping %s cannot poll: %s", self.esm.uuid, e)
                self.stopped.wait(5)
            except Exception as e:  # an AccessDenied shows here: keep trying, as Lambda does
                log.warning("mapping %s: %s", self.esm.uuid, e)
                self.stopped.wait(1)

    def poll_once(self) -> bool:
        raise NotImplementedError


def _batch_failures(response, identifiers: list[str]) -> list[str] | None:  # type: ignore[no-untyped-def]
    """The reported item identifiers, or None when the batch failed as a whole."""
    if response is None or response == {} or response == "":
        return []
    if not isinstance(response, dict):
        return []
    failures = response.get("batchItemFailures")
    if failures is None:
        return []
    if not isinstance(failures, list):
        return None
    ids = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in identifiers:
            return None
        ids.append(identifier)
    return ids


class SqsPoller(Poller):
    def poll_once(self) -> bool:
        sqs = self.client("sqs")
        if sqs is None:
            return False
        url = Emulator.queue_url(self.esm.event_source_arn)
        visibility = int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])["Attributes"][
                "VisibilityTimeout"
            ]
        )
        hidden = max(1, math.ceil(Emulator.delay(visibility)))
        size = int(self.esm.batch_size or 10)
        window = Emulator.delay(float(self.esm.max_batch_window or 0))
        deadline = time.monotonic() + window
        messages: list[dict] = []
        while len(messages) < size and not self.stopped.is_set():
            got = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, size - len(messages)),
                VisibilityTimeout=hidden,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(got)
            if not got and time.monotonic() >= deadline:
                break
            if not got:
                self.stopped.wait(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        if not messages:
            return False
        fn = self.function()
        if fn is None:
            return False
        event = {"Records": [self._record(m) for m in messages]}
        result = Runtimes.invoke(fn, json.dumps(event).encode())
        if result.failed:
            log.info("sqs batch of %d for %s failed (%s): messages return", len(messages), fn.function_name, result.error_type)
            return True
        keep: list[str] = []
        if "ReportBatchItemFailures" in (self.esm.function_response_types or []):
            reported = _batch_failures(result.json(), [m["MessageId"] for m in messages])
            if reported is None:
                log.info("sqs batch for %s: invalid batchItemFailures, the whole batch returns", fn.function_name)
                return True
            keep = reported
        done = [m for m in messages if m["MessageId"] not in keep]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        return True

    def _record(self, m: dict) -> dict:
        attributes = {
            k: v
            for k, v in (m.get("Attributes") or {}).items()
            if k
            in (
                "ApproximateReceiveCount",
                "SentTimestamp",
                "SenderId",
                "ApproximateFirstReceiveTimestamp",
                "MessageGroupId",
                "MessageDeduplicationId",
                "SequenceNumber",
                "AWSTraceHeader",
                "DeadLetterQueueSourceArn",
            )
        }
        message_attributes = {}
        for name, value in (m.get("MessageAttributes") or {}).items():
            converted: dict = {"dataType": value.get("DataType"), "stringListValues": [], "binaryListValues": []}
            if "StringValue" in value:
                converted["stringValue"] = value["StringValue"]
            if "BinaryValue" in value:
                converted["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
            message_attributes[name] = converted
        return {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": attributes,
            "messageAttributes": message_attributes,
            "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.esm.event_source_arn,
            "awsRegion": self.region,
        }


class KinesisPoller(Poller):
    """One per mapping; reads every shard of the stream in turn."""

    def __init__(self, esm) -> None:  # type: ignore[no-untyped-def]
        super().__init__(esm)
        # Sequence number after which each shard is read (None: its start).
        self.positions: dict[str, str | None] = starting_positions(esm)
        self.iterators: dict[str, str] = {}

    def _iterator(self, kinesis, shard: str) -> str:  # type: ignore[no-untyped-def]
        if shard not in self.iterators:
            after = self.positions.get(shard)
            args = {"StreamARN": self.esm.event_source_arn, "ShardId": shard}
            if after:
                args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
            else:
                args.update(ShardIteratorType="TRIM_HORIZON")
            self.iterators[shard] = kinesis.get_shard_iterator(**args)["ShardIterator"]
        return self.iterators[shard]

    def poll_once(self) -> bool:
        kinesis = self.client("kinesis")
        if kinesis is None:
            return False
        shards = [s["ShardId"] for s in kinesis.list_shards(StreamARN=self.esm.event_source_arn)["Shards"]]
        worked = False
        for shard in shards:
            worked |= self._poll_shard(kinesis, shard)
        return worked

    def _poll_shard(self, kinesis, shard: str) -> bool:  # type: ignore[no-untyped-def]
        size = int(self.esm.batch_size or 100)
        window = Emulator.delay(float(self.esm.max_batch_window or 0))
        deadline = time.monotonic() + window
        records: list[dict] = []
        iterator = self._iterator(kinesis, shard)
        while len(records) < size and not self.stopped.is_set():
            got = kinesis.get_records(ShardIterator=iterator, Limit=size - len(records), StreamARN=self.esm.event_source_arn)
            iterator = got["NextShardIterator"]
            records.extend(got["Records"])
            if records and (len(records) >= size or time.monotonic() >= deadline):
                break
            if not got["Records"]:
                if time.monotonic() >= deadline:
                    break
                self.stopped.wait(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        if not records:
            self.iterators[shard] = iterator
            return False
        self._process(shard, records)
        # Whatever happened, the shard moves past this batch.
        self.positions[shard] = records[-1]["SequenceNumber"]
        self.iterators[shard] = iterator
        return True

    def _process(self, shard: str, records: list[dict]) -> None:
        retries = self.esm.max_retry_attempts
        retries = -1 if retries is None else int(retries)
        self._attempt(shard, records, retries, 1)

    def _attempt(self, shard: str, records: list[dict], retries_left: int, attempt: int) -> None:
        while not self.stopped.is_set():
            fn = self.function()
            if fn is None:
                return
            event = {"Records": [self._record(fn, shard, r) for r in records]}
            result = Runtimes.invoke(fn, json.dumps(event).encode())
            failed_from: int | None = None
            if result.failed:
                failed_from = 0
            elif "ReportBatchItemFailures" in (self.esm.function_response_types or []):
                reported = _batch_failures(result.json(), [r["SequenceNumber"] for r in records])
                if reported is None:
                    failed_from = 0
                elif reported:
                    failed_from = min(i for i, r in enumerate(records) if r["SequenceNumber"] in reported)
            if failed_from is None:
                return
            records = records[failed_from:]
            if self.esm.bisect_on_error and len(records) > 1:
                half = len(records) // 2
                log.info("kinesis batch of %d for %s failed: split in two", len(records), fn.function_name)
                self._attempt(shard, records[:half], retries_left, attempt + 1)
                self._attempt(shard, records[half:], retries_left, attempt + 1)
                return
            if retries_left == 0:
                self._give_up(fn, shard, records, result, attempt)
                return
            retries_left -= 1
            attempt += 1
            self.stopped.wait(Emulator.delay(min(60.0, 2.0 ** (attempt - 2))))

    def _record(self, fn, shard: str, r: dict) -> dict:  # type: ignore[no-untyped-def]
        arrival = r.get("ApproximateArrivalTimestamp")
        return {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": r["PartitionKey"],
                "sequenceNumber": r["SequenceNumber"],
                "data": base64.b64encode(r["Data"]).decode(),
                "approximateArrivalTimestamp": arrival.timestamp() if arrival else time.time(),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard}:{r['SequenceNumber']}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": fn.role,
            "awsRegion": self.region,
            "eventSourceARN": self.esm.event_source_arn,
        }

    def _give_up(self, fn, shard: str, records: list[dict], result, attempts: int) -> None:  # type: ignore[no-untyped-def]
        destination = ((self.esm.destination_config or {}).get("OnFailure") or {}).get("Destination")
        first = records[0].get("ApproximateArrivalTimestamp")
        last = records[-1].get("ApproximateArrivalTimestamp")
        description = {
            "requestContext": {
                "requestId": result.request_id,
                "functionArn": fn.function_arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled" if result.failed else None,
            },
            "version": "1.0",
            "timestamp": _now_iso(),
            "KinesisBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": records[0]["SequenceNumber"],
                "endSequenceNumber": records[-1]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": first.isoformat() if first else None,
                "approximateArrivalOfLastRecord": last.isoformat() if last else None,
                "batchSize": len(records),
                "streamArn": self.esm.event_source_arn,
            },
        }
        if not destination:
            log.warning("kinesis batch for %s discarded: no on-failure destination", fn.function_name)
            return
        try:
            sqs = self.client("sqs")
            sqs.send_message(QueueUrl=Emulator.queue_url(destination), MessageBody=json.dumps(description))
            log.info("kinesis batch of %d for %s sent to %s", len(records), fn.function_name, destination)
        except Exception as e:
            log.warning("kinesis failure record for %s lost: %s", fn.function_name, e)


def starting_positions(esm) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    """Per shard, the last sequence number before the mapping starts reading."""
    arn = esm.event_source_arn.split(":")
    backend = kinesis_backends[arn[4]][arn[3]]
    stream = next((s for s in backend.streams.values() if s.arn == esm.event_source_arn), None)
    positions: dict[str, str | None] = {}
    if stream is None:
        return positions
    latest = (esm.starting_position or "TRIM_HORIZON") == "LATEST"
    for shard_id, shard in stream.shards.items():
        positions[shard_id] = str(shard.get_max_sequence_number()) if latest and shard.records else None
    return positions


class Pollers:
    """Keeps one poller per enabled mapping, in every account and region."""

    _running: dict[str, Poller] = {}
    _lock = threading.Lock()

    @classmethod
    def start(cls) -> None:
        threading.Thread(target=cls._watch, name="esm-watch", daemon=True).start()

    @classmethod
    def created(cls, esm) -> None:  # type: ignore[no-untyped-def]
        """Called as a mapping is created: fixes its starting position now."""
        cls._ensure(esm)

    @classmethod
    def _ensure(cls, esm) -> None:  # type: ignore[no-untyped-def]
        with cls._lock:
            if esm.uuid in cls._running:
                return
            service = esm.event_source_arn.split(":")[2]
            if service == "sqs":
                poller: Poller = SqsPoller(esm)
            elif service == "kinesis":
                poller = KinesisPoller(esm)
            else:
                return
            cls._running[esm.uuid] = poller
            poller.start()

    @classmethod
    def _watch(cls) -> None:
        while True:
            try:
                live = {}
                for account, regions in list(lambda_backends.items()):
                    for region, backend in list(regions.items()):
                        for esm in list(backend._event_source_mappings.values()):
                            if esm.enabled:
                                live[esm.uuid] = esm
                for esm in live.values():
                    cls._ensure(esm)
                with cls._lock:
                    for uuid in [u for u in cls._running if u not in live]:
                        cls._running.pop(uuid).stop()
            except Exception:
                log.exception("event source mapping watch")
            time.sleep(_POLL_SECONDS)
