"""Credentials of the roles AWS services act under.

A service (Lambda running a function, EventBridge starting a workflow,
Scheduler invoking a target) may assume a role only when the role's trust
policy names that service. moto never checks, so this module does before it
hands out credentials, and the harness fails the delivery as AWS would.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import unquote

from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

from .context import Credentials


class RoleError(Exception):
    """The service may not use the role (missing, or not trusted)."""


_cache: dict[tuple[str, str], tuple[float, Credentials]] = {}
_lock = threading.Lock()
_SESSION_SECONDS = 3600


def _account(role_arn: str) -> str:
    parts = role_arn.split(":")
    if len(parts) < 6 or parts[2] != "iam" or not parts[5].startswith("role/"):
        raise RoleError(f"{role_arn!r} is not an IAM role ARN")
    return parts[4]


def _trusts(document: str | dict, service: str) -> bool:
    if isinstance(document, str):
        document = json.loads(unquote(document))
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions):
            continue
        principal = statement.get("Principal", {})
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = [services] if isinstance(services, str) else services
        if service in services:
            return True
    return False


def assume(role_arn: str, service: str, region: str) -> Credentials:
    """Credentials for `role_arn` as `service` (e.g. lambda.amazonaws.com)."""
    key = (role_arn, service)
    with _lock:
        cached = _cache.get(key)
        if cached and cached[0] > time.time() + 300:
            return cached[1]
    account = _account(role_arn)
    iam = iam_backends[account]["aws"]
    try:
        role = iam.get_role_by_arn(role_arn)
    except Exception as e:  # moto raises its own NotFound types
        raise RoleError(f"role {role_arn} does not exist") from e
    if not _trusts(role.assume_role_policy_document, service):
        raise RoleError(f"role {role_arn} does not trust {service} to assume it")
    session = service.split(".")[0] + "-" + str(int(time.time()))
    assumed = sts_backends[account]["aws"].assume_role(
        region_name=region,
        role_session_name=session,
        role_arn=role_arn,
        policy=None,
        duration=_SESSION_SECONDS,
        external_id=None,
    )
    creds = Credentials(assumed.access_key_id, assumed.secret_access_key, assumed.session_token)
    with _lock:
        _cache[key] = (time.time() + _SESSION_SECONDS, creds)
    return creds
