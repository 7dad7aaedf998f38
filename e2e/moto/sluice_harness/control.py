"""The harness's own endpoints, beside moto's, under /_sluice/.

  GET  /_sluice/invocations[?function=NAME]  recent invocations (JSON list)
  GET  /_sluice/pending                      async events queued or running
  GET  /_sluice/denials                      the requests IAM refused (JSON list)
  GET  /_sluice/iam/allowed?principal=S      the actions IAM allowed so far to the
                                             principals whose ARN contains S
  POST /_sluice/iam/operator?prefix=P[&regions=r1,r2][&roleListing=1]
                                             credentials of an IAM user holding
                                             exactly config/iam/operator-policy.json
                                             for names starting with P- (roles
                                             under /P/) in those regions (default:
                                             the harness's), and the ARN of the
                                             pipeline roles' boundary
                                             (config/iam/pipeline-boundary.json as
                                             managed policy /P/P-pipeline-boundary);
                                             with roleListing=1 (then always, for
                                             P), also holding
                                             config/iam/role-listing-policy.json
  POST /_sluice/iam/reviewer?prefix=P[&account=A]
                                             credentials of an IAM user holding
                                             exactly config/iam/reviewer-policy.json
                                             (the operator's reads, no write) for
                                             names starting with P-: what
                                             `kubectl sluice plan --live` runs as;
                                             with A, also "roleArn": the reviewer
                                             role /operators/P-reviewer of account
                                             A, holding the same policy for A and
                                             trusting that user
  POST /_sluice/iam/account?id=ACCOUNTID     credentials of an administrator of
                                             another account (made once), for
                                             cross-account tests
  GET  /_sluice/iam/key-account?id=AKID      the account an access key (a user's or a
                                             session's) acts in, as moto decides it:
                                             how the quota shaper meters accounts
  POST /_sluice/iam/account-role?account=A&prefix=P[&externalId=X][&regions=r1,r2]
                                             in account A, the role the operator
                                             of prefix P assumes to act there:
                                             /P/P-operator (or the role the
                                             operator policy's statement
                                             AssumeAccountRoles names) holding exactly
                                             config/iam/operator-policy*.json for
                                             P and A, trusting operator-P of the
                                             default account (sts:AssumeRole and
                                             sts:TagSession, with sts:ExternalId X
                                             when given), and A's pipeline
                                             boundary /P/P-pipeline-boundary:
                                             {"roleArn", "permissionsBoundaryArn",
                                             "account"}
  POST /_sluice/sts/lifetime?seconds=N       every AssumeRole from now on answers
                                             credentials ending N seconds later
                                             (0: after DurationSeconds, as AWS)
  GET  /_sluice/sts/expired                  the requests refused because their
                                             session had ended (JSON list of
                                             {accessKeyId, account, principal,
                                             service, action, path, at, expiredAt})
  GET  /_sluice/iam/simulate?role=ARN&action=A&resource=R[&context.KEY=V]
                                             whether the role may (its policies,
                                             boundary, the resource's policy)
  POST /_sluice/schedules/fire?name=N[&group=G][&time=ISO]
                                             fire a schedule now, as its run
                                             scheduled at `time` (default: now)
  POST /_sluice/refuse?target=T&match=S&code=C&message=M
                                             answer the next JSON-protocol request
                                             whose X-Amz-Target is T (e.g.
                                             AmazonSQS.CreateQueue) and whose body
                                             contains S with a 400 error C: M,
                                             once, as AWS refuses a value

They hand out credentials, so they answer only callers on this host: on
loopback, or from the emulator's own address (localenv's cluster mode). A
pod of the local cluster reaches moto from the node's address and gets 403.
"""

from __future__ import annotations

import io
import json
import os
import threading
import uuid
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from . import iam, sts
from .context import Emulator
from .invoke import AsyncInvoker
from .lambda_runtime import History
from .targets import FireError, fire

PREFIX = "/_sluice/"
POLICIES = [
    os.path.join(os.path.dirname(__file__), "..", "..", "..", "config", "iam", name)
    for name in ("operator-policy.json", "operator-policy-services.json")
]
BOUNDARY = os.path.join(os.path.dirname(__file__), "..", "..", "..", "config", "iam", "pipeline-boundary.json")
ROLE_LISTING = os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "config", "iam", "role-listing-policy.json"
)
REVIEWER = os.path.join(os.path.dirname(__file__), "..", "..", "..", "config", "iam", "reviewer-policy.json")


# Prefixes whose operator user also holds the role-listing policy.
_role_listing: set[str] = set()

# One-shot refusals registered by POST /_sluice/refuse: (target, match,
# code, message).
_refusals: list[tuple[str, str, str, str]] = []
_refusals_lock = threading.Lock()


def _body(environ) -> bytes:  # type: ignore[no-untyped-def]
    """The request's body, left in place for moto."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _refused(environ):  # type: ignore[no-untyped-def]
    """The refusal registered for this request, if any (then forgotten)."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if not target or not _refusals:
        return None
    text = _body(environ).decode("utf-8", "replace")
    with _refusals_lock:
        for i, (t, match, code, message) in enumerate(_refusals):
            if t == target and match in text:
                del _refusals[i]
                return code, message
    return None


def _protocol(environ, service: str) -> str:  # type: ignore[no-untyped-def]
    """How the service answers this request: "s3" (REST-XML), "json"
    (X-Amz-Target: DynamoDB, Kinesis, SQS, Logs, EventBridge, Step
    Functions…), "query" (a form or query string naming its Action: STS,
    IAM, SQS's older protocol) or "rest-json" (Lambda, Scheduler)."""
    if service == "s3":
        return "s3"
    if environ.get("HTTP_X_AMZ_TARGET"):
        return "json"
    if "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", "") or "Action=" in environ.get("QUERY_STRING", ""):
        return "query"
    return "rest-json"


def _action(environ, service: str, protocol: str) -> str | None:  # type: ignore[no-untyped-def]
    """The operation a request names outside its path (JSON's X-Amz-Target,
    the query protocol's Action), as service:Operation."""
    if protocol == "json":
        return f"{service}:{environ['HTTP_X_AMZ_TARGET'].rsplit('.', 1)[-1]}"
    if protocol == "query":
        fields = parse_qs(environ.get("QUERY_STRING", ""))
        if "Action" not in fields:
            fields = parse_qs(_body(environ).decode("utf-8", "replace"))
        action = (fields.get("Action") or [""])[0]
        return f"{service}:{action}" if action else None
    return None


def _error(  # type: ignore[no-untyped-def]
    start_response,
    protocol: str,
    status: str,
    code: str,
    message: str,
    headers: list[tuple[str, str]] | None = None,
    elements: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    """An AWS error in the protocol the client reads: the JSON protocol's
    `__type` in the body, REST-JSON's `x-amzn-ErrorType` header, the query
    protocol's <ErrorResponse>, S3's <Error> (with `elements`, e.g.
    Token-0)."""
    request_id = str(uuid.uuid4())
    if protocol == "json":
        data = json.dumps({"__type": code, "message": message}).encode()
        answer = [("Content-Type", "application/x-amz-json-1.0")]
    elif protocol == "rest-json":
        data = json.dumps({"message": message}).encode()
        answer = [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
    elif protocol == "query":
        data = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        answer = [("Content-Type", "text/xml")]
    else:
        more = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in (elements or []))
        data = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>'
            f"{more}<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        answer = [("Content-Type", "application/xml")]
    answer += [("x-amzn-RequestId", request_id), *(headers or []), ("Content-Length", str(len(data)))]
    start_response(status, answer)
    return [data]


def _expired(environ, start_response):  # type: ignore[no-untyped-def]
    """Refuses a request signed with the key of a session that has ended
    (sts.py), as AWS does: ExpiredToken, 403 from the query protocol's
    services and 400 from S3; ExpiredTokenException from the JSON ones
    (400, as DynamoDB, Kinesis and Logs answer it) and the REST ones (403,
    as Lambda does). None when the request may go on."""
    signed = sts.signing_key(environ)
    if signed is None:
        return None
    session = sts.expired(signed[0])
    if session is None:
        return None
    service = signed[1]
    protocol = _protocol(environ, service)
    path = f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '')}"
    iam.record_expired(session, service, _action(environ, service, protocol), path)
    if protocol == "s3":
        token = environ.get("HTTP_X_AMZ_SECURITY_TOKEN", "")
        return _error(start_response, "s3", "400 Bad Request", "ExpiredToken", "The provided token has expired.", elements=[("Token-0", token)] if token else None)
    message = "The security token included in the request is expired"
    if protocol == "query":
        return _error(start_response, "query", "403 Forbidden", "ExpiredToken", message)
    if protocol == "json":
        return _error(start_response, "json", "400 Bad Request", "com.amazon.coral.service#ExpiredTokenException", message)
    return _error(start_response, "rest-json", "403 Forbidden", "ExpiredTokenException", message)


def middleware(app):  # type: ignore[no-untyped-def]
    def wrapped(environ, start_response):  # type: ignore[no-untyped-def]
        path = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX):
            refused = _expired(environ, start_response)
            if refused is not None:
                return refused
            refusal = _refused(environ)
            if refusal is not None:
                code, message = refusal
                return _error(start_response, "json", "400 Bad Request", code, message, [("x-amzn-query-error", f"{code};Sender")])
            iam.keep_raw_body(environ)
            return app(environ, start_response)
        if environ.get("REMOTE_ADDR") not in ("127.0.0.1", urlsplit(Emulator.endpoint).hostname):
            data = json.dumps({"error": "the harness answers callers on this host only"}).encode()
            start_response("403 Forbidden", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
            return [data]
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        method = environ.get("REQUEST_METHOD", "GET")
        route = path[len(PREFIX) :]
        status, body = "404 Not Found", {"error": f"no such harness endpoint: {path}"}
        try:
            if method == "GET" and route == "invocations":
                status, body = "200 OK", History.of(query.get("function"))
            elif method == "GET" and route == "pending":
                status, body = "200 OK", {"async": AsyncInvoker.pending()}
            elif method == "GET" and route == "credentials":
                # For the CBOR gateway beside moto, which re-signs a caller's
                # request; this host only, like everything here.
                status, body = "200 OK", {"secretAccessKey": iam.secret_of(query["key"])}
            elif method == "GET" and route == "denials":
                status, body = "200 OK", iam.denials()
            elif method == "GET" and route == "iam/allowed":
                status, body = "200 OK", iam.allowed(query.get("principal", ""))
            elif method == "POST" and route == "iam/operator":
                regions = [r.strip() for r in query.get("regions", "").split(",") if r.strip()]
                # With roleListing=1, also the optional
                # config/iam/role-listing-policy.json (SLUICE_ROLE_LISTING),
                # from then on for that prefix.
                if query.get("roleListing") == "1":
                    _role_listing.add(query["prefix"])
                listing = [ROLE_LISTING] if query["prefix"] in _role_listing else []
                policies = POLICIES + listing
                creds, boundary = iam.operator_user(query["prefix"], policies, BOUNDARY, regions or None)
                status, body = "200 OK", {
                    "accessKeyId": creds.access_key_id,
                    "secretAccessKey": creds.secret_access_key,
                    "permissionsBoundaryArn": boundary,
                }
            elif method == "POST" and route == "iam/reviewer":
                creds = iam.reviewer_user(query["prefix"], REVIEWER)
                status, body = "200 OK", {
                    "accessKeyId": creds.access_key_id,
                    "secretAccessKey": creds.secret_access_key,
                }
                if query.get("account"):
                    body["roleArn"] = iam.reviewer_role(query["account"], query["prefix"], REVIEWER)
            elif method == "GET" and route == "iam/simulate":
                # What a role may do, as IAM's SimulatePrincipalPolicy
                # answers: its policies, its boundary and the resource's
                # policy; `context.KEY=VALUE` adds a condition key.
                context = {k[len("context.") :]: v for k, v in query.items() if k.startswith("context.")}
                allowed = iam.role_may(query["role"], query["action"], query["resource"], context)
                status, body = "200 OK", {"allowed": allowed}
            elif method == "POST" and route == "iam/account":
                creds = iam.account_admin(query["id"])
                status, body = "200 OK", {
                    "accessKeyId": creds.access_key_id,
                    "secretAccessKey": creds.secret_access_key,
                    "account": query["id"],
                }
            elif method == "POST" and route == "iam/account-role":
                regions = [r.strip() for r in query.get("regions", "").split(",") if r.strip()]
                role, boundary = iam.account_role(
                    query["account"], query["prefix"], query.get("externalId"), POLICIES, BOUNDARY, regions or None
                )
                status, body = "200 OK", {"roleArn": role, "permissionsBoundaryArn": boundary, "account": query["account"]}
            elif method == "GET" and route == "iam/key-account":
                from moto.iam.models import get_account_id_from

                status, body = "200 OK", {"account": get_account_id_from(query["id"])}
            elif method == "POST" and route == "sts/lifetime":
                sts.set_lifetime(int(query["seconds"]))
                status, body = "200 OK", {"seconds": sts.lifetime()}
            elif method == "GET" and route == "sts/expired":
                status, body = "200 OK", iam.expired()
            elif method == "POST" and route == "refuse":
                with _refusals_lock:
                    _refusals.append((query["target"], query["match"], query["code"], query["message"]))
                status, body = "200 OK", {"pending": len(_refusals)}
            elif method == "POST" and route == "schedules/fire":
                status, body = "200 OK", fire(query["name"], query.get("group", "default"), scheduled=query.get("time"))
        except (FireError, KeyError, ValueError) as e:
            status, body = "400 Bad Request", {"error": str(e)}
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return wrapped
