"""IAM enforced on every request, closer to AWS than moto's own check.

moto (INITIAL_NO_AUTH_ACTION_COUNT) checks a request's signature and its
action, but it names the resource only for S3, SQS, IAM roles and STS
AssumeRole (every other request is checked against "*", so a policy scoped
to ARNs allows nothing) and it evaluates conditions only in trust policies.
Here, once enforcement is on, each request is authorized as AWS would:

- the IAM action (`lambda:InvokeFunction` for Invoke, `sqs:SendMessage` for
  SendMessageBatch, ...) on the ARN the request names, derived per service
  from its parameters (`resources()` below);
- every statement of the caller's identity policies (inline and attached)
  and, for a role, its permissions boundary: an explicit Deny wins, else an
  Allow is needed; Action/NotAction, Resource/NotResource and the condition
  operators String*, Arn*, Bool and Null (…IfExists too) on the keys the
  request carries (`iam:PassedToService`, `lambda:FunctionArn`);
- the actions a request implies: iam:PassRole for a role handed to Lambda,
  Step Functions, EventBridge or Scheduler (with iam:PassedToService), and
  the CloudWatch Logs delivery actions for a state machine that logs.

Lambda's own checks on the execution role are made too: a mapping is
refused when the role may not read its source or send to its on-failure
destination, and an event invoke configuration when the role may not send
to its destinations (as CreateEventSourceMapping and
PutFunctionEventInvokeConfig refuse on AWS).

Every refusal is logged and kept (`GET /_sluice/denials`) with the
principal, action and resource, so a failing test names the missing grant.
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
import threading
import time
from urllib.parse import parse_qs, unquote, urlparse

from moto import settings
from moto.awslambda.models import lambda_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam import access_control
from moto.iam.models import iam_backends

from .context import Credentials, log

ADMIN = Credentials("AKIASLUICEHARNESS000", "sluice-harness-admin-secret")
ENABLED = os.environ.get("SLUICE_HARNESS_IAM", "") == "enforce"

_denials: list[dict] = []
_lock = threading.Lock()

# Operations whose IAM action differs from their name.
_ACTIONS = {
    "lambda": {"Invoke": "InvokeFunction", "InvokeAsync": "InvokeFunction", "ListTags": "ListTags"},
    "sqs": {
        "SendMessageBatch": "SendMessage",
        "DeleteMessageBatch": "DeleteMessage",
        "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
    },
    "s3": {
        "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
        "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
        "DeletePublicAccessBlock": "PutBucketPublicAccessBlock",
        "HeadBucket": "ListBucket",
        "DeleteObjects": "DeleteObject",
    },
    "states": {},
}
# The credential scope names the service as SigV4 signs it.
_SCOPE = {"monitoring": "cloudwatch"}


def denials() -> list[dict]:
    with _lock:
        return list(_denials)


# -- policy evaluation --------------------------------------------------------


def _list(value) -> list:  # type: ignore[no-untyped-def]
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, case: bool) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _condition(operator: str, key: str, expected, context: dict[str, str]) -> bool:  # type: ignore[no-untyped-def]
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    actual = context.get(key.lower())
    if operator == "Null":
        return (actual is None) == (str(_list(expected)[0]).lower() == "true")
    if actual is None:
        return if_exists
    patterns = [str(p) for p in _list(expected)]
    negate = "Not" in operator
    base = operator.replace("Not", "")
    if base in ("StringEquals", "ArnEquals"):
        ok = actual in patterns
    elif base == "StringEqualsIgnoreCase":
        ok = actual.lower() in [p.lower() for p in patterns]
    elif base in ("StringLike", "ArnLike"):
        ok = any(fnmatch.fnmatchcase(actual, p) for p in patterns)
    elif base == "Bool":
        ok = actual.lower() in [p.lower() for p in patterns]
    else:
        return False  # an operator this evaluator does not know never allows
    return not ok if negate else ok


def _statement_applies(statement: dict, action: str, resource: str, context: dict[str, str]) -> bool:
    if "NotAction" in statement:
        if any(_glob(a, action, False) for a in _list(statement["NotAction"])):
            return False
    elif not any(_glob(a, action, False) for a in _list(statement.get("Action"))):
        return False
    if "NotResource" in statement:
        if any(_glob(r, resource, True) for r in _list(statement["NotResource"])):
            return False
    elif not any(_glob(r, resource, True) for r in _list(statement.get("Resource"))):
        return False
    for operator, entries in (statement.get("Condition") or {}).items():
        for key, expected in entries.items():
            if not _condition(operator, key, expected, context):
                return False
    return True


def decide(documents: list[dict], action: str, resource: str, context: dict[str, str]) -> str:
    """"Allow", "Deny" (explicit) or "Implicit" (nothing allows it)."""
    allowed = False
    for document in documents:
        for statement in _list(document.get("Statement")):
            if _statement_applies(statement, action, resource, context):
                if statement.get("Effect") == "Deny":
                    return "Deny"
                allowed = True
    return "Allow" if allowed else "Implicit"


def _document(policy) -> dict:  # type: ignore[no-untyped-def]
    if isinstance(policy, dict) and "Statement" in policy:
        return policy
    parsed = access_control.IAMPolicy(policy)._policy_json
    return parsed


def _managed(account: str, arn: str) -> dict | None:
    backend = iam_backends[account]["aws"]
    try:
        policy = backend.get_policy(arn)
    except Exception:
        return None
    return _document(policy)


def role_documents(role_arn: str) -> tuple[list[dict], dict | None]:
    """A role's identity policies and its permissions boundary."""
    account = role_arn.split(":")[4]
    backend = iam_backends[account]["aws"]
    role = backend.get_role_by_arn(role_arn)
    documents = []
    for name in backend.list_role_policies(role.name):
        _, document = backend.get_role_policy(role.name, name)
        documents.append(json.loads(unquote(document)) if isinstance(document, str) else document)
    attached, _ = backend.list_attached_role_policies(role.name)
    documents += [_document(p) for p in attached]
    boundary_arn = getattr(role, "permissions_boundary_arn", None)
    boundary = _managed(account, boundary_arn) if boundary_arn else None
    return documents, boundary


def role_may(role_arn: str, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    try:
        documents, boundary = role_documents(role_arn)
    except Exception:
        return False
    context = {k.lower(): v for k, v in (context or {}).items()}
    if decide(documents, action, resource, context) != "Allow":
        return False
    return boundary is None or decide([boundary], action, resource, context) == "Allow"


# -- what a request asks for --------------------------------------------------


class _Request:
    def __init__(self, req) -> None:  # type: ignore[no-untyped-def]
        service, operation = req._action.split(":", 1)
        self.service = _SCOPE.get(service, service)
        self.operation = operation
        self.region = req._region
        self.account = req.account_id
        url = urlparse(req._path)
        self.path = unquote(url.path)
        self.query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.params: dict = {}
        body = req._body
        if isinstance(body, bytes):
            try:
                body = body.decode()
            except UnicodeDecodeError:
                body = ""
        if isinstance(body, str) and body.strip().startswith("{"):
            try:
                self.params = json.loads(body)
            except ValueError:
                self.params = {}
        for key, value in (req._data or {}).items():
            self.params.setdefault(key, value[0] if isinstance(value, list) and value else value)

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"

    def get(self, *names: str) -> str | None:
        for name in names:
            value = self.params.get(name)
            if value:
                return value
        return None


def _function_arn(r: _Request, name: str) -> str:
    if name.startswith("arn:"):
        parts = name.split(":")
        return ":".join(parts[:7])
    parts = name.split(":")
    if len(parts) >= 3:  # account:function:name / partial ARN
        return r.arn("lambda", f"function:{parts[-2] if parts[-1].isdigit() else parts[-1]}")
    return r.arn("lambda", f"function:{parts[0]}")


def _esm_function(account: str, region: str, uuid: str) -> str | None:
    try:
        esm = lambda_backends[account][region].get_event_source_mapping(uuid)
    except Exception:
        return None
    return esm.function_arn if esm else None


def _lambda(r: _Request) -> list[tuple[str, str, dict]]:
    parts = [p for p in r.path.split("/") if p]
    context: dict[str, str] = {}
    if "event-source-mappings" in parts:
        index = parts.index("event-source-mappings")
        uuid = parts[index + 1] if len(parts) > index + 1 else None
        function = r.get("FunctionName")
        arn = r.arn("lambda", f"event-source-mapping:{uuid or '*'}")
        if function:
            context["lambda:functionarn"] = _function_arn(r, function)
        elif uuid:
            found = _esm_function(r.account, r.region, uuid)
            if found:
                context["lambda:functionarn"] = found
        if r.operation == "ListEventSourceMappings":
            return [("lambda:ListEventSourceMappings", "*", context)]
        return [(f"lambda:{r.operation}", arn, context)]
    if "tags" in parts:
        index = parts.index("tags")
        return [(f"lambda:{_ACTIONS['lambda'].get(r.operation, r.operation)}", ":".join(parts[index + 1 :]) if len(parts) > index + 1 else "*", context)]
    if "functions" in parts:
        index = parts.index("functions")
        name = parts[index + 1] if len(parts) > index + 1 else r.get("FunctionName")
        resource = _function_arn(r, name) if name else "*"
        action = f"lambda:{_ACTIONS['lambda'].get(r.operation, r.operation)}"
        if r.operation == "ListFunctions":
            resource = "*"
        return [(action, resource, context)]
    return [(f"lambda:{r.operation}", "*", context)]


def _dynamodb(r: _Request) -> list[tuple[str, str, dict]]:
    action = f"dynamodb:{r.operation}"
    if r.operation in ("BatchWriteItem", "BatchGetItem"):
        return [(action, r.arn("dynamodb", f"table/{t}"), {}) for t in (r.params.get("RequestItems") or {})]
    if r.operation in ("ListTables", "DescribeLimits", "DescribeEndpoints"):
        return [(action, "*", {})]
    table = r.get("TableName")
    if table:
        return [(action, table if table.startswith("arn:") else r.arn("dynamodb", f"table/{table}"), {})]
    return [(action, r.get("ResourceArn") or "*", {})]


def _kinesis(r: _Request) -> list[tuple[str, str, dict]]:
    action = f"kinesis:{r.operation}"
    arn = r.get("StreamARN")
    name = r.get("StreamName")
    if arn:
        return [(action, arn, {})]
    if name:
        return [(action, r.arn("kinesis", f"stream/{name}"), {})]
    return [(action, "*", {})]


def _bus_arn(r: _Request, bus: str | None) -> str:
    bus = bus or "default"
    return bus if bus.startswith("arn:") else r.arn("events", f"event-bus/{bus}")


def _events(r: _Request) -> list[tuple[str, str, dict]]:
    action = f"events:{r.operation}"
    if r.operation == "PutEvents":
        buses = {e.get("EventBusName") for e in (r.params.get("Entries") or [])} or {None}
        return [(action, _bus_arn(r, b), {}) for b in buses]
    if r.operation in ("CreateEventBus", "DeleteEventBus", "DescribeEventBus"):
        return [(action, _bus_arn(r, r.get("Name")), {})]
    if r.operation in ("TagResource", "UntagResource", "ListTagsForResource"):
        return [(action, r.get("ResourceARN") or "*", {})]
    rule = r.get("Name", "Rule")
    if rule:
        bus = r.get("EventBusName")
        bus_name = bus.split("/")[-1] if bus else "default"
        resource = f"rule/{rule}" if bus_name == "default" else f"rule/{bus_name}/{rule}"
        return [(action, r.arn("events", resource), {})]
    return [(action, "*", {})]


def _states(r: _Request) -> list[tuple[str, str, dict]]:
    action = f"states:{r.operation}"
    arn = r.get("stateMachineArn", "executionArn", "resourceArn")
    if not arn and r.operation == "CreateStateMachine":
        arn = r.arn("states", f"stateMachine:{r.get('name')}")
    return [(action, arn or "*", {})]


def _scheduler(r: _Request) -> list[tuple[str, str, dict]]:
    parts = [p for p in r.path.split("/") if p]
    action = f"scheduler:{r.operation}"
    if len(parts) >= 2 and parts[0] == "schedules":
        group = r.query.get("groupName") or r.get("GroupName") or "default"
        return [(action, r.arn("scheduler", f"schedule/{group}/{parts[1]}"), {})]
    if len(parts) >= 2 and parts[0] == "schedule-groups":
        return [(action, r.arn("scheduler", f"schedule-group/{parts[1]}"), {})]
    return [(action, "*", {})]


def _logs(r: _Request) -> list[tuple[str, str, dict]]:
    action = f"logs:{r.operation}"
    group = r.get("logGroupName")
    stream = r.get("logStreamName")
    if r.operation in ("TagResource", "UntagResource", "ListTagsForResource"):
        return [(action, r.get("resourceArn") or "*", {})]
    if group and stream:
        return [(action, r.arn("logs", f"log-group:{group}:log-stream:{stream}"), {})]
    if group:
        return [(action, r.arn("logs", f"log-group:{group}:*"), {})]
    return [(action, "*", {})]


def _sqs(r: _Request, moto_resource: str) -> list[tuple[str, str, dict]]:
    action = f"sqs:{_ACTIONS['sqs'].get(r.operation, r.operation)}"
    if moto_resource not in ("*", None):
        return [(action, moto_resource, {})]
    name = r.get("QueueName")
    if not name and r.get("QueueUrl"):
        name = r.get("QueueUrl").rstrip("/").split("/")[-1]
    if name:
        return [(action, r.arn("sqs", name), {})]
    return [(action, "*", {})]


def _iam(r: _Request, moto_resource: str) -> list[tuple[str, str, dict]]:
    role = r.get("RoleName")
    resource = moto_resource
    if role and resource in ("*", None):
        resource = f"arn:aws:iam::{r.account}:role/{role}"
    return [(f"iam:{r.operation}", resource or "*", {})]


def _passed_roles(r: _Request) -> list[tuple[str, str]]:
    """(role ARN, service) pairs a request hands to a service."""
    if r.service == "lambda" and r.operation in ("CreateFunction", "UpdateFunctionConfiguration"):
        role = r.get("Role")
        return [(role, "lambda.amazonaws.com")] if role else []
    if r.service == "states" and r.operation in ("CreateStateMachine", "UpdateStateMachine"):
        role = r.get("roleArn")
        return [(role, "states.amazonaws.com")] if role else []
    if r.service == "events" and r.operation == "PutTargets":
        return [(t["RoleArn"], "events.amazonaws.com") for t in (r.params.get("Targets") or []) if t.get("RoleArn")]
    if r.service == "scheduler" and r.operation in ("CreateSchedule", "UpdateSchedule"):
        role = (r.params.get("Target") or {}).get("RoleArn")
        return [(role, "scheduler.amazonaws.com")] if role else []
    return []


_LOG_DELIVERY = [
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
]


def resources(req, moto_resource: str) -> list[tuple[str, str, dict]]:  # type: ignore[no-untyped-def]
    """(IAM action, resource ARN, condition context) the request needs."""
    r = _Request(req)
    if r.service == "s3":
        return [(f"s3:{_ACTIONS['s3'].get(r.operation, r.operation)}", moto_resource, {})]
    handlers = {
        "lambda": _lambda,
        "dynamodb": _dynamodb,
        "kinesis": _kinesis,
        "events": _events,
        "states": _states,
        "scheduler": _scheduler,
        "logs": _logs,
    }
    if r.service in handlers:
        needed = handlers[r.service](r)
    elif r.service == "sqs":
        needed = _sqs(r, moto_resource)
    elif r.service == "iam":
        needed = _iam(r, moto_resource)
    else:
        needed = [(f"{r.service}:{r.operation}", moto_resource or "*", {})]
    for role, service in _passed_roles(r):
        needed.append(("iam:PassRole", role, {"iam:passedtoservice": service}))
    if r.service == "states" and (r.params.get("loggingConfiguration") or {}).get("destinations"):
        needed += [(a, "*", {}) for a in _LOG_DELIVERY]
    return needed


# -- the check moto calls -----------------------------------------------------


def _principal_documents(request) -> tuple[list[dict], dict | None]:  # type: ignore[no-untyped-def]
    key = request._access_key
    documents = [_document(p) for p in key.collect_policies()]
    boundary = None
    role_name = getattr(key, "_owner_role_name", None)
    if role_name:
        try:
            role = iam_backends[request.account_id]["aws"].get_role(role_name)
            if getattr(role, "permissions_boundary_arn", None):
                boundary = _managed(request.account_id, role.permissions_boundary_arn)
        except Exception:
            pass
    return documents, boundary


def install() -> None:
    original = access_control.IAMRequestBase.check_action_permitted

    def check_action_permitted(self, resource: str) -> None:  # type: ignore[no-untyped-def]
        if self._action in ("sts:GetCallerIdentity", "sts:AssumeRole"):
            return original(self, resource)
        documents, boundary = _principal_documents(self)
        for action, target, context in resources(self, resource):
            verdict = decide(documents, action, target, context)
            if verdict == "Allow" and boundary is not None:
                verdict = decide([boundary], action, target, context)
            if verdict != "Allow":
                _record(self._access_key.arn, action, target, self._action, verdict)
                self._raise_access_denied()

    access_control.IAMRequestBase.check_action_permitted = check_action_permitted

    original_signature = access_control.IAMRequestBase.check_signature

    def check_signature(self) -> None:  # type: ignore[no-untyped-def]
        try:
            original_signature(self)
        except Exception:
            _record(self._access_key.arn, self._action, self._path, self._action, "SignatureDoesNotMatch")
            if os.environ.get("SLUICE_HARNESS_DEBUG_SIGV4"):
                auth = self._create_auth(self._access_key.create_credentials())
                log.warning("canonical request here:\n%s", auth.canonical_request(self._create_aws_request()))
            raise

    access_control.IAMRequestBase.check_signature = check_signature

    original_aws_request = access_control.IAMRequestBase._create_aws_request

    def create_aws_request(self):  # type: ignore[no-untyped-def]
        request = original_aws_request(self)
        raw = getattr(_request, "body", None)
        if raw is not None:
            request.data = raw
        return request

    access_control.IAMRequestBase._create_aws_request = create_aws_request


_request = threading.local()


def keep_raw_body(environ) -> None:  # type: ignore[no-untyped-def]
    """Keeps the request's bytes for the signature check: moto rebuilds the
    body from its parsed fields to verify a signature (a form re-encoded, a
    GET given the parsed parameters), which differs from what an SDK other
    than boto3 signed (the Rust SDK's percent-encoding, its empty GET
    bodies), so such requests failed as SignatureDoesNotMatch."""
    _request.body = None
    if not ENABLED:
        return
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    _request.body = body


def _record(principal: str, action: str, resource: str, request: str, verdict: str) -> None:
    entry = {
        "principal": principal,
        "action": action,
        "resource": resource,
        "request": request,
        "verdict": verdict,
        "at": time.time(),
    }
    with _lock:
        _denials.append(entry)
        del _denials[:-1000]
    log.warning("IAM denied %s %s on %s (%s)", principal, action, resource, verdict)


# -- principals ---------------------------------------------------------------


def _user(name: str, document: dict, creds: Credentials | None = None) -> Credentials:
    backend = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    try:
        backend.get_user(name)
    except Exception:
        backend.create_user(region_name="us-east-1", user_name=name, path="/", tags=[])
    backend.put_user_policy(name, "policy", json.dumps(document))
    key = backend.create_access_key(name)
    if creds is not None:
        key.access_key_id = creds.access_key_id
        key.secret_access_key = creds.secret_access_key
    return Credentials(key.access_key_id, key.secret_access_key)


def secret_of(access_key_id: str) -> str:
    """The secret of an IAM user's key or of assumed-role credentials."""
    backend = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for user in backend.list_users("/", None, None):
        for key in user.access_keys:
            if key.access_key_id == access_key_id:
                return key.secret_access_key
    from moto.sts.models import sts_backends

    for role in sts_backends[DEFAULT_ACCOUNT_ID]["aws"].assumed_roles:
        if role.access_key_id == access_key_id:
            return role.secret_access_key
    raise KeyError(access_key_id)


_operators: dict[str, Credentials] = {}


def operator_user(prefix: str, policy_path: str) -> Credentials:
    """An IAM user holding exactly the documented operator policy, rendered
    for `prefix` (ACCOUNT_ID and the `sluice-` name prefix replaced)."""
    with _lock:
        if prefix in _operators:
            return _operators[prefix]
    with open(policy_path, encoding="utf-8") as f:
        text = f.read().replace("ACCOUNT_ID", DEFAULT_ACCOUNT_ID).replace("sluice-", f"{prefix}-")
    creds = _user(f"operator-{prefix}", json.loads(text))
    with _lock:
        _operators[prefix] = creds
    return creds


def enable() -> None:
    """Creates the administrator the tests and tools act as, and turns on
    enforcement for every request from now on."""
    install()
    _user(
        "sluice-harness-admin",
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
        ADMIN,
    )
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    log.info("IAM enforced: act as %s (the administrator) or a role", ADMIN.access_key_id)
