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
pipeline boundary of config/iam.
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


def main() -> None:
    started = time.time()
    for section in (conditions, roles_and_boundaries, accounts, operator):
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
