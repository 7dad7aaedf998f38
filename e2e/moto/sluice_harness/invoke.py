"""Lambda's invocation types, as AWS documents them.

- RequestResponse runs the function and answers with its result; a function
  error sets `X-Amz-Function-Error: Unhandled`.
- Event (asynchronous: the Invoke API with that type, S3 notifications,
  EventBridge rules, Scheduler) answers 202 at once and queues the event.
  A function error is retried up to the function's MaximumRetryAttempts
  (default 2), one minute before the second attempt and two before the third;
  an event older than MaximumEventAgeInSeconds is dropped. What then happens
  follows the function's event invoke configuration: the invocation record
  goes to the OnFailure (or OnSuccess) destination, sent with the execution
  role's credentials, so a role that may not send there loses the record as
  AWS would; without a failure destination, the function's dead-letter queue
  gets the event.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from moto.awslambda.utils import get_backend

from .context import Emulator, log
from .lambda_runtime import Result, Runtimes
from .roles import RoleError, assume

_DEFAULT_RETRIES = 2
_DEFAULT_MAX_AGE = 6 * 3600
# Seconds before the second and the third attempt.
_RETRY_DELAYS = (60.0, 120.0)
_WORKERS = 6


def header(headers, name: str) -> str | None:  # type: ignore[no-untyped-def]
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def as_bytes(body) -> bytes:  # type: ignore[no-untyped-def]
    if body is None or body == "":
        return b"{}"
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


def invoke_function(fn, body, request_headers, response_headers):  # type: ignore[no-untyped-def]
    """Replaces moto's LambdaFunction.invoke (every Invoke API call)."""
    kind = header(request_headers, "X-Amz-Invocation-Type") or "RequestResponse"
    payload = as_bytes(body)
    if kind == "DryRun":
        return b""
    if kind == "Event":
        AsyncInvoker.submit(fn.function_arn, fn.region, fn.account_id, payload)
        return b""
    result = Runtimes.invoke(fn, payload)
    if result.failed:
        response_headers["x-amz-function-error"] = "Unhandled"
    tail = result.logs.encode()[-4096:]
    response_headers["x-amz-log-result"] = base64.b64encode(tail).decode()
    response_headers["x-amz-executed-version"] = "$LATEST"
    return result.payload


def function(arn: str, region: str, account: str):  # type: ignore[no-untyped-def]
    """moto's function by ARN, or None once it is gone."""
    try:
        return get_backend(account, region).get_function(arn)
    except Exception:
        return None


@dataclass(order=True)
class _Queued:
    due: float
    seq: int
    arn: str = field(compare=False)
    region: str = field(compare=False)
    account: str = field(compare=False)
    payload: bytes = field(compare=False)
    first_seen: float = field(compare=False)
    attempt: int = field(compare=False, default=1)


class AsyncInvoker:
    """Lambda's internal queue for asynchronous invocations."""

    _heap: list[_Queued] = []
    _seq = itertools.count()
    _cond = threading.Condition()
    _in_flight = 0
    _started = False

    @classmethod
    def start(cls) -> None:
        if cls._started:
            return
        cls._started = True
        for n in range(_WORKERS):
            threading.Thread(target=cls._work, name=f"async-invoke-{n}", daemon=True).start()

    @classmethod
    def submit(cls, arn: str, region: str, account: str, payload: bytes) -> None:
        now = time.time()
        with cls._cond:
            heapq.heappush(cls._heap, _Queued(now, next(cls._seq), arn, region, account, payload, now))
            cls._cond.notify()

    @classmethod
    def pending(cls) -> int:
        with cls._cond:
            return len(cls._heap) + cls._in_flight

    @classmethod
    def _next(cls) -> _Queued:
        with cls._cond:
            while True:
                if cls._heap:
                    wait = cls._heap[0].due - time.time()
                    if wait <= 0:
                        cls._in_flight += 1
                        return heapq.heappop(cls._heap)
                    cls._cond.wait(wait)
                else:
                    cls._cond.wait()

    @classmethod
    def _work(cls) -> None:
        while True:
            item = cls._next()
            try:
                cls._run(item)
            except Exception:
                log.exception("async invocation of %s", item.arn)
            finally:
                with cls._cond:
                    cls._in_flight -= 1

    @classmethod
    def _run(cls, item: _Queued) -> None:
        fn = function(item.arn, item.region, item.account)
        if fn is None:
            log.info("async event for %s dropped: the function is gone", item.arn)
            return
        config = _invoke_config(fn)
        max_age = config.get("MaximumEventAgeInSeconds", _DEFAULT_MAX_AGE)
        if time.time() - item.first_seen > max_age:
            cls._finish(fn, config, item, None, "EventAgeExceeded")
            return
        result = Runtimes.invoke(fn, item.payload)
        if not result.failed:
            cls._finish(fn, config, item, result, None)
            return
        retries = config.get("MaximumRetryAttempts", _DEFAULT_RETRIES)
        if item.attempt <= retries:
            delay = Emulator.delay(_RETRY_DELAYS[min(item.attempt - 1, len(_RETRY_DELAYS) - 1)])
            with cls._cond:
                heapq.heappush(
                    cls._heap,
                    _Queued(
                        time.time() + delay,
                        next(cls._seq),
                        item.arn,
                        item.region,
                        item.account,
                        item.payload,
                        item.first_seen,
                        item.attempt + 1,
                    ),
                )
                cls._cond.notify()
            return
        cls._finish(fn, config, item, result, "RetriesExhausted")

    @classmethod
    def _finish(cls, fn, config: dict, item: _Queued, result: Result | None, condition: str | None) -> None:  # type: ignore[no-untyped-def]
        destinations = config.get("DestinationConfig") or {}
        target = (destinations.get("OnFailure") if condition else destinations.get("OnSuccess")) or {}
        arn = target.get("Destination")
        if arn:
            record = _record(fn, item, result, condition or "Success")
            deliver_record(fn, arn, record, success=condition is None)
            return
        dlq = ((getattr(fn, "dead_letter_config", None) or {}).get("TargetArn")) if condition else None
        if dlq:
            deliver_dead_letter(fn, dlq, item.payload, result)
        elif condition:
            log.warning("async event for %s lost after %s: no destination", fn.function_name, condition)


def _invoke_config(fn) -> dict:  # type: ignore[no-untyped-def]
    configs = getattr(fn, "event_invoke_config", None) or []
    return dict(configs[0].config) if configs else {}


def _record(fn, item: _Queued, result: Result | None, condition: str) -> dict:  # type: ignore[no-untyped-def]
    try:
        request = json.loads(item.payload)
    except ValueError:
        request = item.payload.decode(errors="replace")
    record: dict = {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": result.request_id if result else "",
            "functionArn": f"{fn.function_arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": item.attempt,
        },
        "requestPayload": request,
    }
    if result is not None:
        response: dict = {"statusCode": 200, "executedVersion": "$LATEST"}
        if result.failed:
            response["functionError"] = "Unhandled"
        record["responseContext"] = response
        record["responsePayload"] = result.json()
    return record


def deliver_record(fn, destination: str, record: dict, success: bool) -> None:  # type: ignore[no-untyped-def]
    """Sends an invocation record where the destination ARN says, as the function's role."""
    service = destination.split(":")[2]
    body = json.dumps(record)
    try:
        creds = assume(fn.role, "lambda.amazonaws.com", fn.region)
        if service == "sqs":
            sqs = Emulator.client("sqs", fn.region, creds)
            sqs.send_message(QueueUrl=Emulator.queue_url(destination), MessageBody=body)
        elif service == "sns":
            Emulator.client("sns", fn.region, creds).publish(TopicArn=destination, Message=body)
        elif service == "lambda":
            Emulator.client("lambda", fn.region, creds).invoke(
                FunctionName=destination, InvocationType="Event", Payload=body.encode()
            )
        elif service == "events":
            Emulator.client("events", fn.region, creds).put_events(
                Entries=[
                    {
                        "Source": "lambda",
                        "DetailType": f"Lambda Function Invocation Result - {'Success' if success else 'Failure'}",
                        "Detail": body,
                        "Resources": [fn.function_arn, destination],
                        "EventBusName": destination,
                    }
                ]
            )
        else:
            log.warning("destination %s of %s: %s is not a destination service", destination, fn.function_name, service)
            return
        log.info("invocation record of %s sent to %s", fn.function_name, destination)
    except RoleError as e:
        log.warning("invocation record of %s lost: %s", fn.function_name, e)
    except Exception as e:  # an AccessDenied, a missing queue: lost, as on AWS
        log.warning("invocation record of %s to %s lost: %s", fn.function_name, destination, e)


def deliver_dead_letter(fn, target: str, payload: bytes, result: Result | None) -> None:  # type: ignore[no-untyped-def]
    error = result.json() if result else {}
    attributes = {
        "RequestID": {"DataType": "String", "StringValue": result.request_id if result else ""},
        "ErrorCode": {"DataType": "Number", "StringValue": "200"},
        "ErrorMessage": {
            "DataType": "String",
            "StringValue": (error.get("errorMessage") if isinstance(error, dict) else str(error)) or "error",
        },
    }
    try:
        creds = assume(fn.role, "lambda.amazonaws.com", fn.region)
        if target.split(":")[2] == "sqs":
            sqs = Emulator.client("sqs", fn.region, creds)
            sqs.send_message(QueueUrl=Emulator.queue_url(target), MessageBody=payload.decode(), MessageAttributes=attributes)
        else:
            Emulator.client("sns", fn.region, creds).publish(
                TopicArn=target, Message=payload.decode(), MessageAttributes=attributes
            )
    except Exception as e:
        log.warning("dead letter of %s to %s lost: %s", fn.function_name, target, e)
