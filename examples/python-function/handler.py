"""A Sluice user function in Python: writes a report per counted object.

Triggered by an SQS queue (event source mapping with
`ReportBatchItemFailures`). Each record's body is JSON
`{"bucket": ..., "key": ..., "words": N, "lines": N}`; for each, the object
`reports/<key>.json` (the record plus `"processedAt"`, ISO 8601 UTC) is put
into the bucket the environment variable `OUTPUT_BUCKET` names. Records that
fail (a body that is not such JSON, an S3 error) are logged with the reason
and returned as the partial batch response, so only they come back.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from typing import Any

import boto3

log = logging.getLogger()
log.setLevel(logging.INFO)

# Made once per execution environment, outside the handler, as Lambda
# recommends: warm invocations reuse its connections.
s3 = boto3.client("s3")


class BadRecord(ValueError):
    """A body that is not the JSON this function expects."""


def parse(body: str) -> dict[str, Any]:
    """The record a message body carries; BadRecord says what is wrong."""
    try:
        record = json.loads(body)
    except ValueError as e:
        raise BadRecord(f"not JSON: {e}") from None
    if not isinstance(record, dict):
        raise BadRecord("not a JSON object")
    for field in ("bucket", "key"):
        if not isinstance(record.get(field), str) or not record[field]:
            raise BadRecord(f"{field!r} is not a non-empty string")
    for field in ("words", "lines"):
        if not isinstance(record.get(field), int) or isinstance(record[field], bool):
            raise BadRecord(f"{field!r} is not an integer")
    return record


def report(record: dict[str, Any], now: datetime) -> tuple[str, bytes]:
    """The key and body of the report of one record."""
    body = dict(record, processedAt=now.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    return f"reports/{record['key']}.json", json.dumps(body, sort_keys=True).encode()


def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    bucket = os.environ["OUTPUT_BUCKET"]
    failures: list[dict[str, str]] = []
    for message in event.get("Records", []):
        message_id = message["messageId"]
        try:
            key, body = report(parse(message.get("body", "")), datetime.now(timezone.utc))
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
            log.info("message %s: wrote s3://%s/%s", message_id, bucket, key)
        except BadRecord as e:
            log.error("message %s: bad record: %s", message_id, e)
            failures.append({"itemIdentifier": message_id})
        except Exception as e:  # botocore's ClientError, a connection error: retried later
            log.error("message %s: could not write its report: %s", message_id, e)
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
