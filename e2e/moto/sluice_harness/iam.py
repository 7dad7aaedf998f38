"""IAM enforced on every request, closer to AWS than moto's own check.

moto (INITIAL_NO_AUTH_ACTION_COUNT) checks a request's signature and its
action, but it names the resource only for S3, SQS, IAM roles and STS
AssumeRole (every other request is checked against "*", so a policy scoped
to ARNs allows nothing), it evaluates conditions only in trust policies, and
it lets any account reach any bucket. Here, once enforcement is on, each
request is authorized as AWS would:

- the IAM action (`lambda:InvokeFunction` for Invoke, `sqs:SendMessage` for
  SendMessageBatch, ...) on the ARN the request names, derived per service
  from its parameters (`resources()` below); an IAM role by its real ARN,
  path included (`role/sluice/sluice-x`);
- every statement of the caller's identity policies (inline and attached)
  and, for a role, its permissions boundary (a boundary naming a policy that
  does not exist allows nothing): an explicit Deny wins, else an Allow is
  needed; Action/NotAction, Resource/NotResource and the condition operators
  String*, Arn*, Bool and Null (…IfExists too, and ForAllValues:/ForAnyValue:
  on a multivalued key), with AWS's rule for a key the request does not
  carry (a negated operator holds, others do not); an operator this
  evaluator does not know fails closed both ways (an Allow does not allow,
  a Deny denies);
- the condition keys the request carries: `aws:RequestedRegion`,
  `aws:PrincipalAccount`, `aws:PrincipalArn`, `iam:PermissionsBoundary`,
  `iam:PolicyARN`, `iam:PassedToService`, `s3:ResourceAccount`,
  `events:source` and `events:detail-type` (each PutEvents entry on its
  own), `lambda:FunctionArn`, `sts:ExternalId`, `sts:RoleSessionName`, and
  for AssumeRole's session tags `aws:RequestTag/<key>`, `aws:TagKeys` and
  `sts:TransitiveTagKeys`;
- AssumeRole with session tags or TransitiveTagKeys needs sts:TagSession
  on the role besides sts:AssumeRole, each granted by the caller's policies
  and the role's trust policy; its input is validated first (sts.py);
- resource policies, account against account: an S3 bucket policy, an SQS
  queue policy, a KMS key policy or a role's trust policy (sts:AssumeRole,
  sts:TagSession) may grant a caller what its identity policies do not
  (same account), and must grant it (another account: identity policies
  AND the resource policy; KMS keys and trust policies: always, or
  delegate to the account); another account's resource of any other
  service is refused;
- S3's `x-amz-expected-bucket-owner`: a bucket owned by another account is
  refused, whoever asks;
- the actions a request implies: iam:PassRole for a role handed to Lambda,
  Step Functions, EventBridge or Scheduler (with iam:PassedToService), and
  the CloudWatch Logs delivery actions for a state machine that logs.

Lambda's own checks on the execution role are made too: a mapping is
refused when the role may not read its source or send to its on-failure
destination, and an event invoke configuration when the role may not send
to its destinations (as CreateEventSourceMapping and
PutFunctionEventInvokeConfig refuse on AWS).

Every refusal is logged and kept (`GET /_sluice/denials`) with the
principal, action and resource, so a failing test names the missing grant;
so is every request refused because its session had ended (sts.py), also
at `GET /_sluice/sts/expired`.

`account_role` makes, in any account, the role an operator assumes to act
there (an AWS identity per namespace), with that account's pipeline
boundary beside it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlparse

from moto import settings
from moto.awslambda.models import lambda_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam import access_control
from moto.iam.models import iam_backends

from .context import Credentials, log
from .sts import Session, session_tags, validate

ADMIN = Credentials("AKIASLUICEHARNESS000", "sluice-harness-admin-secret")
ENABLED = os.environ.get("SLUICE_HARNESS_IAM", "") == "enforce"
# The region the operator's policy allows by default (its "ALLOWED_REGION").
REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

_ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
_ACCOUNT = re.compile(r"[0-9]{12}")

_denials: list[dict] = []
_lock = threading.Lock()
_users_lock = threading.Lock()

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


# The actions IAM allowed, by principal ARN: which of an operator policy's
# grants the run needed (e2e/tests/coverage.rs).
_allowed: dict[str, set[str]] = {}


def allowed(principal_contains: str) -> list[str]:
    """The actions allowed so far to the principals whose ARN contains
    `principal_contains`, sorted."""
    with _lock:
        return sorted({a for p, acts in _allowed.items() if principal_contains in p for a in acts})


# -- policy evaluation --------------------------------------------------------


def _list(value) -> list:  # type: ignore[no-untyped-def]
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


_compiled: dict[tuple[str, bool], re.Pattern] = {}


def _glob(pattern: str, value: str, case: bool) -> bool:
    """IAM's wildcards: `*` any run of characters, `?` one (no [] classes)."""
    key = (pattern, case)
    compiled = _compiled.get(key)
    if compiled is None:
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
        compiled = re.compile(regex, re.DOTALL | (0 if case else re.IGNORECASE))
        _compiled[key] = compiled
    return compiled.fullmatch(value) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """ArnLike/ArnEquals: each of the six colon-separated parts on its own."""
    p, v = pattern.split(":", 5), value.split(":", 5)
    if len(p) != len(v):
        return len(p) == 1 and _glob(pattern, value, True)
    return all(_glob(a, b, True) for a, b in zip(p, v))


def _scalar(value) -> str:  # type: ignore[no-untyped-def]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike"}
_POSITIVE = {"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike", "Bool"}


def _condition(operator: str, key: str, expected, context: dict) -> bool | None:  # type: ignore[no-untyped-def]
    """Whether one condition holds; None for an operator this evaluator does
    not know (the caller fails closed: an Allow does not apply, a Deny does).

    A key the request does not carry: a negated operator (StringNotEquals…)
    holds, as on AWS; …IfExists holds; any other operator does not.

    A multivalued key (aws:TagKeys, a list in the context) takes the set
    operators: ForAllValues:… holds when every value of the request
    satisfies the operator (so also when there is none), ForAnyValue:… when
    one does. A plain operator on it fails closed."""
    qualifier, _, single = operator.rpartition(":")
    if qualifier in ("ForAllValues", "ForAnyValue"):
        values = _list(context.get(key.lower()))
        held = [_condition(single, key, expected, {key.lower(): v}) for v in values]
        if None in held:
            return None
        return all(held) if qualifier == "ForAllValues" else any(held)
    if qualifier:
        return None
    base = operator.removesuffix("IfExists")
    if_exists = base != operator
    actual = context.get(key.lower())
    patterns = [_scalar(p) for p in _list(expected)]
    if base == "Null":
        if if_exists or len(patterns) != 1 or patterns[0].lower() not in ("true", "false"):
            return None
        return (actual is None) == (patterns[0].lower() == "true")
    if base not in _NEGATED and base not in _POSITIVE:
        return None
    if isinstance(actual, list):
        return None
    if actual is None:
        return if_exists or base in _NEGATED
    actual = _scalar(actual)
    positive = base.replace("Not", "")
    if positive == "StringEquals":
        ok = actual in patterns
    elif positive == "StringEqualsIgnoreCase":
        ok = actual.lower() in [p.lower() for p in patterns]
    elif positive == "StringLike":
        ok = any(_glob(p, actual, True) for p in patterns)
    elif positive in ("ArnEquals", "ArnLike"):  # the same operator on AWS
        ok = any(_arn_like(p, actual) for p in patterns)
    else:  # Bool
        ok = actual.lower() in [p.lower() for p in patterns]
    return not ok if base in _NEGATED else ok


def _conditions(statement: dict, context: dict[str, str]) -> bool | None:
    """True when every condition holds, False when one does not, None when
    none fails but one could not be evaluated."""
    result: bool | None = True
    block = statement.get("Condition") or {}
    if not isinstance(block, dict):
        return None
    for operator, entries in block.items():
        if not isinstance(entries, dict):
            result = None
            continue
        for key, expected in entries.items():
            held = _condition(operator, key, expected, context)
            if held is False:
                return False
            if held is None:
                result = None
    return result


def _targets(statement: dict, action: str, resource: str, resource_optional: bool = False) -> bool:
    if "NotAction" in statement:
        if any(_glob(a, action, False) for a in _list(statement["NotAction"])):
            return False
    elif not any(_glob(a, action, False) for a in _list(statement.get("Action"))):
        return False
    if "NotResource" in statement:
        if any(_glob(r, resource, True) for r in _list(statement["NotResource"])):
            return False
    elif "Resource" in statement or not resource_optional:
        if not any(_glob(r, resource, True) for r in _list(statement.get("Resource"))):
            return False
    return True


def _statement_applies(
    statement: dict, action: str, resource: str, context: dict[str, str], resource_optional: bool = False
) -> bool:
    """Whether the statement applies to the request, failing closed: a
    condition that cannot be evaluated keeps an Allow from applying and
    makes a Deny apply."""
    if not _targets(statement, action, resource, resource_optional):
        return False
    held = _conditions(statement, context)
    if held is None:
        return statement.get("Effect") == "Deny"
    return held


def decide(documents: list[dict], action: str, resource: str, context: dict[str, str]) -> str:
    """"Allow", "Deny" (explicit) or "Implicit" (nothing allows it)."""
    allowed = False
    for document in documents:
        for statement in _list(document.get("Statement")):
            if not isinstance(statement, dict) or not _statement_applies(statement, action, resource, context):
                continue
            if statement.get("Effect") == "Deny":
                return "Deny"
            if statement.get("Effect") == "Allow":
                allowed = True
    return "Allow" if allowed else "Implicit"


def _document(policy) -> dict:  # type: ignore[no-untyped-def]
    if isinstance(policy, dict) and "Statement" in policy:
        return policy
    if isinstance(policy, (str, bytes)):
        text = policy.decode() if isinstance(policy, bytes) else policy
        try:
            return json.loads(text)
        except ValueError:
            return json.loads(unquote(text))
    parsed = access_control.IAMPolicy(policy)._policy_json
    return parsed


# What a permissions boundary that names no existing policy allows: nothing.
_NOTHING: dict = {"Version": "2012-10-17", "Statement": []}


def _boundary(account: str, arn: str | None) -> dict | None:
    """A permissions boundary's document; None when there is no boundary,
    and a document allowing nothing when the policy it names is missing."""
    if not arn:
        return None
    try:
        return _document(iam_backends[account]["aws"].get_policy(arn))
    except Exception:
        return _NOTHING


def role_documents(role_arn: str) -> tuple[list[dict], dict | None]:
    """A role's identity policies and its permissions boundary (a role ARN
    with its path, as moto names it)."""
    account = role_arn.split(":")[4]
    backend = iam_backends[account]["aws"]
    role = backend.get_role_by_arn(role_arn)
    documents = []
    for name in backend.list_role_policies(role.name):
        _, document = backend.get_role_policy(role.name, name)
        documents.append(_document(document))
    attached, _ = backend.list_attached_role_policies(role.name)
    documents += [_document(p) for p in attached]
    return documents, _boundary(account, getattr(role, "permissions_boundary_arn", None))


# -- principals and resource policies ------------------------------------------


@dataclass
class Caller:
    """Who signed a request: the account, the user or role-session ARN, the
    role's ARN (path included) for a session, and its policies."""

    account: str
    arn: str
    role_arn: str | None
    documents: list[dict]
    boundary: dict | None


def _caller(request) -> Caller:  # type: ignore[no-untyped-def]
    key = request._access_key
    account = request.account_id
    role_arn = None
    boundary = None
    try:
        documents = [_document(p) for p in key.collect_policies()]
    except Exception:
        documents = []
    role_name = getattr(key, "_owner_role_name", None)
    if role_name:
        try:
            role = iam_backends[account]["aws"].get_role(role_name)
            role_arn = role.arn
            boundary = _boundary(account, getattr(role, "permissions_boundary_arn", None))
        except Exception:
            documents = []  # the role is gone: nothing allows its sessions
    return Caller(account, key.arn, role_arn, documents, boundary)


def _principal_match(principal, caller: Caller) -> str | None:  # type: ignore[no-untyped-def]
    """How a Principal element names the caller: "self" (its user or session
    ARN), "role" (its role's ARN), "any" ("*"), "account" (its account id
    or root), or None. Service, federated and canonical-user principals
    never name a caller here."""
    if principal == "*":
        return "any"
    if not isinstance(principal, dict):
        return None
    found: set[str] = set()
    for value in _list(principal.get("AWS")):
        value = str(value)
        if value == "*":
            found.add("any")
        elif value in (caller.account, f"arn:aws:iam::{caller.account}:root"):
            found.add("account")
        elif value == caller.arn:
            found.add("self")
        elif caller.role_arn and value == caller.role_arn:
            found.add("role")
    for grade in ("self", "role", "any", "account"):
        if grade in found:
            return grade
    return None


def _resource_decision(
    policy: dict, caller: Caller, action: str, resource: str, context: dict[str, str]
) -> tuple[str, set[str]]:
    """A resource policy's verdict for the caller: ("Deny", …) on an explicit
    Deny naming it, else ("Allow", how it was named) or ("Implicit", ∅)."""
    grades: set[str] = set()
    for statement in _list(policy.get("Statement")):
        if not isinstance(statement, dict):
            continue
        if "NotPrincipal" in statement:
            grade = None if _principal_match(statement["NotPrincipal"], caller) else "any"
        else:
            grade = _principal_match(statement.get("Principal"), caller)
        if grade is None:
            continue
        if not _statement_applies(statement, action, resource, context, resource_optional=True):
            continue
        if statement.get("Effect") == "Deny":
            return "Deny", set()
        if statement.get("Effect") == "Allow":
            grades.add(grade)
    return ("Allow" if grades else "Implicit"), grades


@dataclass
class _ResourcePolicy:
    account: str
    document: dict | None
    kind: str  # "s3", "sqs", "kms" or "trust"
    exists: bool


def _json(policy) -> dict | None:  # type: ignore[no-untyped-def]
    if not policy:
        return None
    try:
        return _document(policy)
    except Exception:
        return _NOTHING


def _resource_policy(action: str, resource: str) -> _ResourcePolicy | None:
    """The resource policy that governs `resource`, where the harness models one."""
    from moto.s3.models import s3_backends
    from moto.sqs.models import sqs_backends

    parts = resource.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return None
    service, region, account, rest = parts[2], parts[3], parts[4], parts[5]
    if action in ("sts:AssumeRole", "sts:TagSession") and service == "iam":
        try:
            role = iam_backends[account]["aws"].get_role_by_arn(resource)
        except Exception:
            return _ResourcePolicy(account, None, "trust", False)
        return _ResourcePolicy(account, _json(role.assume_role_policy_document), "trust", True)
    if service == "s3" and action != "s3:CreateBucket":
        name = rest.split("/", 1)[0]
        owner = s3_backends.bucket_accounts.get(name)
        if not owner:
            return None  # no such bucket: moto answers NoSuchBucket
        partition, owner_account = owner
        bucket = s3_backends[owner_account][partition].buckets.get(name)
        return _ResourcePolicy(owner_account, _json(getattr(bucket, "policy", None)), "s3", bucket is not None)
    if service == "sqs" and _ACCOUNT.fullmatch(account):
        queue = sqs_backends[account][region].queues.get(rest) if region else None
        return _ResourcePolicy(account, _json(getattr(queue, "policy", None)), "sqs", queue is not None)
    if service == "kms" and _ACCOUNT.fullmatch(account) and rest.startswith("key/"):
        from moto.kms.models import kms_backends

        key = kms_backends[account][region].keys.get(rest[4:]) if region else None
        return _ResourcePolicy(account, _json(getattr(key, "policy", None)), "kms", key is not None)
    return None


def _resource_account(resource: str) -> str | None:
    parts = resource.split(":", 5)
    if len(parts) == 6 and parts[0] == "arn" and _ACCOUNT.fullmatch(parts[4]):
        return parts[4]
    return None


def authorize(caller: Caller, action: str, resource: str, context: dict[str, str]) -> str:
    """"Allow", or why not: "Deny" (an explicit Deny in any policy),
    "Implicit" (nothing allows it) or "CrossAccount" (another account's
    resource whose policy the harness does not model)."""
    identity = decide(caller.documents, action, resource, context)
    bounded = "Allow" if caller.boundary is None else decide([caller.boundary], action, resource, context)
    if "Deny" in (identity, bounded):
        return "Deny"
    identity_allows = identity == "Allow" and bounded == "Allow"
    try:
        governing = _resource_policy(action, resource)
    except Exception:
        log.exception("reading the resource policy of %s", resource)
        governing = None
    if governing is None:
        owner = _resource_account(resource)
        if owner and owner != caller.account:
            return "CrossAccount"
        return "Allow" if identity_allows else "Implicit"
    same = governing.account == caller.account
    verdict, grades = (
        _resource_decision(governing.document, caller, action, resource, context)
        if governing.document
        else ("Implicit", set())
    )
    if verdict == "Deny":
        return "Deny"
    # Same account, a grant naming the caller: its user or session ARN
    # stands alone; its role's ARN or "*" still within the role's boundary.
    alone = "self" in grades or (bool(grades & {"role", "any"}) and bounded == "Allow")
    if governing.kind in ("kms", "trust"):
        # A key policy or trust policy must grant; naming the account
        # delegates to the account's IAM policies.
        if governing.kind == "kms" and not governing.exists and same:
            return "Allow" if identity_allows else "Implicit"  # moto answers NotFound
        if same:
            return "Allow" if alone or ("account" in grades and identity_allows) else "Implicit"
        return "Allow" if grades and identity_allows else "Implicit"
    if same:
        return "Allow" if identity_allows or alone else "Implicit"
    return "Allow" if grades and identity_allows else "Implicit"


def role_may(role_arn: str, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    """Whether a role (its identity policies, its boundary, the resource's
    policy) may do `action` on `resource`, for the harness's own checks."""
    try:
        documents, boundary = role_documents(role_arn)
    except Exception:
        return False
    account = role_arn.split(":")[4]
    context = {k.lower(): v for k, v in (context or {}).items()}
    context.setdefault("aws:principalaccount", account)
    context.setdefault("aws:principalarn", role_arn)
    parts = resource.split(":")
    if len(parts) > 3 and parts[3]:
        context.setdefault("aws:requestedregion", parts[3])
    session = f"arn:aws:sts::{account}:assumed-role/{role_arn.split('/')[-1]}/sluice-harness"
    caller = Caller(account, session, role_arn, documents, boundary)
    return authorize(caller, action, resource, context) == "Allow"


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
        # Each entry is authorized on its own: its bus, its source.
        needed = []
        for entry in r.params.get("Entries") or [{}]:
            context = {}
            if entry.get("Source"):
                context["events:source"] = entry["Source"]
            if entry.get("DetailType"):
                context["events:detail-type"] = entry["DetailType"]
            needed.append((action, _bus_arn(r, entry.get("EventBusName")), context))
        return needed
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


def queue_owner(url: str, default: str) -> tuple[str, str]:
    """(account, name) of a queue URL (http://host/ACCOUNT/NAME) or name."""
    path = urlparse(url).path if "://" in url else url
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and _ACCOUNT.fullmatch(parts[-2]):
        return parts[-2], parts[-1]
    return default, parts[-1] if parts else url


def _sqs(r: _Request, moto_resource: str) -> list[tuple[str, str, dict]]:
    action = f"sqs:{_ACTIONS['sqs'].get(r.operation, r.operation)}"
    url = r.get("QueueUrl")
    if url:
        account, name = queue_owner(url, r.account)
        return [(action, f"arn:aws:sqs:{r.region}:{account}:{name}", {})]
    name = r.get("QueueName")
    if name:
        account = r.get("QueueOwnerAWSAccountId") or r.account
        return [(action, f"arn:aws:sqs:{r.region}:{account}:{name}", {})]
    parts = [p for p in r.path.split("/") if p]
    if len(parts) == 2 and _ACCOUNT.fullmatch(parts[0]):  # the query protocol's queue path
        return [(action, f"arn:aws:sqs:{r.region}:{parts[0]}:{parts[1]}", {})]
    if moto_resource not in ("*", None):
        return [(action, moto_resource, {})]
    return [(action, "*", {})]


def _s3(r: _Request, moto_resource: str) -> list[tuple[str, str, dict]]:
    from moto.s3.models import s3_backends

    action = f"s3:{_ACTIONS['s3'].get(r.operation, r.operation)}"
    context: dict[str, str] = {}
    bucket = (moto_resource or "").removeprefix("arn:aws:s3:::").split("/", 1)[0]
    if bucket and bucket != "*":
        owner = s3_backends.bucket_accounts.get(bucket)
        if owner:
            context["s3:resourceaccount"] = owner[1]
        elif r.operation == "CreateBucket":
            context["s3:resourceaccount"] = r.account
    return [(action, moto_resource, context)]


# Requests on an existing role that carry its boundary as iam:PermissionsBoundary.
_ROLE_BOUNDARY_OPERATIONS = {
    "PutRolePolicy",
    "DeleteRolePolicy",
    "UpdateAssumeRolePolicy",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "TagRole",
    "UntagRole",
    "DeleteRole",
    "DeleteRolePermissionsBoundary",
}


def _iam(r: _Request, moto_resource: str) -> list[tuple[str, str, dict]]:
    action = f"iam:{r.operation}"
    backend = iam_backends[r.account]["aws"]
    context: dict[str, str] = {}
    if r.get("PolicyArn"):
        context["iam:policyarn"] = r.get("PolicyArn")
    role_name = r.get("RoleName")
    if role_name:
        try:
            role = backend.get_role(role_name)
        except Exception:
            role = None
        if r.operation == "CreateRole":
            resource = f"arn:aws:iam::{r.account}:role{r.get('Path') or '/'}{role_name}"
        elif role is not None:
            resource = role.arn
        else:
            resource = f"arn:aws:iam::{r.account}:role/{role_name}"
        if r.operation in ("CreateRole", "PutRolePermissionsBoundary"):
            if r.get("PermissionsBoundary"):
                context["iam:permissionsboundary"] = r.get("PermissionsBoundary")
        elif r.operation in _ROLE_BOUNDARY_OPERATIONS and role is not None and role.permissions_boundary_arn:
            context["iam:permissionsboundary"] = role.permissions_boundary_arn
        return [(action, resource, context)]
    user_name = r.get("UserName")
    if user_name:
        try:
            resource = backend.get_user(user_name).arn
        except Exception:
            resource = f"arn:aws:iam::{r.account}:user{r.get('Path') or '/'}{user_name}"
        return [(action, resource, context)]
    if r.get("GroupName"):
        return [(action, f"arn:aws:iam::{r.account}:group{r.get('Path') or '/'}{r.get('GroupName')}", context)]
    if r.operation == "CreatePolicy" and r.get("PolicyName"):
        return [(action, f"arn:aws:iam::{r.account}:policy{r.get('Path') or '/'}{r.get('PolicyName')}", context)]
    if r.get("PolicyArn"):
        return [(action, r.get("PolicyArn"), context)]
    return [(action, moto_resource or "*", context)]


def _sts(r: _Request) -> list[tuple[str, str, dict]]:
    """AssumeRole needs sts:AssumeRole on the role and, when it passes
    session tags or TransitiveTagKeys, sts:TagSession on it too (each
    allowed by the caller's policies and the role's trust policy)."""
    if r.operation == "AssumeRole":
        role = r.get("RoleArn") or "*"
        context: dict = {}
        if r.get("ExternalId"):
            context["sts:externalid"] = r.get("ExternalId")
        if r.get("RoleSessionName"):
            context["sts:rolesessionname"] = r.get("RoleSessionName")
        tags, transitive = session_tags({k: v for k, v in r.params.items() if isinstance(v, str)})
        for key, value in tags:
            context[f"aws:requesttag/{key.lower()}"] = value
        if tags:
            context["aws:tagkeys"] = [key for key, _ in tags]
        if transitive:
            context["sts:transitivetagkeys"] = transitive
        needed = [("sts:AssumeRole", role, context)]
        if tags or transitive:
            needed.append(("sts:TagSession", role, context))
        return needed
    return [(f"sts:{r.operation}", "*", {})]


def _key_arn(r: _Request, key: str) -> str:
    from moto.kms.models import kms_backends

    if key.startswith("arn:") and ":key/" in key:
        return key
    if key.startswith("alias/") or ":alias/" in key:
        account = key.split(":")[4] if key.startswith("arn:") else r.account
        region = key.split(":")[3] if key.startswith("arn:") else r.region
        alias = "alias/" + key.split(":alias/")[1] if key.startswith("arn:") else key
        try:
            found = kms_backends[account][region].get_key_id_from_alias(alias)
        except Exception:
            found = None
        if found:
            return f"arn:aws:kms:{region}:{account}:key/{found}"
        return f"arn:aws:kms:{region}:{account}:{alias}"
    return r.arn("kms", f"key/{key}")


def _blob_key(r: _Request) -> str | None:
    """The key a moto ciphertext blob names (its first 36 bytes)."""
    blob = r.params.get("CiphertextBlob")
    try:
        raw = base64.b64decode(blob) if isinstance(blob, str) else blob
        return raw[:36].decode() if raw else None
    except Exception:
        return None


def _kms(r: _Request) -> list[tuple[str, str, dict]]:
    action = f"kms:{r.operation}"
    if r.operation == "ReEncrypt":
        source = r.get("SourceKeyId") or _blob_key(r)
        needed = [("kms:ReEncryptFrom", _key_arn(r, source) if source else "*", {})]
        destination = r.get("DestinationKeyId")
        needed.append(("kms:ReEncryptTo", _key_arn(r, destination) if destination else "*", {}))
        return needed
    key = r.get("KeyId", "TargetKeyId")
    if not key and r.operation == "Decrypt":
        key = _blob_key(r)
    return [(action, _key_arn(r, key) if key else "*", {})]


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


def resources(req, moto_resource: str, caller: Caller | None = None) -> list[tuple[str, str, dict]]:  # type: ignore[no-untyped-def]
    """(IAM action, resource ARN, condition context) the request needs; each
    context holds the request's own keys (aws:RequestedRegion…) too."""
    r = _Request(req)
    handlers = {
        "lambda": _lambda,
        "dynamodb": _dynamodb,
        "kinesis": _kinesis,
        "events": _events,
        "states": _states,
        "scheduler": _scheduler,
        "logs": _logs,
        "sts": _sts,
        "kms": _kms,
    }
    if r.service in handlers:
        needed = handlers[r.service](r)
    elif r.service == "s3":
        needed = _s3(r, moto_resource)
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
    base = {"aws:requestedregion": r.region, "aws:principalaccount": r.account}
    if caller is not None:
        base["aws:principalarn"] = caller.role_arn or caller.arn
    return [(action, target, {**base, **context}) for action, target, context in needed]


# -- the check moto calls -----------------------------------------------------


def _expected_owner_refused(request, resource: str) -> str | None:  # type: ignore[no-untyped-def]
    """The bucket an S3 request expects another owner of, if any: AWS
    refuses a request whose x-amz-expected-bucket-owner (or, for a copy,
    x-amz-source-expected-bucket-owner) is not the bucket's owner, whoever
    asks; moto ignores both headers."""
    from moto.s3.models import s3_backends

    headers = request._headers
    checks = []
    expected = headers.get("x-amz-expected-bucket-owner")
    if expected:
        checks.append((resource.removeprefix("arn:aws:s3:::").split("/", 1)[0], expected))
    source_expected = headers.get("x-amz-source-expected-bucket-owner")
    copy_source = headers.get("x-amz-copy-source")
    if source_expected and copy_source:
        checks.append((unquote(copy_source).lstrip("/").split("/", 1)[0], source_expected))
    for bucket, owner in checks:
        actual = s3_backends.bucket_accounts.get(bucket)
        if actual and actual[1] != owner.strip():
            return bucket
    return None


def install() -> None:
    def check_action_permitted(self, resource: str) -> None:  # type: ignore[no-untyped-def]
        if self._action == "sts:GetCallerIdentity":  # always allowed, as on AWS
            return
        if self._action.startswith("s3:"):
            bucket = _expected_owner_refused(self, resource or "")
            if bucket:
                _record(self._access_key.arn, self._action, f"arn:aws:s3:::{bucket}", self._action, "ExpectedBucketOwner")
                self._raise_access_denied()
        if self._action == "sts:AssumeRole":
            # The API's constraints come before IAM, as on AWS.
            validate({k: (v[0] if isinstance(v, list) and v else v) for k, v in (self._data or {}).items()})
        caller = _caller(self)
        for action, target, context in resources(self, resource, caller):
            verdict = authorize(caller, action, target, context)
            if verdict != "Allow":
                _record(self._access_key.arn, action, target, self._action, verdict)
                self._raise_access_denied()
            with _lock:
                _allowed.setdefault(self._access_key.arn, set()).add(action)

    access_control.IAMRequestBase.check_action_permitted = check_action_permitted

    # moto checks a bucket policy again on object requests, blind to the
    # principal: a Deny naming one user refused everyone, and an Allow whose
    # condition did not hold (a service principal's aws:SourceArn) counted
    # as a Deny, with an empty 403. The check above has decided, principal
    # and conditions included.
    from moto.s3.models import FakeBucket

    FakeBucket.get_permission = lambda self, action, resource: access_control.PermissionResult.NEUTRAL

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


def _record(principal: str, action: str, resource: str, request: str, verdict: str, **detail: object) -> None:
    """Keeps a refusal (the last 1,000 at /_sluice/denials; those of an
    ended session's key all, at /_sluice/sts/expired)."""
    entry = {
        "principal": principal,
        "action": action,
        "resource": resource,
        "request": request,
        "verdict": verdict,
        "at": time.time(),
        **detail,
    }
    with _lock:
        _denials.append(entry)
        del _denials[:-1000]
        if verdict == "ExpiredToken":
            _expired.append(entry)
    log.warning("IAM denied %s %s on %s (%s)", principal, action, resource, verdict)


_expired: list[dict] = []


def record_expired(session: Session, service: str, action: str | None, path: str) -> None:
    """A request signed with the key of a session that has ended, refused
    with ExpiredToken (`sts.py`)."""
    _record(
        session.arn,
        action or f"{service}:*",
        path,
        action or path,
        "ExpiredToken",
        session={
            "accessKeyId": session.access_key_id,
            "account": session.account,
            "principal": session.arn,
            "service": service,
            "action": action,
            "path": path,
            "expiredAt": session.expires,
        },
    )


def expired() -> list[dict]:
    """Every request refused because its session had ended: its key, the
    session's account and ARN, the action (None when the protocol names
    none outside the path: REST), the method and path, when (epoch
    seconds), and when the session had ended."""
    with _lock:
        return [{**e["session"], "at": e["at"]} for e in _expired]


# -- principals ---------------------------------------------------------------


_put: dict[tuple[str, str], str] = {}


def _user(account: str, name: str, document: dict, creds: Credentials | None = None) -> Credentials:
    """An IAM user `name` of `account` holding `document` as its policy
    "policy" (put when the user is made or the document differs from the one
    put last, so a test's own change to it stays), and its access key:
    `creds` if given, else the key it has (one is made the first time)."""
    backend = iam_backends[account]["aws"]
    text = json.dumps(document)
    with _users_lock:
        try:
            user = backend.get_user(name)
        except Exception:
            user = backend.create_user(region_name=REGION, user_name=name, path="/", tags=[])
            _put.pop((account, name), None)
        if _put.get((account, name)) != text:
            backend.put_user_policy(name, "policy", text)
            _put[(account, name)] = text
        wanted = creds.access_key_id if creds is not None else None
        key = next((k for k in user.access_keys if wanted in (None, k.access_key_id)), None)
        if key is None:
            key = backend.create_access_key(name)
            if creds is not None:
                # moto finds a key's account by its id (get_account_id_from).
                backend.access_keys.pop(key.access_key_id, None)
                key.access_key_id = creds.access_key_id
                key.secret_access_key = creds.secret_access_key
                backend.access_keys[key.access_key_id] = key
        return Credentials(key.access_key_id, key.secret_access_key)


def account_admin(account: str) -> Credentials:
    """An administrator (`*`) of `account`: its requests act as that account
    in moto, which tells accounts apart by the key's account."""
    if not _ACCOUNT.fullmatch(account or ""):
        raise ValueError(f"not an account id: {account!r}")
    if account == DEFAULT_ACCOUNT_ID:
        return _user(account, "sluice-harness-admin", _ADMIN_POLICY, ADMIN)
    return _user(account, "sluice-harness-admin", _ADMIN_POLICY)


def secret_of(access_key_id: str) -> str:
    """The secret of an IAM user's key or of assumed-role credentials, in any account."""
    from moto.sts.models import sts_backends

    for _, account in list(iam_backends.items()):
        backend = account["aws"]
        for user in backend.list_users("/", None, None):
            for key in user.access_keys:
                if key.access_key_id == access_key_id:
                    return key.secret_access_key
    for _, account in list(sts_backends.items()):
        for role in account["aws"].assumed_roles:
            if role.access_key_id == access_key_id:
                return role.secret_access_key
    raise KeyError(access_key_id)


_NAME = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")
_SLUICE = re.compile(r"role/sluice/|policy/sluice/|sluice-")


def render(text: str, prefix: str, account: str, regions: list[str]) -> dict:
    """A documented policy (config/iam/*.json) for the name prefix `prefix`:
    ACCOUNT_ID → the account; `role/sluice/`, `policy/sluice/` and `sluice-`
    → `role/P/`, `policy/P/` and `P-` in one pass (the code bucket's
    `/sluice/handlers/` key prefix is fixed in code, so kept); the string
    "ALLOWED_REGION" → one string per region; the teams' code bucket
    CODE_BUCKET → `P-team-code`, image repository IMAGE_REPOSITORY →
    `P-team-images` and layer LAYER_ARN → the account's layer
    `P-team-layer` (what a platform team lists in its SluicePolicies)."""
    text = text.replace("ACCOUNT_ID", account)
    text = _SLUICE.sub(lambda m: m.group(0).replace("sluice", prefix), text)
    text = text.replace('"ALLOWED_REGION"', ", ".join(json.dumps(r) for r in regions))
    text = text.replace("CODE_BUCKET", f"{prefix}-team-code")
    text = text.replace("IMAGE_REPOSITORY", f"{prefix}-team-images")
    text = text.replace("LAYER_ARN", f"arn:aws:lambda:*:{account}:layer:{prefix}-team-layer")
    return json.loads(text)


def _managed_policy(account: str, path: str, name: str, document: dict) -> str:
    """The ARN of managed policy `name` at `path`, created if missing."""
    backend = iam_backends[account]["aws"]
    arn = f"arn:aws:iam::{account}:policy{path}{name}"
    with _users_lock:
        try:
            backend.get_policy(arn)
        except Exception:
            backend.create_policy(
                description="The permissions boundary of every pipeline role (config/iam/pipeline-boundary.json)",
                path=path,
                policy_document=json.dumps(document),
                policy_name=name,
                tags=[],
            )
    return arn


def operator_user(
    prefix: str, policy_paths: list[str], boundary_path: str, regions: list[str] | None = None
) -> tuple[Credentials, str]:
    """An IAM user holding exactly the documented operator policies (their
    statements in one document: the emulator sets no size limit) rendered
    for `prefix` and `regions` (default: the harness's region), and the ARN
    of the pipeline roles' boundary (`P-pipeline-boundary` at path `/P/`,
    config/iam/pipeline-boundary.json rendered alike), created once."""
    if not _NAME.fullmatch(prefix or ""):
        raise ValueError(f"not a name prefix: {prefix!r}")
    regions = [r for r in (regions or [REGION]) if r]
    account = DEFAULT_ACCOUNT_ID
    statements: list = []
    for path in policy_paths:
        with open(path, encoding="utf-8") as f:
            statements += _list(render(f.read(), prefix, account, regions).get("Statement"))
    policy = {"Version": "2012-10-17", "Statement": statements}
    with open(boundary_path, encoding="utf-8") as f:
        boundary = render(f.read(), prefix, account, regions)
    boundary_arn = _managed_policy(account, f"/{prefix}/", f"{prefix}-pipeline-boundary", boundary)
    return _user(account, f"operator-{prefix}", policy), boundary_arn


_EXTERNAL_ID = re.compile(r"[\w+=,./@:-]{2,1224}", re.ASCII)


def _role_put(backend, account: str, role_name: str, what: str, text: str, put) -> None:  # type: ignore[no-untyped-def]
    """Puts a role's trust or inline policy when it differs from the one
    put last (so a test's own change to it stays until the harness is
    asked for another)."""
    if _put.get((account, f"{role_name}#{what}")) != text:
        put(text)
        _put[(account, f"{role_name}#{what}")] = text


_ROLE_RESOURCE = re.compile(r"arn:aws:iam::\*:role(/(?:[\w+=,.@-]+/)*)([\w+=,.@-]+)", re.ASCII)


def _assumed_role(statements: list, prefix: str) -> tuple[str, str]:
    """(path, name) of the account role: the one the rendered operator
    policy lets the operator assume (statement AssumeAccountRoles, a role
    of any account without wildcards), else `/P/` and `P-operator`."""
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Sid") != "AssumeAccountRoles":
            continue
        for resource in _list(statement.get("Resource")):
            found = _ROLE_RESOURCE.fullmatch(str(resource))
            if found:
                return found.group(1), found.group(2)
    return f"/{prefix}/", f"{prefix}-operator"


def account_role(
    account: str,
    prefix: str,
    external_id: str | None,
    policy_paths: list[str],
    boundary_path: str,
    regions: list[str] | None = None,
) -> tuple[str, str]:
    """The role an operator of prefix `prefix` assumes to act in `account`
    (an AWS identity per namespace): `P-operator` at path `/P/` (or the
    role the operator policy's statement AssumeAccountRoles names, rendered
    for P, when it names one), holding exactly the documented operator
    policies rendered for `prefix`, `account` and `regions` as its inline
    policy "policy", MaxSessionDuration 3600, trusting only the operator
    user `operator-P` of the default account with sts:AssumeRole and
    sts:TagSession (under `sts:ExternalId` = `external_id` when given);
    and, beside it, the pipeline roles' boundary `/P/P-pipeline-boundary`
    of that account. Answers (role ARN, boundary ARN); made once, policies
    put again only when they differ from those put last."""
    if not _ACCOUNT.fullmatch(account or ""):
        raise ValueError(f"not an account id: {account!r}")
    if not _NAME.fullmatch(prefix or ""):
        raise ValueError(f"not a name prefix: {prefix!r}")
    if external_id is not None and not _EXTERNAL_ID.fullmatch(external_id):
        raise ValueError(f"not an external id (2 to 1224 of [\\w+=,./@:-]): {external_id!r}")
    regions = [r for r in (regions or [REGION]) if r]
    statements: list = []
    for path in policy_paths:
        with open(path, encoding="utf-8") as f:
            statements += _list(render(f.read(), prefix, account, regions).get("Statement"))
    policy = json.dumps({"Version": "2012-10-17", "Statement": statements})
    with open(boundary_path, encoding="utf-8") as f:
        boundary = render(f.read(), prefix, account, regions)
    boundary_arn = _managed_policy(account, f"/{prefix}/", f"{prefix}-pipeline-boundary", boundary)
    grant: dict = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:user/operator-{prefix}"},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
    }
    if external_id is not None:
        grant["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    trust = json.dumps({"Version": "2012-10-17", "Statement": [grant]})
    path, name = _assumed_role(statements, prefix)
    role_arn = _account_role(account, path, name, trust, policy, "What the operator does in this account")
    return role_arn, boundary_arn


def _account_role(account: str, path: str, name: str, trust: str, policy: str, description: str) -> str:
    """The ARN of role `name` at `path` in `account` (MaxSessionDuration
    3600), made if missing, with trust policy `trust` and inline policy
    "policy" `policy`, each put again only when it differs from the one put
    last."""
    backend = iam_backends[account]["aws"]
    with _users_lock:
        try:
            role = backend.get_role(name)
        except Exception:
            role = backend.create_role(name, trust, path, None, description, [], "3600")
            _put.pop((account, f"{name}#trust"), None)
            _put.pop((account, f"{name}#policy"), None)
        _role_put(backend, account, name, "trust", trust, lambda t: backend.update_assume_role_policy(name, t))
        _role_put(backend, account, name, "policy", policy, lambda t: backend.put_role_policy(name, "policy", t))
    return role.arn


def reviewer_user(prefix: str, policy_path: str) -> Credentials:
    """An IAM user holding exactly the documented reviewer policy
    (config/iam/reviewer-policy.json: the operator's reads) rendered for
    `prefix` in the harness's region."""
    if not _NAME.fullmatch(prefix or ""):
        raise ValueError(f"not a name prefix: {prefix!r}")
    with open(policy_path, encoding="utf-8") as f:
        policy = render(f.read(), prefix, DEFAULT_ACCOUNT_ID, [REGION])
    return _user(DEFAULT_ACCOUNT_ID, f"reviewer-{prefix}", policy)


def reviewer_role(account: str, prefix: str, policy_path: str) -> str:
    """In `account`, the role `kubectl sluice plan --live` of prefix
    `prefix` reads a mapped namespace's resources as: the one the rendered
    reviewer policy lets the reviewer assume (statement AssumeReviewerRoles,
    `/operators/P-reviewer`), holding exactly that policy rendered for P and
    `account` as its inline policy "policy", trusting only the reviewer user
    `reviewer-P` of the default account with sts:AssumeRole. Answers its
    ARN; made once, policies put again only when they differ."""
    if not _ACCOUNT.fullmatch(account or ""):
        raise ValueError(f"not an account id: {account!r}")
    if not _NAME.fullmatch(prefix or ""):
        raise ValueError(f"not a name prefix: {prefix!r}")
    with open(policy_path, encoding="utf-8") as f:
        statements = _list(render(f.read(), prefix, account, [REGION]).get("Statement"))
    path, name = f"/{prefix}/", f"{prefix}-reviewer"
    for statement in statements:
        if isinstance(statement, dict) and statement.get("Sid") == "AssumeReviewerRoles":
            for resource in _list(statement.get("Resource")):
                found = _ROLE_RESOURCE.fullmatch(str(resource))
                if found:
                    path, name = found.group(1), found.group(2)
    policy = json.dumps({"Version": "2012-10-17", "Statement": statements})
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:user/reviewer-{prefix}"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
    return _account_role(account, path, name, trust, policy, "What plan --live reads in this account")


def enable() -> None:
    """Creates the administrator the tests and tools act as, and turns on
    enforcement for every request from now on."""
    install()
    _user(DEFAULT_ACCOUNT_ID, "sluice-harness-admin", _ADMIN_POLICY, ADMIN)
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    log.info("IAM enforced: act as %s (the administrator) or a role", ADMIN.access_key_id)
