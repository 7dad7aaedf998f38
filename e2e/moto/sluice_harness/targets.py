"""Deliveries of EventBridge rules and EventBridge Scheduler, as AWS makes them.

moto delivers a rule's matching events only to SQS, CloudWatch Logs,
archives and other buses, and Scheduler never fires. Here:

- a rule target that is a function is invoked asynchronously, if the
  function's resource policy lets events.amazonaws.com invoke it for that
  rule (AWS drops the event otherwise);
- a rule target that is a state machine starts an execution with the
  target's RoleArn, assumed as events.amazonaws.com;
- an SQS target is delivered by moto, once the queue's policy lets
  events.amazonaws.com send to it for that rule;
- S3 sends its EventBridge notifications to the account's default bus only
  (moto offered them to every bus);
- a schedule fires on demand (`fire`), or on time when the launcher runs the
  clock (`Clock`): its target is called with the schedule's RoleArn assumed
  as scheduler.amazonaws.com, retried per its RetryPolicy, and on failure its
  input goes to its DeadLetterConfig queue.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import threading
import time
import uuid
from datetime import UTC, datetime

from moto.events import models as events_models
from moto.events.utils import EventTemplateParser
from moto.s3 import notifications
from moto.scheduler.models import scheduler_backends
from moto.sqs.models import sqs_backends

from .context import Emulator, log
from .invoke import AsyncInvoker, function
from .roles import RoleError, assume


def _list(value) -> list:  # type: ignore[no-untyped-def]
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def resource_policy_allows(policy, service: str, action: str, resource: str, source_arn: str, account: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether a resource policy lets `service` do `action` on `resource`
    for `source_arn` (conditions on aws:SourceArn and aws:SourceAccount,
    evaluated as for callers: a negated operator holds on a key absent, an
    operator not evaluated here keeps an Allow from applying and makes a
    Deny apply)."""
    from .iam import _conditions

    if not policy:
        return False
    if isinstance(policy, str):
        policy = json.loads(policy)
    allowed = False
    context = {"aws:sourcearn": source_arn, "aws:sourceaccount": account}
    for statement in _list(policy.get("Statement")):
        principal = statement.get("Principal")
        services = _list(principal.get("Service")) if isinstance(principal, dict) else []
        if principal != "*" and service not in services:
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _list(statement.get("Action"))):
            continue
        resources = _list(statement.get("Resource")) or ["*"]
        if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
            continue
        held = _conditions(statement, context)
        if held is False or (held is None and statement.get("Effect") != "Deny"):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed = True
    return allowed


def _payload(target: dict, event: dict) -> str:
    if "Input" in target:
        return target["Input"]
    if "InputPath" in target:
        value = event
        for part in target["InputPath"].lstrip("$").strip(".").split("."):
            if part:
                value = value.get(part) if isinstance(value, dict) else None
        return json.dumps(value)
    transformer = target.get("InputTransformer")
    if transformer:
        result = EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=event,
        )
        return result if isinstance(result, str) else json.dumps(result)
    return json.dumps(event)


def _aws_time(event: dict) -> dict:
    """An event as AWS writes it: `time` in ISO 8601, not seconds."""
    event = copy.deepcopy(event)
    event.pop("ingestion-time", None)  # moto's bookkeeping, not in AWS's events
    if isinstance(event.get("time"), (int, float)):
        event["time"] = datetime.fromtimestamp(event["time"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


def patch_rules() -> None:
    original = events_models.Rule.send_to_targets

    def send_to_targets(self, original_event, transform_input: bool = True) -> None:  # type: ignore[no-untyped-def]
        if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
            return
        event = _aws_time(original_event)
        moto_targets = []
        for target in self.targets:
            arn = target["Arn"]
            service = arn.split(":")[2]
            try:
                if service == "lambda":
                    _to_function(self, target, event)
                elif service == "states":
                    _to_state_machine(self, target, event)
                elif service == "sqs":
                    _to_queue(self, target, event)
                else:
                    moto_targets.append(target)
            except Exception:
                log.exception("rule %s target %s", self.name, arn)
        if moto_targets:
            kept = self.targets
            self.targets = moto_targets
            try:
                original(self, original_event, transform_input)
            finally:
                self.targets = kept

    events_models.Rule.send_to_targets = send_to_targets


def _to_queue(rule, target: dict, event: dict) -> None:  # type: ignore[no-untyped-def]
    arn = target["Arn"]
    parts = arn.split(":")
    backend = sqs_backends[parts[4]][parts[3]]
    queue = backend.queues.get(parts[5])
    if queue is None:
        log.warning("rule %s: queue %s does not exist; event dropped", rule.arn, arn)
        return
    if not resource_policy_allows(queue.policy, "events.amazonaws.com", "sqs:SendMessage", arn, rule.arn, rule.account_id):
        log.warning("rule %s: queue %s does not let events.amazonaws.com send; event dropped", rule.arn, arn)
        return
    group = (target.get("SqsParameters") or {}).get("MessageGroupId")
    backend.send_message(
        queue_name=parts[5],
        message_body=_payload(target, event),
        group_id=group,
        deduplication_id=event.get("id") if group else None,
    )


def _to_function(rule, target: dict, event: dict) -> None:  # type: ignore[no-untyped-def]
    arn = target["Arn"]
    parts = arn.split(":")
    fn = function(arn, parts[3], parts[4])
    if fn is None:
        log.warning("rule %s: function %s does not exist; event dropped", rule.arn, arn)
        return
    if not resource_policy_allows(
        {"Statement": fn.policy.statements},
        "events.amazonaws.com",
        "lambda:InvokeFunction",
        fn.function_arn,
        rule.arn,
        rule.account_id,
    ):
        log.warning("rule %s: %s does not let events.amazonaws.com invoke it; event dropped", rule.arn, arn)
        return
    AsyncInvoker.submit(fn.function_arn, fn.region, fn.account_id, _payload(target, event).encode())


def _to_state_machine(rule, target: dict, event: dict) -> None:  # type: ignore[no-untyped-def]
    role = target.get("RoleArn")
    if not role:
        log.warning("rule %s: state machine target without RoleArn; event dropped", rule.arn)
        return
    region = target["Arn"].split(":")[3]
    creds = assume(role, "events.amazonaws.com", region)
    sfn = Emulator.client("stepfunctions", region, creds)
    execution = sfn.start_execution(stateMachineArn=target["Arn"], input=_payload(target, event))
    log.info("rule %s started %s", rule.name, execution["executionArn"])


def patch_s3_to_default_bus() -> None:
    """S3 sends its events to the default bus only."""

    def send(account_id, bucket, event_name, key) -> None:  # type: ignore[no-untyped-def]
        backend = events_models.events_backends[account_id][bucket.region_name]
        bus = backend.event_buses.get("default")
        if bus is None:
            return
        buses = backend.event_buses
        backend.event_buses = {"default": bus}
        try:
            original_send(account_id, bucket, event_name, key)
        finally:
            backend.event_buses = buses

    original_send = notifications._send_event_bridge_message
    notifications._send_event_bridge_message = send


# -- EventBridge Scheduler ----------------------------------------------------


class FireError(Exception):
    pass


def _schedule(name: str, group: str, account: str | None, region: str | None):  # type: ignore[no-untyped-def]
    for acct, regions in list(scheduler_backends.items()):
        if account and acct != account:
            continue
        for reg, backend in list(regions.items()):
            if region and reg != region:
                continue
            try:
                return backend.get_schedule(group, name), reg
            except Exception:
                continue
    raise FireError(f"schedule {group}/{name} does not exist")


def fire(
    name: str,
    group: str = "default",
    account: str | None = None,
    region: str | None = None,
    scheduled: str | None = None,
) -> dict:
    """Fires a schedule once, now, as Scheduler would at its time
    (`scheduled`, ISO 8601; default: this minute)."""
    schedule, region = _schedule(name, group or "default", account, region)
    target = dict(schedule.target)
    scheduled = scheduled or datetime.now(UTC).replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    execution = str(uuid.uuid4())
    policy = target.get("RetryPolicy") or {}
    attempts = 1 + int(policy.get("MaximumRetryAttempts", 185))
    max_age = float(policy.get("MaximumEventAgeInSeconds", 86400))
    started = time.monotonic()
    last_error = ""
    for attempt in range(1, attempts + 1):
        try:
            _call_target(target, region, _context(target.get("Input"), schedule.arn, scheduled, execution, attempt))
            log.info("schedule %s/%s fired (attempt %d)", group, name, attempt)
            return {"delivered": True, "attempts": attempt, "scheduledTime": scheduled}
        except RoleError as e:
            last_error = str(e)
        except Exception as e:
            last_error = str(e)
        if time.monotonic() - started + Emulator.delay(2**attempt) > Emulator.delay(max_age):
            break
        time.sleep(Emulator.delay(min(60.0, 2.0**attempt)))
    dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
    if dlq:
        _dead_letter(target, region, dlq, _context(target.get("Input"), schedule.arn, scheduled, execution, attempts), last_error)
    log.warning("schedule %s/%s: delivery failed: %s", group, name, last_error)
    return {"delivered": False, "error": last_error, "deadLetter": dlq}


def _context(text: str | None, arn: str, scheduled: str, execution: str, attempt: int) -> str:
    """The input with Scheduler's context attributes filled in."""
    text = text or "{}"
    for name, value in (
        ("schedule-arn", arn),
        ("scheduled-time", scheduled),
        ("execution-id", execution),
        ("attempt-number", str(attempt)),
    ):
        text = text.replace(f"<aws.scheduler.{name}>", value)
    return text


def _call_target(target: dict, region: str, body: str) -> None:
    creds = assume(target["RoleArn"], "scheduler.amazonaws.com", region)
    arn = target["Arn"]
    service = arn.split(":")[2]
    if service == "lambda":
        Emulator.client("lambda", region, creds).invoke(FunctionName=arn, InvocationType="Event", Payload=body.encode())
    elif service == "states":
        Emulator.client("stepfunctions", region, creds).start_execution(stateMachineArn=arn, input=body)
    elif service == "sqs":
        Emulator.client("sqs", region, creds).send_message(QueueUrl=Emulator.queue_url(arn), MessageBody=body)
    else:
        raise FireError(f"target service {service} is not delivered by this harness")


def _dead_letter(target: dict, region: str, dlq: str, body: str, error: str) -> None:
    try:
        creds = assume(target["RoleArn"], "scheduler.amazonaws.com", region)
        Emulator.client("sqs", region, creds).send_message(
            QueueUrl=Emulator.queue_url(dlq),
            MessageBody=body,
            MessageAttributes={
                "ERROR_CODE": {"DataType": "String", "StringValue": "DeliveryFailed"},
                "ERROR_MESSAGE": {"DataType": "String", "StringValue": error[:256] or "error"},
                "TARGET_ARN": {"DataType": "String", "StringValue": target["Arn"]},
            },
        )
    except Exception as e:
        log.warning("schedule dead letter to %s lost: %s", dlq, e)


class Clock(threading.Thread):
    """Fires schedules when they are due (for the demo; tests fire on demand)."""

    def __init__(self) -> None:
        super().__init__(name="scheduler-clock", daemon=True)
        self._next: dict[str, float] = {}

    def run(self) -> None:
        from .schedule_times import next_time

        while True:
            now = time.time()
            try:
                for acct, regions in list(scheduler_backends.items()):
                    for region, backend in list(regions.items()):
                        schedules = [s for g in list(backend.schedule_groups.values()) for s in list(g.schedules.values())]
                        for schedule in schedules:
                            key = f"{acct}/{region}/{schedule.group_name}/{schedule.name}"
                            if schedule.state != "ENABLED":
                                self._next.pop(key, None)
                                continue
                            due = self._next.get(key)
                            if due is None:
                                self._next[key] = next_time(schedule.schedule_expression, schedule.schedule_expression_timezone, now)
                                continue
                            if due <= now:
                                self._next[key] = next_time(schedule.schedule_expression, schedule.schedule_expression_timezone, now + 1)
                                threading.Thread(target=fire, args=(schedule.name, schedule.group_name, acct, region), daemon=True).start()
            except Exception:
                log.exception("scheduler clock")
            time.sleep(1)
