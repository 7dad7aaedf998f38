#!/usr/bin/env python3
"""Self-check of the harness's IAM enforcement (sluice_harness/iam.py),
written as an attacker would: each check names what AWS allows and what it
refuses, and fails when the harness answers otherwise.

usage: selfcheck_iam.py http://127.0.0.1:PORT

It starts nothing: run it against a launcher.py started with
SLUICE_HARNESS_IAM=enforce, from this host (the /_sluice/ endpoints answer
only here). Every name it makes carries a fresh token, so it can run again
against the same emulator. Exits 1 and lists the failed checks on any
failure.

Covers: condition operators (unknown ones fail closed in Allow and Deny,
negated ones hold on an absent key, …IfExists, Bool); the keys
aws:RequestedRegion, aws:PrincipalAccount, iam:PermissionsBoundary,
s3:ResourceAccount, events:source (each PutEvents entry), iam:PassedToService;
roles with paths; permissions boundaries (missing policy = nothing allowed,
CreateRole/PutRolePermissionsBoundary with a missing one = NoSuchEntity);
ExpectedBucketOwner; bucket, queue, key and trust policies within and across
accounts; a second account's administrator; the operator user and the
pipeline boundary of config/iam; an AWS identity per namespace: the account
role (/_sluice/iam/account-role) refused without or with a wrong external
id, to another prefix's operator or a user the trust policy does not name,
session tags needing sts:TagSession (trust and identity policies,
aws:RequestTag, ForAllValues aws:TagKeys), AssumeRole's ValidationErrors,
the session acting in its account, and sessions that end
(/_sluice/sts/lifetime): ExpiredToken per protocol, kept at
/_sluice/sts/expired. It sets the lifetime back to 0 when done.
"""

from __future__ import annotations

import io
import json
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid
import zipfile
from urllib.parse import unquote

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

if len(sys.argv) != 2:
    sys.exit(__doc__)
ENDPOINT = sys.argv[1].rstrip("/")
REGION = "us-east-1"
DEFAULT = "123456789012"
OTHER = "210987654321"
ADMIN = ("AKIASLUICEHARNESS000", "sluice-harness-admin-secret", None)
T = uuid.uuid4().hex[:6]

failures: list[str] = []
passes = 0


def check(name: str, ok: bool, detail: object = "") -> None:
    global passes
    if ok:
        passes += 1
        print(f"ok    {name}")
    else:
        failures.append(f"{name}: {detail}")
        print(f"FAIL  {name}: {detail}")


def client(service: str, creds=ADMIN, region: str = REGION):  # type: ignore[no-untyped-def]
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=ENDPOINT,
        aws_access_key_id=creds[0],
        aws_secret_access_key=creds[1],
        aws_session_token=creds[2] if len(creds) > 2 else None,
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


def harness(method: str, route: str) -> dict:
    request = urllib.request.Request(f"{ENDPOINT}/_sluice/{route}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return {"status": answer.status, **json.load(answer)} if method == "POST" else json.load(answer)
    except urllib.error.HTTPError as e:
        return {"status": e.code, **json.load(e)}


def outcome(call) -> str:  # type: ignore[no-untyped-def]
    """"ok", or the error of the call: its code and message (moto answers
    an access denied of the JSON services as XML, which botocore leaves in
    the message under the HTTP status as code)."""
    try:
        call()
        return "ok"
    except ClientError as e:
        error = e.response.get("Error", {})
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{error.get('Code') or status} {error.get('Message') or ''}".strip()


def allowed(name: str, call) -> None:  # type: ignore[no-untyped-def]
    result = outcome(call)
    check(f"allowed: {name}", result == "ok", result)


def past_iam(name: str, call) -> None:  # type: ignore[no-untyped-def]
    """Allowed by IAM (moto may still answer an error of its own, e.g. NoSuchTagSet)."""
    result = outcome(call)
    check(f"allowed: {name}", "AccessDenied" not in result, result)


def refused(name: str, call, code: str = "AccessDenied") -> None:  # type: ignore[no-untyped-def]
    result = outcome(call)
    check(f"refused: {name}", code in result, f"got {result}, want {code}")


def user(name: str, policy: dict):  # type: ignore[no-untyped-def]
    """A user of the default account holding exactly `policy`, and its keys."""
    iam = client("iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return (key["AccessKeyId"], key["SecretAccessKey"], None), f"arn:aws:iam::{DEFAULT}:user/{name}"


def trust(*principals: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": p, "Action": "sts:AssumeRole"} for p in principals]})


def session(role_arn: str, creds=ADMIN):  # type: ignore[no-untyped-def]
    c = client("sts", creds).assume_role(RoleArn=role_arn, RoleSessionName="selfcheck")["Credentials"]
    return (c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


def denial(verdict: str, resource: str) -> bool:
    return any(d["verdict"] == verdict and d["resource"] == resource for d in harness("GET", "denials"))


def zipped_bootstrap() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\nexit 0\n")
    return buffer.getvalue()


ALLOW_ALL = {"Effect": "Allow", "Action": "*", "Resource": "*"}


# -- 1. condition operators and 2. the keys a request carries ------------------


def conditions() -> None:
    sqs = client("sqs")
    queue = sqs.create_queue(QueueName=f"sc{T}-cond")["QueueUrl"]
    bucket = f"sc{T}-cond"
    client("s3").create_bucket(Bucket=bucket)
    statements = [
        {"Effect": "Allow", "Action": ["sqs:GetQueueUrl", "sqs:TagQueue", "sqs:SetQueueAttributes"], "Resource": "*"},
        # An operator the harness does not evaluate (NumericLessThan is valid
        # IAM): in an Allow it allows nothing…
        {"Effect": "Allow", "Action": "sqs:ListQueueTags", "Resource": "*",
         "Condition": {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}},
        # …and in a Deny it denies.
        {"Effect": "Allow", "Action": ["sqs:GetQueueAttributes", "sqs:SendMessage", "sqs:UntagQueue",
                                       "sqs:ChangeMessageVisibility"], "Resource": "*"},
        {"Effect": "Deny", "Action": "sqs:GetQueueAttributes", "Resource": "*",
         "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2000-01-01T00:00:00Z"}}},
        # Negated operator, key absent: holds, so this Deny applies.
        {"Effect": "Deny", "Action": "sqs:SendMessage", "Resource": "*",
         "Condition": {"StringNotEquals": {"aws:SourceVpc": "vpc-1"}}},
        # Plain operator, key absent: does not hold, so this Deny does not apply.
        {"Effect": "Deny", "Action": "sqs:TagQueue", "Resource": "*",
         "Condition": {"StringEquals": {"aws:SourceVpc": "vpc-1"}}},
        # …IfExists, key absent: holds.
        {"Effect": "Deny", "Action": "sqs:UntagQueue", "Resource": "*",
         "Condition": {"StringEqualsIfExists": {"aws:SourceVpc": "vpc-1"}}},
        # Bool on an absent key: does not hold.
        {"Effect": "Deny", "Action": "sqs:SetQueueAttributes", "Resource": "*",
         "Condition": {"Bool": {"aws:ViaAWSService": "true"}}},
        # Null: the key is absent.
        {"Effect": "Deny", "Action": "sqs:ChangeMessageVisibility", "Resource": "*",
         "Condition": {"Null": {"aws:SourceVpc": "true"}}},
        # aws:RequestedRegion and aws:PrincipalAccount.
        {"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-3"}}},
        {"Effect": "Allow", "Action": "sqs:ListDeadLetterSourceQueues", "Resource": "*",
         "Condition": {"StringEquals": {"aws:RequestedRegion": "us-east-1"}}},
        {"Effect": "Allow", "Action": "sqs:PurgeQueue", "Resource": "*"},
        {"Effect": "Deny", "Action": "sqs:PurgeQueue", "Resource": "*",
         "Condition": {"StringNotEquals": {"aws:RequestedRegion": "eu-west-3"}}},
        {"Effect": "Allow", "Action": "s3:GetBucketTagging", "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalAccount": DEFAULT}}},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*",
         "Condition": {"StringEquals": {"aws:PrincipalAccount": OTHER}}},
        # s3:ResourceAccount
        {"Effect": "Allow", "Action": "s3:GetBucketLocation", "Resource": "*",
         "Condition": {"StringEquals": {"s3:ResourceAccount": DEFAULT}}},
        # events:source, entry by entry
        {"Effect": "Allow", "Action": "events:PutEvents", "Resource": f"arn:aws:events:{REGION}:{DEFAULT}:event-bus/default",
         "Condition": {"StringEquals": {"events:source": "selfcheck.good"}}},
        # iam:PassedToService
        {"Effect": "Allow", "Action": "lambda:CreateFunction", "Resource": "*"},
        {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*",
         "Condition": {"StringEquals": {"iam:PassedToService": "states.amazonaws.com"}}},
    ]
    creds, _ = user(f"sc{T}-cond", {"Version": "2012-10-17", "Statement": statements})
    sqs_u = client("sqs", creds)
    allowed("1 no condition", lambda: sqs_u.get_queue_url(QueueName=f"sc{T}-cond"))
    refused("1 unknown operator in an Allow does not allow", lambda: sqs_u.list_queue_tags(QueueUrl=queue))
    refused("1 unknown operator in a Deny denies", lambda: sqs_u.get_queue_attributes(QueueUrl=queue))
    refused("1 StringNotEquals on an absent key holds (Deny applies)", lambda: sqs_u.send_message(QueueUrl=queue, MessageBody="x"))
    allowed("1 StringEquals on an absent key does not hold (Deny skipped)", lambda: sqs_u.tag_queue(QueueUrl=queue, Tags={"a": "b"}))
    refused("1 StringEqualsIfExists on an absent key holds (Deny applies)", lambda: sqs_u.untag_queue(QueueUrl=queue, TagKeys=["a"]))
    allowed("1 Bool on an absent key does not hold (Deny skipped)",
            lambda: sqs_u.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "31"}))
    refused("1 Null true on an absent key holds (Deny applies)",
            lambda: sqs_u.change_message_visibility(QueueUrl=queue, ReceiptHandle="x", VisibilityTimeout=1))
    refused("2 aws:RequestedRegion: an Allow for another region", lambda: sqs_u.receive_message(QueueUrl=queue, WaitTimeSeconds=0))
    refused("2 aws:RequestedRegion: a Deny outside another region", lambda: sqs_u.purge_queue(QueueUrl=queue))
    allowed("2 aws:RequestedRegion: an Allow for this region", lambda: sqs_u.list_dead_letter_source_queues(QueueUrl=queue))
    s3_u = client("s3", creds)
    past_iam("2 aws:PrincipalAccount is the caller's account", lambda: s3_u.get_bucket_tagging(Bucket=bucket))
    refused("2 aws:PrincipalAccount is not another account", lambda: s3_u.list_objects_v2(Bucket=bucket))
    allowed("2 s3:ResourceAccount of the caller's bucket", lambda: s3_u.get_bucket_location(Bucket=bucket))
    events_u = client("events", creds)

    def put(*sources: str):  # type: ignore[no-untyped-def]
        def call():  # type: ignore[no-untyped-def]
            answer = events_u.put_events(Entries=[{"Source": s, "DetailType": "t", "Detail": "{}"} for s in sources])
            if answer.get("FailedEntryCount"):
                raise ClientError({"Error": {"Code": "FailedEntries"}}, "PutEvents")

        return call

    allowed("2 events:source of the one entry", put("selfcheck.good"))
    refused("2 events:source: one entry of another source refuses the request", put("selfcheck.good", "attacker.source"))
    lambda_u = client("lambda", creds)
    refused(
        "2 iam:PassedToService (PassRole for states only, passed to lambda)",
        lambda: lambda_u.create_function(
            FunctionName=f"sc{T}-pass", Runtime="provided.al2023", Handler="bootstrap",
            Role=f"arn:aws:iam::{DEFAULT}:role/sc{T}-any", Code={"ZipFile": zipped_bootstrap()},
        ),
    )


# -- 3. roles with paths, 4. boundaries -----------------------------------------


def roles_and_boundaries() -> None:
    iam = client("iam")
    sqs = client("sqs")
    queue = sqs.create_queue(QueueName=f"sc{T}-roles")["QueueUrl"]
    queue_arn = f"arn:aws:sqs:{REGION}:{DEFAULT}:sc{T}-roles"
    may_read = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:GetQueueAttributes", "Resource": queue_arn}]}
    bounds = iam.create_policy(PolicyName=f"sc{T}-bounds", Path=f"/sc{T}/", PolicyDocument=json.dumps(may_read))["Policy"]["Arn"]
    check("3 a managed policy's ARN has its path", bounds == f"arn:aws:iam::{DEFAULT}:policy/sc{T}/sc{T}-bounds", bounds)
    admin_trust = trust({"AWS": f"arn:aws:iam::{DEFAULT}:root"}, {"Service": "lambda.amazonaws.com"})
    role = iam.create_role(RoleName=f"sc{T}-pathed", Path=f"/sc{T}/", AssumeRolePolicyDocument=admin_trust,
                           PermissionsBoundary=bounds)["Role"]
    check("3 a role's ARN has its path", role["Arn"] == f"arn:aws:iam::{DEFAULT}:role/sc{T}/sc{T}-pathed", role["Arn"])
    iam.put_role_policy(RoleName=f"sc{T}-pathed", PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]}))
    as_role = client("sqs", session(role["Arn"]))
    allowed("3/4 a session of a role with a path, within its boundary", lambda: as_role.get_queue_attributes(QueueUrl=queue))
    refused("4 the boundary limits what the role's policy allows", lambda: as_role.send_message(QueueUrl=queue, MessageBody="x"))

    # A user allowed only roles under /scT/: by the role's real ARN.
    creds, _ = user(f"sc{T}-roles", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iam:GetRole", "iam:TagRole", "iam:CreateRole"], "Resource": f"arn:aws:iam::{DEFAULT}:role/sc{T}/*"}]})
    iam.create_role(RoleName=f"sc{T}-rootpath", AssumeRolePolicyDocument=admin_trust)
    iam_u = client("iam", creds)
    allowed("3 GetRole on a role under the allowed path (named by RoleName)", lambda: iam_u.get_role(RoleName=f"sc{T}-pathed"))
    refused("3 GetRole on a role at another path", lambda: iam_u.get_role(RoleName=f"sc{T}-rootpath"))
    allowed("3 CreateRole against role{Path}{RoleName}", lambda: iam_u.create_role(
        RoleName=f"sc{T}-made", Path=f"/sc{T}/", AssumeRolePolicyDocument=admin_trust))
    refused("3 CreateRole at another path", lambda: iam_u.create_role(RoleName=f"sc{T}-made2", AssumeRolePolicyDocument=admin_trust))
    refused("3 a role that does not exist is role/{RoleName}", lambda: iam_u.tag_role(RoleName=f"sc{T}-nosuch", Tags=[{"Key": "a", "Value": "b"}]))

    # The execution-role checks (role_may) read roles by their path ARN.
    fn_role = iam.create_role(RoleName=f"sc{T}-fn", Path=f"/sc{T}/", AssumeRolePolicyDocument=admin_trust)["Role"]["Arn"]
    iam.put_role_policy(RoleName=f"sc{T}-fn", PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], "Resource": queue_arn}]}))
    lam = client("lambda")
    for name, arn in ((f"sc{T}-fn", fn_role), (f"sc{T}-fn-nothing", role["Arn"])):
        lam.create_function(FunctionName=name, Runtime="provided.al2023", Handler="bootstrap", Role=arn,
                            Code={"ZipFile": zipped_bootstrap()})
    allowed("3 a mapping whose role (path ARN) may read the queue",
            lambda: lam.create_event_source_mapping(FunctionName=f"sc{T}-fn", EventSourceArn=queue_arn, Enabled=False))
    refused("3/4 a mapping whose role's boundary does not let it receive",
            lambda: lam.create_event_source_mapping(FunctionName=f"sc{T}-fn-nothing", EventSourceArn=queue_arn, Enabled=False),
            "InvalidParameterValue")

    # A boundary naming a policy that no longer exists allows nothing.
    gone = iam.create_policy(PolicyName=f"sc{T}-gone", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [ALLOW_ALL]}))["Policy"]["Arn"]
    doomed = iam.create_role(RoleName=f"sc{T}-doomed", Path=f"/sc{T}/", AssumeRolePolicyDocument=admin_trust,
                             PermissionsBoundary=gone)["Role"]["Arn"]
    iam.put_role_policy(RoleName=f"sc{T}-doomed", PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [ALLOW_ALL]}))
    doomed_session = session(doomed)
    allowed("4 a role within an existing boundary", lambda: client("sqs", doomed_session).get_queue_attributes(QueueUrl=queue))
    iam.delete_policy(PolicyArn=gone)
    refused("4 a boundary naming a missing policy allows nothing",
            lambda: client("sqs", doomed_session).get_queue_attributes(QueueUrl=queue))
    missing = f"arn:aws:iam::{DEFAULT}:policy/sc{T}/no-such-policy"
    refused("4 CreateRole with a boundary naming no policy", lambda: iam.create_role(
        RoleName=f"sc{T}-nobound", AssumeRolePolicyDocument=admin_trust, PermissionsBoundary=missing), "NoSuchEntity")
    refused("4 PutRolePermissionsBoundary naming no policy", lambda: iam.put_role_permissions_boundary(
        RoleName=f"sc{T}-rootpath", PermissionsBoundary=missing), "NoSuchEntity")
    allowed("4 PutRolePermissionsBoundary naming a policy", lambda: iam.put_role_permissions_boundary(
        RoleName=f"sc{T}-rootpath", PermissionsBoundary=bounds))


# -- 5. ExpectedBucketOwner, 6. resource policies, 7. a second account --------------


def accounts() -> None:
    bucket = f"sc{T}-cond"
    other = harness("POST", f"iam/account?id={OTHER}")
    check("7 the account endpoint answers", other.get("status") == 200 and other.get("account") == OTHER, other)
    check("7 the account endpoint refuses a malformed id", harness("POST", "iam/account?id=12ab").get("status") == 400)
    again = harness("POST", f"iam/account?id={OTHER}")
    check("7 the same administrator on a second call", again.get("accessKeyId") == other.get("accessKeyId"), again)
    b = (other["accessKeyId"], other["secretAccessKey"], None)
    identity = client("sts", b).get_caller_identity()
    check("7 GetCallerIdentity names the other account", identity["Account"] == OTHER and identity["Arn"].startswith(f"arn:aws:iam::{OTHER}:"), identity)
    secret = harness("GET", f"credentials?key={b[0]}")
    check("7 secret_of finds a key of another account", secret.get("secretAccessKey") == b[1], secret)

    s3_b, s3_a = client("s3", b), client("s3")
    theirs = f"sc{T}-theirs"
    s3_b.create_bucket(Bucket=theirs)
    s3_b.put_object(Bucket=theirs, Key="k", Body=b"secret")
    sqs_b, sqs_a = client("sqs", b), client("sqs")
    their_queue = sqs_b.create_queue(QueueName=f"sc{T}-theirs")["QueueUrl"]
    check("7 the other account's queue URL names it", f"/{OTHER}/" in their_queue, their_queue)
    check("7 the other account's queue is not the default account's",
          their_queue not in sqs_a.list_queues(QueueNamePrefix=f"sc{T}-theirs").get("QueueUrls", []))
    check("7 the other account lists its own bucket", theirs in [x["Name"] for x in s3_b.list_buckets()["Buckets"]])

    # 5. ExpectedBucketOwner
    allowed("5 ExpectedBucketOwner: the owner", lambda: s3_a.list_objects_v2(Bucket=bucket, ExpectedBucketOwner=DEFAULT))
    refused("5 ExpectedBucketOwner: another account (the administrator asking of its own bucket)",
            lambda: s3_a.list_objects_v2(Bucket=bucket, ExpectedBucketOwner=OTHER))
    check("5 the refusal is recorded", denial("ExpectedBucketOwner", f"arn:aws:s3:::{bucket}"))
    refused("5 ExpectedBucketOwner: the bucket's own owner expecting another",
            lambda: s3_b.get_object(Bucket=theirs, Key="k", ExpectedBucketOwner=DEFAULT))
    allowed("5 a PutObject with the right owner keeps its bytes",
            lambda: s3_a.put_object(Bucket=bucket, Key="o", Body=b"\x00bytes\xff", ExpectedBucketOwner=DEFAULT))
    check("5 … and they read back", s3_a.get_object(Bucket=bucket, Key="o")["Body"].read() == b"\x00bytes\xff")

    # 6. S3 across accounts: the administrator too needs the bucket policy.
    refused("6 another account's bucket without a policy (even for the administrator)",
            lambda: s3_a.get_object(Bucket=theirs, Key="k"))
    s3_b.put_bucket_policy(Bucket=theirs, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": DEFAULT}, "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{theirs}/*"},
        {"Effect": "Deny", "Principal": {"AWS": [f"arn:aws:iam::{DEFAULT}:user/sluice-harness-admin"]},
         "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{theirs}/denied/*"},
    ]}))
    s3_b.put_object(Bucket=theirs, Key="denied/k", Body=b"x")
    allowed("6 another account's bucket whose policy grants the account", lambda: s3_a.get_object(Bucket=theirs, Key="k"))
    refused("6 … not what the policy does not grant", lambda: s3_a.put_object(Bucket=theirs, Key="k2", Body=b"x"))
    refused("6 … and an explicit Deny naming the caller wins", lambda: s3_a.get_object(Bucket=theirs, Key="denied/k"))

    # s3:ResourceAccount in an identity policy, against another account's bucket.
    s3_b.put_bucket_policy(Bucket=theirs, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetBucketLocation", "Resource": f"arn:aws:s3:::{theirs}"},
        {"Effect": "Allow", "Principal": {"AWS": DEFAULT}, "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{theirs}/*"},
    ]}))
    creds, user_arn = user(f"sc{T}-reader", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetBucketLocation", "Resource": "*",
         "Condition": {"StringEquals": {"s3:ResourceAccount": DEFAULT}}}]})
    s3_u = client("s3", creds)
    allowed("2 s3:ResourceAccount: the caller's account's bucket", lambda: s3_u.get_bucket_location(Bucket=bucket))
    refused("2 s3:ResourceAccount: another account's bucket, though its policy grants everyone",
            lambda: s3_u.get_bucket_location(Bucket=theirs))

    # Same account: the bucket policy may grant a user by its ARN, not by the account.
    refused("6 same account: nothing grants the user GetObject", lambda: s3_u.get_object(Bucket=bucket, Key="o"))
    client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{DEFAULT}:root"}, "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
    ]}))
    allowed("6 same account: the bucket policy grants the user's ARN", lambda: s3_u.get_object(Bucket=bucket, Key="o"))
    refused("6 same account: a grant to the account root delegates to IAM", lambda: s3_u.put_object(Bucket=bucket, Key="p", Body=b"x"))

    # SQS across accounts.
    refused("6 another account's queue without a policy (even for the administrator)",
            lambda: sqs_a.send_message(QueueUrl=their_queue, MessageBody="x"))
    sqs_b.set_queue_attributes(QueueUrl=their_queue, Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{DEFAULT}:root"}, "Action": "sqs:SendMessage",
         "Resource": f"arn:aws:sqs:{REGION}:{OTHER}:sc{T}-theirs"}]})})
    allowed("6 another account's queue whose policy grants the account",
            lambda: sqs_a.send_message(QueueUrl=their_queue, MessageBody="cross"))
    got = sqs_b.receive_message(QueueUrl=their_queue, WaitTimeSeconds=0).get("Messages", [])
    check("6 … the message is in the other account's queue", [m["Body"] for m in got] == ["cross"], got)
    refused("6 … not what the policy does not grant", lambda: sqs_a.receive_message(QueueUrl=their_queue, WaitTimeSeconds=0))

    # SQS, same account: a queue policy naming a role grants its sessions.
    iam = client("iam")
    queue = sqs_a.create_queue(QueueName=f"sc{T}-mine")["QueueUrl"]
    role_arn = iam.create_role(RoleName=f"sc{T}-sender", Path=f"/sc{T}/",
                               AssumeRolePolicyDocument=trust({"AWS": f"arn:aws:iam::{DEFAULT}:root"}))["Role"]["Arn"]
    as_role = client("sqs", session(role_arn))
    refused("6 same account: a role with no policy", lambda: as_role.send_message(QueueUrl=queue, MessageBody="x"))
    sqs_a.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": role_arn}, "Action": "sqs:SendMessage", "Resource": "*"}]})})
    allowed("6 same account: the queue policy names the role (path ARN), its session sends",
            lambda: as_role.send_message(QueueUrl=queue, MessageBody="x"))

    # KMS: the key policy decides, naming the account root delegates to IAM.
    kms_a, kms_b = client("kms"), client("kms", b)
    key = kms_a.create_key()["KeyMetadata"]["Arn"]
    allowed("6 KMS: the default key policy delegates to IAM", lambda: kms_a.encrypt(KeyId=key, Plaintext=b"x"))
    their_key = kms_b.create_key()["KeyMetadata"]["Arn"]
    refused("6 KMS: another account's key whose policy names only its own account", lambda: kms_a.describe_key(KeyId=their_key))
    kms_b.put_key_policy(KeyId=their_key, PolicyName="default", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OTHER}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{DEFAULT}:root"}, "Action": "kms:DescribeKey", "Resource": "*"}]}))
    allowed("6 KMS: another account's key whose policy grants the account", lambda: kms_a.describe_key(KeyId=their_key))
    refused("6 KMS: … not what it does not grant", lambda: kms_a.encrypt(KeyId=their_key, Plaintext=b"x"))
    kms_a.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "kms:*", "Resource": "*"}]}))
    refused("6 KMS: a key policy not naming the account, even for the administrator", lambda: kms_a.encrypt(KeyId=key, Plaintext=b"x"))

    # STS AssumeRole: the trust policy, account against account.
    sts_b = client("sts", b)
    service_only = iam.create_role(RoleName=f"sc{T}-svc", Path=f"/sc{T}/",
                                   AssumeRolePolicyDocument=trust({"Service": "lambda.amazonaws.com"}))["Role"]["Arn"]
    trusting = iam.create_role(RoleName=f"sc{T}-trusts-b", Path=f"/sc{T}/",
                               AssumeRolePolicyDocument=trust({"AWS": f"arn:aws:iam::{OTHER}:root"}))["Role"]["Arn"]
    refused("6 AssumeRole of another account's role that trusts a service only",
            lambda: sts_b.assume_role(RoleArn=service_only, RoleSessionName="xx"))
    refused("6 AssumeRole of a role that trusts a service only (same account, administrator)",
            lambda: client("sts").assume_role(RoleArn=service_only, RoleSessionName="xx"))
    allowed("6 AssumeRole of another account's role that trusts this account",
            lambda: sts_b.assume_role(RoleArn=trusting, RoleSessionName="xx"))
    refused("6 AssumeRole of a role that does not exist",
            lambda: sts_b.assume_role(RoleArn=f"arn:aws:iam::{DEFAULT}:role/sc{T}-nosuch", RoleSessionName="xx"))


# -- 8. the operator and the pipeline boundary ----------------------------------------


def operator() -> None:
    p = f"op{T}"
    answer = harness("POST", f"iam/operator?prefix={p}")
    boundary = f"arn:aws:iam::{DEFAULT}:policy/{p}/{p}-pipeline-boundary"
    check("8 the operator endpoint names the boundary", answer.get("permissionsBoundaryArn") == boundary, answer)
    again = harness("POST", f"iam/operator?prefix={p}")
    check("8 the same user on a second call", again.get("accessKeyId") == answer.get("accessKeyId"), again)
    document = client("iam").get_policy_version(
        PolicyArn=boundary, VersionId=client("iam").get_policy(PolicyArn=boundary)["Policy"]["DefaultVersionId"])["PolicyVersion"]["Document"]
    text = json.dumps(document) if isinstance(document, dict) else json.dumps(json.loads(unquote(document)))
    check("8 the boundary is rendered for the prefix", f"/aws/lambda/{p}-*" in text and "sluice" not in text and "ACCOUNT_ID" not in text, text[:200])
    user_policy = client("iam").get_user_policy(UserName=f"operator-{p}", PolicyName="policy")["PolicyDocument"]
    user_text = json.dumps(user_policy) if isinstance(user_policy, dict) else unquote(user_policy)
    check("8 the operator policy is rendered (paths, regions, code key prefix kept)",
          f"role/{p}/{p}-*" in user_text and f"policy/{p}/{p}-pipeline-boundary" in user_text
          and f"{p}-code-*/sluice/handlers/*" in user_text and "ALLOWED_REGION" not in user_text and '"us-east-1"' in user_text,
          user_text[:300])
    op = (answer["accessKeyId"], answer["secretAccessKey"], None)
    iam_o = client("iam", op)
    trust_lambda = trust({"Service": "lambda.amazonaws.com"})
    role = f"arn:aws:iam::{DEFAULT}:role/{p}/{p}-x"
    allowed("8a CreateRole under /P/ with the boundary", lambda: iam_o.create_role(
        RoleName=f"{p}-x", Path=f"/{p}/", AssumeRolePolicyDocument=trust_lambda, PermissionsBoundary=boundary))
    allowed("8a PutRolePolicy on it", lambda: iam_o.put_role_policy(RoleName=f"{p}-x", PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}]})))
    allowed("8a UpdateAssumeRolePolicy on it (its boundary as iam:PermissionsBoundary)",
            lambda: iam_o.update_assume_role_policy(RoleName=f"{p}-x", PolicyDocument=trust_lambda))
    lambda_o = client("lambda", op)
    allowed("8a PassRole it to lambda (CreateFunction)", lambda: lambda_o.create_function(
        FunctionName=f"{p}-fn", Runtime="provided.al2023", Handler="bootstrap", Role=role, Code={"ZipFile": zipped_bootstrap()}))
    refused("8b CreateRole without the boundary", lambda: iam_o.create_role(
        RoleName=f"{p}-y", Path=f"/{p}/", AssumeRolePolicyDocument=trust_lambda))
    other_bound = client("iam").create_policy(PolicyName=f"{p}-other", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [ALLOW_ALL]}))["Policy"]["Arn"]
    refused("8b CreateRole with another boundary", lambda: iam_o.create_role(
        RoleName=f"{p}-y", Path=f"/{p}/", AssumeRolePolicyDocument=trust_lambda, PermissionsBoundary=other_bound))
    refused("8c CreateRole at path /", lambda: iam_o.create_role(
        RoleName=f"{p}-y", AssumeRolePolicyDocument=trust_lambda, PermissionsBoundary=boundary))
    refused("8d DeleteRolePermissionsBoundary", lambda: iam_o.delete_role_permissions_boundary(RoleName=f"{p}-x"))
    client("iam").create_role(RoleName=f"{p}-unbounded", Path=f"/{p}/", AssumeRolePolicyDocument=trust_lambda)
    refused("8e PutRolePolicy on a role without the boundary", lambda: iam_o.put_role_policy(
        RoleName=f"{p}-unbounded", PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [ALLOW_ALL]})))
    refused("8f CreatePolicyVersion on the boundary", lambda: iam_o.create_policy_version(
        PolicyArn=boundary, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [ALLOW_ALL]}), SetAsDefault=True))
    allowed("8g CreateQueue P-q in us-east-1", lambda: client("sqs", op).create_queue(QueueName=f"{p}-q"))
    refused("8g CreateQueue P-q in eu-north-1", lambda: client("sqs", op, "eu-north-1").create_queue(QueueName=f"{p}-q"))
    client("iam").create_role(RoleName=f"{p}-outside", AssumeRolePolicyDocument=trust_lambda)
    refused("8h PassRole of a role outside /P/", lambda: lambda_o.create_function(
        FunctionName=f"{p}-fn2", Runtime="provided.al2023", Handler="bootstrap",
        Role=f"arn:aws:iam::{DEFAULT}:role/{p}-outside", Code={"ZipFile": zipped_bootstrap()}))
    # The boundary bounds the role the operator made.
    as_role = client("sqs", session_of_lambda_role(role))
    refused("8 the pipeline boundary bounds the role (sqs:SendMessage outside P-*)",
            lambda: as_role.send_message(QueueUrl=client("sqs").create_queue(QueueName=f"sc{T}-not-p")["QueueUrl"], MessageBody="x"))
    allowed("8 … and lets it send to its own queues",
            lambda: as_role.send_message(QueueUrl=client("sqs").get_queue_url(QueueName=f"{p}-q")["QueueUrl"], MessageBody="x"))

    # Another region list.
    answer2 = harness("POST", f"iam/operator?prefix={p}r&regions=eu-north-1,us-east-1")
    op2 = (answer2["accessKeyId"], answer2["secretAccessKey"], None)
    allowed("8 regions=eu-north-1,us-east-1: CreateQueue in eu-north-1", lambda: client("sqs", op2, "eu-north-1").create_queue(QueueName=f"{p}r-q"))
    refused("8 regions=eu-north-1,us-east-1: not in eu-west-1", lambda: client("sqs", op2, "eu-west-1").create_queue(QueueName=f"{p}r-q"))


def session_of_lambda_role(role_arn: str):  # type: ignore[no-untyped-def]
    """Credentials of a role that trusts only Lambda, as Lambda gets them
    (the administrator widens its trust for this check)."""
    name = role_arn.split("/")[-1]
    client("iam").update_assume_role_policy(RoleName=name, PolicyDocument=trust(
        {"Service": "lambda.amazonaws.com"}, {"AWS": f"arn:aws:iam::{DEFAULT}:root"}))
    return session(role_arn)


# -- 9. an AWS identity per namespace: the account role, its session ----------


ACCOUNT_A = "345678901234"  # neither the default account nor OTHER
NAMESPACE_TAGS = [{"Key": "sluice.dev/namespace", "Value": "team-a"}, {"Key": "sluice.dev/pipeline", "Value": "orders"}]


def error_of(call) -> tuple[str, int | None]:  # type: ignore[no-untyped-def]
    """("ok", None) or the error code and HTTP status of the call."""
    try:
        call()
        return "ok", None
    except ClientError as e:
        return e.response.get("Error", {}).get("Code") or "", e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def answered(name: str, call, code: str, status: int) -> None:  # type: ignore[no-untyped-def]
    """Refused with exactly this error code and HTTP status."""
    got = error_of(call)
    check(f"refused: {name}", got == (code, status), f"got {got}, want {(code, status)}")


def unvalidated(service: str, creds):  # type: ignore[no-untyped-def]
    """A client that sends what botocore would refuse before sending (a
    DurationSeconds under 900, a one-character RoleSessionName): the
    emulator must refuse it as AWS does."""
    return boto3.client(
        service, region_name=REGION, endpoint_url=ENDPOINT, aws_access_key_id=creds[0], aws_secret_access_key=creds[1],
        aws_session_token=creds[2] if len(creds) > 2 else None,
        config=Config(retries={"max_attempts": 1}, parameter_validation=False),
    )


def operator_of(p: str):  # type: ignore[no-untyped-def]
    """The operator user of prefix p and the account role its documented
    policy lets it assume (statement AssumeAccountRoles,
    `arn:aws:iam::*:role/…`, rendered for p)."""
    answer = harness("POST", f"iam/operator?prefix={p}")
    creds = (answer["accessKeyId"], answer["secretAccessKey"], None)
    document = client("iam").get_user_policy(UserName=f"operator-{p}", PolicyName="policy")["PolicyDocument"]
    document = document if isinstance(document, dict) else json.loads(unquote(document))
    granted = [s for s in document["Statement"] if s.get("Sid") == "AssumeAccountRoles"]
    resources = [r for s in granted for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])]
    actions = {a for s in granted for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    check(f"9 the operator policy (prefix {p}) grants sts:AssumeRole and sts:TagSession on one role of any account",
          len(resources) == 1 and resources[0].startswith("arn:aws:iam::*:role/") and "*" not in resources[0][len("arn:aws:iam::*:"):]
          and actions == {"sts:AssumeRole", "sts:TagSession"}, granted)
    return creds, resources[0] if resources else f"arn:aws:iam::*:role/{p}/{p}-operator"


def as_session(answer: dict):  # type: ignore[no-untyped-def]
    c = answer["Credentials"]
    return (c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


def account_roles() -> None:
    p, external = f"ar{T}", f"ext-{T}:ns/team-a"
    op, granted = operator_of(p)
    answer = harness("POST", f"iam/account-role?account={ACCOUNT_A}&prefix={p}&externalId={external}")
    # The role the operator's policy lets it assume, in account A.
    role = granted.replace("arn:aws:iam::*:", f"arn:aws:iam::{ACCOUNT_A}:")
    role_name = role.rsplit("/", 1)[1]
    boundary = f"arn:aws:iam::{ACCOUNT_A}:policy/{p}/{p}-pipeline-boundary"
    check("9 the account-role endpoint answers the role, its account's boundary, the account",
          answer == {"status": 200, "roleArn": role, "permissionsBoundaryArn": boundary, "account": ACCOUNT_A}, answer)
    check("9 the same role on a second call", harness("POST", f"iam/account-role?account={ACCOUNT_A}&prefix={p}&externalId={external}") == answer)
    check("9 a malformed account is refused", harness("POST", f"iam/account-role?account=12345&prefix={p}").get("status") == 400)
    check("9 a malformed external id is refused", harness("POST", f"iam/account-role?account={ACCOUNT_A}&prefix={p}&externalId=a%20b").get("status") == 400)
    admin_a = harness("POST", f"iam/account?id={ACCOUNT_A}")
    a = (admin_a["accessKeyId"], admin_a["secretAccessKey"], None)
    iam_a = client("iam", a)
    got = iam_a.get_role(RoleName=role_name)["Role"]
    trust_text = json.dumps(got["AssumeRolePolicyDocument"]) if isinstance(got["AssumeRolePolicyDocument"], dict) else unquote(got["AssumeRolePolicyDocument"])
    check("9 the role: MaxSessionDuration 3600, trusting operator-P with the external id",
          got["Arn"] == role and int(got.get("MaxSessionDuration", 0)) == 3600
          and f"arn:aws:iam::{DEFAULT}:user/operator-{p}" in trust_text and external in trust_text and "sts:TagSession" in trust_text,
          (got["Arn"], got.get("MaxSessionDuration"), trust_text))
    policy = iam_a.get_role_policy(RoleName=role_name, PolicyName="policy")["PolicyDocument"]
    policy_text = json.dumps(policy) if isinstance(policy, dict) else unquote(policy)
    check("9 its policy is the operator policy rendered for P and account A",
          f"arn:aws:sqs:*:{ACCOUNT_A}:{p}-*" in policy_text and f"policy/{p}/{p}-pipeline-boundary" in policy_text
          and "ACCOUNT_ID" not in policy_text and "sluice-" not in policy_text and f":{DEFAULT}:" not in policy_text,
          policy_text[:300])
    check("9 the boundary exists in account A", iam_a.get_policy(PolicyArn=boundary)["Policy"]["Arn"] == boundary)

    sts_o = client("sts", op)

    def assume(**kwargs):  # type: ignore[no-untyped-def]
        return lambda: sts_o.assume_role(RoleArn=role, RoleSessionName=kwargs.pop("RoleSessionName", f"team-a-{T}"), **kwargs)

    refused("9 AssumeRole without the external id", assume(Tags=NAMESPACE_TAGS))
    refused("9 AssumeRole with a wrong external id", assume(ExternalId=f"ext-{T}:ns/team-b", Tags=NAMESPACE_TAGS))
    refused("9 AssumeRole with the external id in another case", assume(ExternalId=external.upper(), Tags=NAMESPACE_TAGS))
    allowed("9 AssumeRole with the external id, session tags and DurationSeconds 3600",
            assume(ExternalId=external, Tags=NAMESPACE_TAGS, DurationSeconds=3600))

    # The role's limits and the API's constraints: ValidationError, 400.
    raw = unvalidated("sts", op)

    def bad(**kwargs):  # type: ignore[no-untyped-def]
        params = {"RoleArn": role, "RoleSessionName": f"team-a-{T}", "ExternalId": external, **kwargs}
        return lambda: raw.assume_role(**params)

    answered("9 a RoleSessionName with a space", bad(RoleSessionName="team a"), "ValidationError", 400)
    answered("9 a RoleSessionName of one character", bad(RoleSessionName="t"), "ValidationError", 400)
    answered("9 a RoleSessionName of 65 characters", bad(RoleSessionName="t" * 65), "ValidationError", 400)
    answered("9 an ExternalId with a space", bad(ExternalId="ext id"), "ValidationError", 400)
    answered("9 DurationSeconds 899", bad(DurationSeconds=899), "ValidationError", 400)
    answered("9 DurationSeconds 43201", bad(DurationSeconds=43201), "ValidationError", 400)
    answered("9 DurationSeconds 7200, above the role's MaxSessionDuration 3600", bad(DurationSeconds=7200), "ValidationError", 400)
    answered("9 a session tag value of 257 characters", bad(Tags=[{"Key": "sluice.dev/namespace", "Value": "v" * 257}]), "ValidationError", 400)
    answered("9 a session tag key of 129 characters", bad(Tags=[{"Key": "k" * 129, "Value": "v"}]), "ValidationError", 400)
    answered("9 51 session tags", bad(Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)]), "ValidationError", 400)
    allowed("9 a tag value of 256 characters and 50 tags",
            bad(Tags=[{"Key": "sluice.dev/namespace", "Value": "v" * 256}] + [{"Key": f"k{i}", "Value": "v"} for i in range(49)]))

    # sts:TagSession: the trust policy and, across accounts, the caller's own policy.
    original_trust = got["AssumeRolePolicyDocument"]
    original_trust = json.dumps(original_trust) if isinstance(original_trust, dict) else unquote(original_trust)
    no_tagging = json.loads(original_trust)
    no_tagging["Statement"][0]["Action"] = "sts:AssumeRole"
    iam_a.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(no_tagging))
    try:
        refused("9 session tags when the trust policy lacks sts:TagSession", assume(ExternalId=external, Tags=NAMESPACE_TAGS))
        refused("9 TransitiveTagKeys alone when the trust policy lacks sts:TagSession",
                lambda: unvalidated("sts", op).assume_role(RoleArn=role, RoleSessionName="x" + T, ExternalId=external,
                                                           TransitiveTagKeys=["sluice.dev/namespace"]))
        allowed("9 … that trust policy still lets it assume the role without tags", assume(ExternalId=external))
    finally:
        iam_a.update_assume_role_policy(RoleName=role_name, PolicyDocument=original_trust)
    tagger_trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{DEFAULT}:user/sc{T}-tagless"},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {"StringEquals": {"aws:RequestTag/sluice.dev/namespace": "team-a"},
                      "ForAllValues:StringEquals": {"aws:TagKeys": ["sluice.dev/namespace", "sluice.dev/pipeline"]}}}]}
    tagged_role = iam_a.create_role(RoleName=f"sc{T}-tagged", Path=f"/sc{T}/", AssumeRolePolicyDocument=json.dumps(tagger_trust))["Role"]["Arn"]
    tagless, _ = user(f"sc{T}-tagless", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": tagged_role}]})
    sts_t = client("sts", tagless)
    refused("9 session tags when the caller's own policy lacks sts:TagSession (another account's role)",
            lambda: sts_t.assume_role(RoleArn=tagged_role, RoleSessionName="t" + T, Tags=NAMESPACE_TAGS))
    client("iam").put_user_policy(UserName=f"sc{T}-tagless", PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": tagged_role}]}))
    allowed("9 … with sts:TagSession, tags the trust policy's conditions accept (aws:RequestTag, aws:TagKeys)",
            lambda: sts_t.assume_role(RoleArn=tagged_role, RoleSessionName="t" + T, Tags=NAMESPACE_TAGS))
    refused("9 aws:RequestTag: a session claiming another namespace",
            lambda: sts_t.assume_role(RoleArn=tagged_role, RoleSessionName="t" + T,
                                      Tags=[{"Key": "sluice.dev/namespace", "Value": "team-b"}]))
    refused("9 ForAllValues aws:TagKeys: a tag key the trust policy does not list",
            lambda: sts_t.assume_role(RoleArn=tagged_role, RoleSessionName="t" + T,
                                      Tags=NAMESPACE_TAGS + [{"Key": "admin", "Value": "true"}]))

    # The session acts in account A, as the role.
    started = time.time()
    answer = sts_o.assume_role(RoleArn=role, RoleSessionName=f"team-a-{T}", ExternalId=external, Tags=NAMESPACE_TAGS)
    session_a = as_session(answer)
    lasts = answer["Credentials"]["Expiration"].timestamp() - started
    check("9 the session's Expiration is DurationSeconds (3600) away", 3590 <= lasts <= 3610, lasts)
    identity = client("sts", session_a).get_caller_identity()
    check("9 GetCallerIdentity of the session names account A and the role",
          identity["Account"] == ACCOUNT_A and identity["Arn"] == f"arn:aws:sts::{ACCOUNT_A}:assumed-role/{role_name}/team-a-{T}", identity)
    queue = client("sqs", session_a).create_queue(QueueName=f"{p}-q")["QueueUrl"]
    check("9 a queue the session creates is account A's", f"/{ACCOUNT_A}/{p}-q" in queue, queue)
    check("9 … account A's administrator finds it", client("sqs", a).get_queue_url(QueueName=f"{p}-q")["QueueUrl"] == queue)
    check("9 … the default account has no such queue",
          any(s in error_of(lambda: client("sqs").get_queue_url(QueueName=f"{p}-q"))[0] for s in ("NonExistentQueue", "QueueDoesNotExist")))
    bucket = f"{p}-bucket"
    allowed("9 the session creates a bucket P-*", lambda: client("s3", session_a).create_bucket(Bucket=bucket))
    allowed("9 … owned by account A (ExpectedBucketOwner A)", lambda: client("s3", a).head_bucket(Bucket=bucket, ExpectedBucketOwner=ACCOUNT_A))
    default_queue = client("sqs").create_queue(QueueName=f"{p}-q")["QueueUrl"]
    refused("9 the session may not send to the default account's queue of the same name",
            lambda: client("sqs", session_a).send_message(QueueUrl=default_queue, MessageBody="x"))
    refused("9 the session may not create a queue outside P-*", lambda: client("sqs", session_a).create_queue(QueueName=f"sc{T}-q"))

    # Other principals of the default account.
    q = f"aq{T}"
    other_op, _ = operator_of(q)
    other_role = harness("POST", f"iam/account-role?account={ACCOUNT_A}&prefix={q}")["roleArn"]
    refused("9 the operator user of another prefix may not assume P's role",
            lambda: client("sts", other_op).assume_role(RoleArn=role, RoleSessionName="x" + T, ExternalId=external))
    allowed("9 … it assumes its own (no external id required of it)",
            lambda: client("sts", other_op).assume_role(RoleArn=other_role, RoleSessionName="x" + T))
    greedy, _ = user(f"sc{T}-greedy", {"Version": "2012-10-17", "Statement": [ALLOW_ALL]})
    refused("9 a user of the default account allowed everything, not named by the trust policy",
            lambda: client("sts", greedy).assume_role(RoleArn=role, RoleSessionName="x" + T, ExternalId=external))
    refused("9 the session of P's role may not assume it again (role chaining, not trusted)",
            lambda: client("sts", session_a).assume_role(RoleArn=role, RoleSessionName="x" + T, ExternalId=external))

    # Role chaining: a session assuming a role gets at most an hour.
    iam = client("iam")
    long_role = iam.create_role(RoleName=f"sc{T}-long", Path=f"/sc{T}/", MaxSessionDuration=43200,
                                AssumeRolePolicyDocument=trust({"AWS": f"arn:aws:iam::{DEFAULT}:root"}))["Role"]["Arn"]
    iam.put_role_policy(RoleName=f"sc{T}-long", PolicyName="p", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": long_role}]}))
    allowed("9 DurationSeconds 7200 within the role's MaxSessionDuration 43200",
            lambda: client("sts").assume_role(RoleArn=long_role, RoleSessionName="l" + T, DurationSeconds=7200))
    chained = as_session(client("sts").assume_role(RoleArn=long_role, RoleSessionName="l" + T))
    answered("9 role chaining: a session asking 7200 s", lambda: client("sts", chained).assume_role(
        RoleArn=long_role, RoleSessionName="c" + T, DurationSeconds=7200), "ValidationError", 400)
    allowed("9 role chaining: a session asking 3600 s", lambda: client("sts", chained).assume_role(
        RoleArn=long_role, RoleSessionName="c" + T, DurationSeconds=3600))

    # Sessions that end: lifetime 2 s.
    check("9 the lifetime knob answers", harness("POST", "sts/lifetime?seconds=2") == {"status": 200, "seconds": 2})
    try:
        started = time.time()
        answer = sts_o.assume_role(RoleArn=role, RoleSessionName=f"short-{T}", ExternalId=external, Tags=NAMESPACE_TAGS)
        short = as_session(answer)
        lasts = answer["Credentials"]["Expiration"].timestamp() - started
        check("9 with lifetime 2, Expiration is 2 s away", 0 <= lasts <= 4, lasts)
        allowed("9 the short session acts at once", lambda: client("sts", short).get_caller_identity())
        time.sleep(3)
        answered("9 after 3 s, STS (query): 403 ExpiredToken", lambda: client("sts", short).get_caller_identity(), "ExpiredToken", 403)
        answered("9 after 3 s, IAM (query): 403 ExpiredToken", lambda: client("iam", short).get_role(RoleName=role_name), "ExpiredToken", 403)
        answered("9 after 3 s, SQS (JSON): 400 ExpiredTokenException",
                 lambda: client("sqs", short).get_queue_url(QueueName=f"{p}-q"), "ExpiredTokenException", 400)
        answered("9 after 3 s, S3: 400 ExpiredToken", lambda: client("s3", short).list_objects_v2(Bucket=bucket), "ExpiredToken", 400)
        answered("9 after 3 s, Lambda (REST-JSON): 403 ExpiredTokenException",
                 lambda: client("lambda", short).list_functions(), "ExpiredTokenException", 403)
        answered("9 after 3 s, DynamoDB (JSON): 400 ExpiredTokenException",
                 lambda: client("dynamodb", short).list_tables(), "ExpiredTokenException", 400)
        allowed("9 a session made before the knob still acts", lambda: client("sts", session_a).get_caller_identity())
        kept = [e for e in harness("GET", "sts/expired") if e.get("accessKeyId") == short[0]]
        check("9 each refusal is kept at /_sluice/sts/expired with the session's account",
              len(kept) == 6 and all(e["account"] == ACCOUNT_A for e in kept)
              and {e["action"] for e in kept} >= {"sts:GetCallerIdentity", "iam:GetRole", "sqs:GetQueueUrl", "dynamodb:ListTables"}
              and all(e["at"] >= e["expiredAt"] for e in kept), kept)
        check("9 … and among the denials", any(d["verdict"] == "ExpiredToken" and d["principal"].endswith(f"/short-{T}")
                                                for d in harness("GET", "denials")))
    finally:
        harness("POST", "sts/lifetime?seconds=0")
    started = time.time()
    answer = sts_o.assume_role(RoleArn=role, RoleSessionName=f"again-{T}", ExternalId=external, DurationSeconds=900)
    lasts = answer["Credentials"]["Expiration"].timestamp() - started
    check("9 lifetime 0 restores DurationSeconds (900)", 890 <= lasts <= 910, lasts)
    check("9 a bad lifetime is refused", harness("POST", "sts/lifetime?seconds=-1").get("status") == 400)


def main() -> None:
    started = time.time()
    for section in (conditions, roles_and_boundaries, accounts, operator, account_roles):
        try:
            section()
        except Exception as e:  # a step that could not even run fails its section
            traceback.print_exc()
            check(f"{section.__name__} ran to its end", False, repr(e))
    print(f"\n{passes} passed, {len(failures)} failed in {time.time() - started:.1f} s")
    if failures:
        print("failed:")
        for failure in failures:
            print(f"  {failure}")
        sys.exit(1)


if __name__ == "__main__":
    main()
