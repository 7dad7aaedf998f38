"""The places where moto answers unlike AWS, mended. Each names the AWS
behaviour it restores (one, the first, only moto's speed)."""

from __future__ import annotations

import json
import os
import types
import uuid
from urllib.parse import quote_plus
from xml.etree import ElementTree

from moto.awslambda import models as lambda_models
from moto.kinesis.models import kinesis_backends
from moto.s3 import models as s3_models
from moto.s3 import notifications
from moto.s3 import responses as s3_responses
from moto.s3.exceptions import InvalidArgumentError
from moto.sqs.models import sqs_backends

from .context import Emulator, log
from .invoke import AsyncInvoker, function, invoke_function
from .sources import Pollers
from .targets import patch_rules, patch_s3_to_default_bus, resource_policy_allows


def s3_eventbridge_notification() -> None:
    """GetBucketNotificationConfiguration: AWS returns
    <EventBridgeConfiguration/> when a bucket sends its events to EventBridge;
    moto 5.2.5 stores it but leaves it out, so a bucket that starts a
    workflow would read as drifted on every resync."""
    original = s3_responses.S3Response.get_bucket_notification
    namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

    def get_bucket_notification(self):  # type: ignore[no-untyped-def]
        result = original(self)
        configuration = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if configuration is None or configuration.event_bridge is None:
            return result
        status, headers, body = result
        text = body.decode() if isinstance(body, bytes) else body
        root = ElementTree.fromstring(text)
        # An otherwise empty configuration comes back under another root.
        if not root.tag.endswith("NotificationConfiguration"):
            root = ElementTree.Element(f"{{{namespace}}}NotificationConfiguration")
        if root.find(f"{{{namespace}}}EventBridgeConfiguration") is None:
            ElementTree.SubElement(root, f"{{{namespace}}}EventBridgeConfiguration")
        ElementTree.register_namespace("", namespace)
        text = ElementTree.tostring(root, encoding="unicode")
        headers = {k: v for k, v in (headers or {}).items() if k.lower() != "content-length"}
        return status, headers, text

    s3_responses.S3Response.get_bucket_notification = get_bucket_notification


def _s3_may_invoke(fn, bucket) -> bool:  # type: ignore[no-untyped-def]
    return resource_policy_allows(
        {"Statement": fn.policy.statements}, "s3.amazonaws.com", "lambda:InvokeFunction", fn.function_arn, bucket.arn, bucket.account_id
    )


def s3_notification_destinations() -> None:
    """PutBucketNotificationConfiguration: AWS refuses a function or queue
    destination that does not let s3.amazonaws.com invoke or send to it for
    this bucket ("Unable to validate the following destination
    configurations"); moto stored anything."""
    original = s3_models.S3Backend.put_bucket_notification_configuration

    def put(self, bucket_name, notification_config):  # type: ignore[no-untyped-def]
        bucket = self.get_bucket(bucket_name)
        previous = bucket.notification_configuration
        original(self, bucket_name, notification_config)
        configuration = bucket.notification_configuration
        refused = []
        for n in configuration.cloud_function if configuration else []:
            parts = n.arn.split(":")
            fn = function(n.arn, parts[3], parts[4])
            if fn is None or not _s3_may_invoke(fn, bucket):
                refused.append(n.arn)
        for n in configuration.queue if configuration else []:
            parts = n.arn.split(":")
            queue = sqs_backends[parts[4]][parts[3]].queues.get(parts[5])
            if queue is None or not resource_policy_allows(
                queue.policy, "s3.amazonaws.com", "sqs:SendMessage", n.arn, bucket.arn, bucket.account_id
            ):
                refused.append(n.arn)
        if refused:
            bucket.notification_configuration = previous
            raise InvalidArgumentError(
                "Unable to validate the following destination configurations", ", ".join(refused), ""
            )

    s3_models.S3Backend.put_bucket_notification_configuration = put


def s3_invokes_asynchronously() -> None:
    """S3 invokes a function asynchronously (Lambda's queue, retries,
    destinations); moto ran it inside the PutObject that caused it."""

    def invoke(account_id, event_body, fn_arn, region_name) -> None:  # type: ignore[no-untyped-def]
        fn = function(fn_arn, region_name, account_id)
        if fn is None:
            log.warning("s3 notification to %s dropped: no such function", fn_arn)
            return
        AsyncInvoker.submit(fn.function_arn, fn.region, fn.account_id, json.dumps(event_body).encode())

    notifications._invoke_awslambda = invoke


def lambda_runs_code() -> None:
    """Invoke runs the deployed code (moto needs a container engine for
    that) with the invocation type's semantics."""
    lambda_models.LambdaFunction.invoke = invoke_function


def _image_repository(uri: str) -> str:
    """`registry/repo` of an image URI, without its tag or digest."""
    name = uri.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def image_functions_report_their_digest() -> None:
    """A function of `PackageType: Image`: AWS resolves the image to its
    digest and reports it as the function's CodeSha256 (the hex after
    `sha256:`, what GetFunctionConfiguration gives to find the digest) and
    as GetFunction's `Code.ResolvedImageUri` (`registry/repo@sha256:HEX`).
    moto, not looking images up (MOTO_LAMBDA_STUB_ECR, its default), made
    CodeSha256 the SHA-256 of the URI's text, and ResolvedImageUri from the
    URI cut at its first `:` (`repo@sha256@sha256:...` for a pinned one).
    A URI pinned by digest now reports that digest; a tag alone cannot be
    resolved here (no registry) and keeps moto's stand-in."""
    original_set = lambda_models.LambdaFunction._set_function_code
    original_get = lambda_models.LambdaFunction.get_code

    def set_function_code(self, updated_spec):  # type: ignore[no-untyped-def]
        original_set(self, updated_spec)
        uri = updated_spec.get("ImageUri") if isinstance(updated_spec, dict) else None
        if uri and "@sha256:" in uri:
            self.code_sha_256 = uri.rsplit("@sha256:", 1)[1]
            self.code_size = 0

    def get_code(self):  # type: ignore[no-untyped-def]
        response = original_get(self)
        uri = self.code.get("ImageUri")
        if uri and "Code" in response:
            response["Code"]["ResolvedImageUri"] = f"{_image_repository(uri)}@sha256:{self.code_sha_256}"
        return response

    lambda_models.LambdaFunction._set_function_code = set_function_code
    lambda_models.LambdaFunction.get_code = get_code


def event_source_mappings_poll() -> None:
    """Lambda polls SQS and Kinesis (moto fired SQS mappings inside
    SendMessage and never read Kinesis); see sources.py."""
    original = lambda_models.LambdaBackend.create_event_source_mapping

    def create(self, spec):  # type: ignore[no-untyped-def]
        esm = original(self, spec)
        service = esm.event_source_arn.split(":")[2]
        arn = esm.event_source_arn.split(":")
        if service == "sqs":
            queue = sqs_backends[arn[4]][arn[3]].queues.get(arn[5])
            if queue is not None:
                queue.lambda_event_source_mappings.pop(esm.function_arn, None)
        elif service == "kinesis":
            for stream in kinesis_backends[arn[4]][arn[3]].streams.values():
                stream.lambda_event_source_mappings.pop(esm.event_source_arn, None)
        Pollers.created(esm)
        return esm

    lambda_models.LambdaBackend.create_event_source_mapping = create


def service_lookup_is_cached() -> None:
    """Not an AWS behaviour but the emulator's speed: moto's server lists
    its own package directory (a readdir and a stat per service) on every
    request to find which service a host names, a fifth of the time it
    spends on an S3 GetObject here. The list cannot change while it runs."""
    import functools

    from moto import backends

    backends.list_of_moto_modules = functools.cache(
        lambda listed=backends.list_of_moto_modules: tuple(listed())
    )


def executions_get_names() -> None:
    """StartExecution without a name: AWS names the execution with a UUID;
    moto's interpreter named every one "None", so a second start failed
    with ExecutionAlreadyExists."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    def start(self, state_machine_arn, name=None, execution_input=None, trace_header=None):  # type: ignore[no-untyped-def]
        return original(self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header)

    StepFunctionsParserBackend.start_execution = start


def workflow_tasks_reach_the_emulator() -> None:
    """A workflow's tasks call the services they name (Lambda Invoke,
    SQS, DynamoDB...) as AWS's Step Functions does; moto's interpreter sends
    those calls to http://localhost:$MOTO_PORT, where nothing listens when
    the emulator serves another address (localenv's cluster mode: the host's
    end of the node network). Send them where the emulator is."""
    from moto.stepfunctions.parser.asl.utils import boto_client

    boto3 = boto_client.boto3

    def client(*args, **kwargs):  # type: ignore[no-untyped-def]
        if "endpoint_url" in kwargs:
            kwargs["endpoint_url"] = Emulator.endpoint
        return boto3.client(*args, **kwargs)

    boto_client.boto3 = types.SimpleNamespace(client=client)


def s3_event_keys_keep_slashes() -> None:
    """S3 event records URL-encode the key as a form value with `/` kept
    ("a folder/b c.json" → "a+folder/b+c.json"); moto encoded the slashes
    too."""
    original = notifications._get_s3_event

    def event(event_name, bucket, key, notification_id):  # type: ignore[no-untyped-def]
        body = original(event_name, bucket, key, notification_id)
        for record in body["Records"]:
            record["s3"]["object"]["key"] = quote_plus(key.name, safe="/")
        return body

    notifications._get_s3_event = event


def state_machines_act_as_their_role() -> None:
    """Step Functions calls a task's service with the state machine's role
    (or the state's Credentials role), assumed as states.amazonaws.com;
    moto's interpreter called with fixed dummy keys."""
    import importlib
    import sys

    import boto3
    from botocore.config import Config

    from moto.stepfunctions.parser.asl.utils import boto_client as module

    from .context import Emulator
    from .roles import assume

    def boto_client_for(region, service, state_credentials=None):  # type: ignore[no-untyped-def]
        role = getattr(state_credentials, "role_arn", None)
        if not role:
            return original(region, service, state_credentials)
        creds = assume(role, "states.amazonaws.com", region)
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=Emulator.endpoint,
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            aws_session_token=creds.session_token,
            config=Config(parameter_validation=False, retries={"max_attempts": 0, "total_max_attempts": 1}),
        )

    original = module.boto_client_for
    base = "moto.stepfunctions.parser.asl.component.state.exec.state_task"
    for name in ("lambda_eval_utils", "service.state_task_service_sqs", "service.state_task_service_sns",
                 "service.state_task_service_events", "service.state_task_service_dynamodb",
                 "service.state_task_service_sfn", "service.state_task_service_aws_sdk"):
        importlib.import_module(f"{base}.{name}")
    for name, loaded in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and getattr(loaded, "boto_client_for", None) is original:
            loaded.boto_client_for = boto_client_for


_SOURCE_ACTIONS = {
    "sqs": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
    "kinesis": ["kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:DescribeStream", "kinesis:ListShards"],
}
_DESTINATION_ACTIONS = {
    "sqs": "sqs:SendMessage",
    "sns": "sns:Publish",
    "lambda": "lambda:InvokeFunction",
    "events": "events:PutEvents",
}


def _refuse_unless_role_may(role: str, action: str, resource: str, message: str) -> None:
    from moto.awslambda.exceptions import InvalidParameterValueException

    from .iam import role_may

    if not role_may(role, action, resource):
        raise InvalidParameterValueException(message)


def _check_destinations(role: str, config: dict | None) -> None:
    for outcome in ("OnSuccess", "OnFailure"):
        arn = ((config or {}).get(outcome) or {}).get("Destination")
        if not arn:
            continue
        action = _DESTINATION_ACTIONS.get(arn.split(":")[2])
        if action:
            _refuse_unless_role_may(
                role,
                action,
                arn,
                f"The function execution role does not have permissions to call {action.split(':')[1]} on {arn}",
            )


def lambda_checks_the_execution_role() -> None:
    """CreateEventSourceMapping and PutFunctionEventInvokeConfig refuse an
    execution role that may not read the source or send to a destination
    (AWS checks the role's policies at that call); moto accepted them."""
    create = lambda_models.LambdaBackend.create_event_source_mapping
    update = lambda_models.LambdaBackend.update_event_source_mapping
    put_config = lambda_models.LambdaBackend.put_function_event_invoke_config

    def checked_create(self, spec):  # type: ignore[no-untyped-def]
        fn = self._lambdas.get_function_by_name_or_arn_with_qualifier(spec.get("FunctionName", ""))
        source = spec.get("EventSourceArn", "")
        for action in _SOURCE_ACTIONS.get(source.split(":")[2] if source.count(":") >= 2 else "", []):
            _refuse_unless_role_may(
                fn.role,
                action,
                source,
                f"The provided execution role does not have permissions to call {action.split(':')[1]} on {source}",
            )
        _check_destinations(fn.role, spec.get("DestinationConfig"))
        return create(self, spec)

    def checked_update(self, uuid, spec):  # type: ignore[no-untyped-def]
        esm = self.get_event_source_mapping(uuid)
        if esm is not None and spec.get("DestinationConfig"):
            fn = self._lambdas.get_function_by_name_or_arn_with_qualifier(esm.function_arn)
            _check_destinations(fn.role, spec.get("DestinationConfig"))
        return update(self, uuid, spec)

    def checked_put(self, function_name, config):  # type: ignore[no-untyped-def]
        fn = self.get_function(function_name)
        _check_destinations(fn.role, config.get("DestinationConfig"))
        return put_config(self, function_name, config)

    lambda_models.LambdaBackend.create_event_source_mapping = checked_create
    lambda_models.LambdaBackend.update_event_source_mapping = checked_update
    lambda_models.LambdaBackend.put_function_event_invoke_config = checked_put


def iam_boundaries_must_exist() -> None:
    """CreateRole and PutRolePermissionsBoundary: AWS refuses a boundary
    naming no existing managed policy (NoSuchEntity, "Scope ARN: … does not
    exist or is not attachable"); moto stored any well-formed ARN, and a
    role bounded by nothing."""
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import IAMBackend

    create_role = IAMBackend.create_role
    put_boundary = IAMBackend.put_role_permissions_boundary

    def check(backend, boundary) -> None:  # type: ignore[no-untyped-def]
        if not boundary or not backend.policy_arn_regex.match(boundary):
            return  # none, or malformed: moto's own check answers
        try:
            backend.get_policy(boundary)
        except Exception:
            raise NotFoundException(f"Scope ARN: {boundary} does not exist or is not attachable.") from None

    def checked_create(self, role_name, assume_role_policy_document, path, permissions_boundary, *args, **kwargs):  # type: ignore[no-untyped-def]
        check(self, permissions_boundary)
        return create_role(self, role_name, assume_role_policy_document, path, permissions_boundary, *args, **kwargs)

    def checked_put(self, role_name, permissions_boundary):  # type: ignore[no-untyped-def]
        check(self, permissions_boundary)
        return put_boundary(self, role_name, permissions_boundary)

    IAMBackend.create_role = checked_create
    IAMBackend.put_role_permissions_boundary = checked_put


def queue_urls_name_their_account() -> None:
    """SQS: a queue URL names its account (…/ACCOUNT/NAME) and AWS acts on
    that account's queue (when its policy lets the caller); moto looked the
    name up in the caller's own account, so another account's URL reached
    the caller's queue of that name, or none."""
    from moto.sqs import responses as sqs_responses

    from .iam import queue_owner

    def sqs_backend(self):  # type: ignore[no-untyped-def]
        account = self.current_account
        try:
            url = self._get_param("QueueUrl")
        except Exception:
            url = None
        if isinstance(url, str) and url:
            account = queue_owner(url, account)[0]
        else:
            try:
                owner = self._get_param("QueueOwnerAWSAccountId")
            except Exception:
                owner = None
            if isinstance(owner, str) and owner.isdigit() and len(owner) == 12:
                account = owner
        return sqs_backends[account][self.region]

    sqs_responses.SQSResponse.sqs_backend = property(sqs_backend)


def key_arns_name_their_account() -> None:
    """KMS: a key ARN names its account, and AWS uses that account's key
    (when its key policy lets the caller); moto looked the key up in the
    caller's own account."""
    from moto.kms import responses as kms_responses
    from moto.kms.models import kms_backends

    def kms_backend(self):  # type: ignore[no-untyped-def]
        account = self.current_account
        try:
            key = self._get_param("KeyId")
        except Exception:
            key = None
        if isinstance(key, str) and key.startswith("arn:") and key.count(":") >= 5:
            named = key.split(":")[4]
            if named.isdigit() and len(named) == 12:
                account = named
        return kms_backends[account][self.region]

    kms_responses.KmsResponse.kms_backend = property(kms_backend)


def lambda_code_honours_object_versions() -> None:
    """CreateFunction and UpdateFunctionCode with `S3ObjectVersion`: AWS
    copies that version of the object; moto ignored the version and copied
    whatever the key held last, so a function pinned to an older version
    ran the newest code (and an out-of-band update "back" to a version was
    a no-op). A version that does not exist is refused as AWS refuses it."""
    from moto.s3.models import s3_backends

    original_set = lambda_models.LambdaFunction._set_function_code

    def set_function_code(self, updated_spec):  # type: ignore[no-untyped-def]
        original_set(self, updated_spec)
        if not isinstance(updated_spec, dict) or updated_spec.get("DryRun"):
            return
        version = updated_spec.get("S3ObjectVersion")
        if not version or "S3Bucket" not in updated_spec or "S3Key" not in updated_spec:
            return
        key = None
        try:
            key = s3_backends[self.account_id][self.partition].get_object(
                updated_spec["S3Bucket"], updated_spec["S3Key"], version_id=version
            )
        except Exception:
            key = None
        if key is None:
            raise lambda_models.InvalidParameterValueException(
                "Error occurred while GetObject. S3 Error Code: NoSuchVersion. S3 Error Message: "
                "The specified version does not exist."
            )
        (
            self.code_bytes,
            self.code_size,
            self.code_sha_256,
            self.code_digest,
        ) = lambda_models._s3_content(key)

    lambda_models.LambdaFunction._set_function_code = set_function_code


def sqs_queue_table_is_locked() -> None:
    """SQS: a queue with a RedrivePolicy looks its dead-letter queue up by
    iterating the region's queue table (moto's Queue._setup_dlq), and a
    CreateQueue or DeleteQueue on another thread changed that table during
    the iteration: "dictionary changed size during iteration", answered as
    HTTP 500 (seen once in the fleet test, whose operator is restarted
    mid-convergence). AWS serves these concurrently; here the calls that
    change the table or iterate it take one lock (list_queues materialises
    its list inside, so returning it is safe)."""
    import threading

    from moto.sqs.models import SQSBackend

    lock = threading.RLock()

    def locked(original):  # type: ignore[no-untyped-def]
        def call(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            with lock:
                return original(self, *args, **kwargs)

        return call

    for name in (
        "create_queue",
        "delete_queue",
        "set_queue_attributes",
        "list_queues",
        "list_dead_letter_source_queues",
    ):
        setattr(SQSBackend, name, locked(getattr(SQSBackend, name)))


def buckets_take_their_creation_tags() -> None:
    """S3 CreateBucket with `CreateBucketConfiguration.Tags`: AWS makes the
    bucket with those tags, so it is never seen untagged. moto dropped them,
    and Sluice's PutBucketTagging right after is a second call: an operator
    killed between the two left a bucket without ownership tags, which the
    next leader rightly refused to adopt (OwnershipConflict, seen in ha.rs's
    SIGKILL test). The tags now come with the bucket."""
    import threading

    import xmltodict

    pending = threading.local()
    original_put = s3_responses.S3Response._bucket_response_put
    original_create = s3_models.S3Backend.create_bucket

    def bucket_response_put(self, request, bucket_name, querystring):  # type: ignore[no-untyped-def]
        tags: dict[str, str] = {}
        if not querystring and self.body:
            try:
                config = xmltodict.parse(self.body).get("CreateBucketConfiguration") or {}
                tag_list = (config.get("Tags") or {}).get("Tag") or []
            except Exception:
                tag_list = []
            if isinstance(tag_list, dict):
                tag_list = [tag_list]
            tags = {t["Key"]: t.get("Value") or "" for t in tag_list if isinstance(t, dict) and "Key" in t}
        pending.tags = tags
        try:
            return original_put(self, request, bucket_name, querystring)
        finally:
            pending.tags = {}

    def create_bucket(self, bucket_name, region_name, *args, **kwargs):  # type: ignore[no-untyped-def]
        bucket = original_create(self, bucket_name, region_name, *args, **kwargs)
        tags = getattr(pending, "tags", None)
        if tags:
            self.put_bucket_tagging(bucket_name, tags)
        return bucket

    s3_responses.S3Response._bucket_response_put = bucket_response_put
    s3_models.S3Backend.create_bucket = create_bucket


# AWS's default limit of concurrent executions of an account and region.
DEFAULT_CONCURRENCY_QUOTA = "1000"


def lambda_reports_account_settings() -> None:
    """GetAccountSettings: moto 5.2 does not serve it. AWS reports the
    account's limit of concurrent executions and how many no function
    reserves; PutFunctionConcurrency refuses a reservation that leaves
    fewer than 100 unreserved. moto enforces that only when
    MOTO_LAMBDA_CONCURRENCY_QUOTA is set, so it is set here to AWS's
    default (1,000) unless the environment says otherwise."""
    from moto.awslambda import urls as lambda_urls
    from moto.awslambda.responses import LambdaResponse

    os.environ.setdefault("MOTO_LAMBDA_CONCURRENCY_QUOTA", DEFAULT_CONCURRENCY_QUOTA)
    lambda_urls.url_paths[r"{0}/(?P<api_version>[^/]+)/account-settings/?$"] = LambdaResponse.dispatch

    def get_account_settings(self):  # type: ignore[no-untyped-def]
        quota = int(os.environ["MOTO_LAMBDA_CONCURRENCY_QUOTA"])
        functions = list(self.backend.list_functions())
        reserved = sum(int(f.reserved_concurrency) for f in functions if f.reserved_concurrency)
        body = {
            "AccountLimit": {
                "TotalCodeSize": 80 * 1024**3,
                "CodeSizeUnzipped": 250 * 1024**2,
                "CodeSizeZipped": 50 * 1024**2,
                "ConcurrentExecutions": quota,
                "UnreservedConcurrentExecutions": quota - reserved,
            },
            "AccountUsage": {
                "TotalCodeSize": sum(int(getattr(f, "code_size", 0) or 0) for f in functions),
                "FunctionCount": len(functions),
            },
        }
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    LambdaResponse.get_account_settings = get_account_settings


def sts_sessions_as_aws() -> None:
    """AssumeRole validates its input and the role's limits as AWS does,
    and its sessions end (sts.py); moto accepted any value and its
    credentials never expired."""
    from . import sts

    sts.install()


def apply_all() -> None:
    sts_sessions_as_aws()
    lambda_reports_account_settings()
    service_lookup_is_cached()
    iam_boundaries_must_exist()
    queue_urls_name_their_account()
    sqs_queue_table_is_locked()
    key_arns_name_their_account()
    lambda_checks_the_execution_role()
    state_machines_act_as_their_role()
    executions_get_names()
    workflow_tasks_reach_the_emulator()
    s3_event_keys_keep_slashes()
    buckets_take_their_creation_tags()
    s3_eventbridge_notification()
    s3_notification_destinations()
    s3_invokes_asynchronously()
    lambda_runs_code()
    image_functions_report_their_digest()
    lambda_code_honours_object_versions()
    event_source_mappings_poll()
    patch_rules()
    patch_s3_to_default_bus()
