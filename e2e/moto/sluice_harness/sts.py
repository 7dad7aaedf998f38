"""STS sessions as AWS issues and ends them.

moto's AssumeRole checks only that RoleSessionName is at most 64
characters: it accepts any other name, external id, duration and session
tags, and the credentials it hands out never expire. Here:

- AssumeRole's input is validated as AWS validates it, with AWS's 400
  `ValidationError` (query protocol): RoleSessionName 2–64 characters of
  `[\\w+=,.@-]`, ExternalId 2–1224 of `[\\w+=,./@:-]`, DurationSeconds
  900–43200, at most 50 session tags (keys 1–128 and values 0–256
  characters of letters, digits, spaces and `_.:/=+-@`), at most 50
  TransitiveTagKeys. Those constraints are the API's own, so they are
  checked before IAM authorizes (`iam.py` calls `validate` first when it
  enforces); what depends on the role (DurationSeconds above its
  MaxSessionDuration, default 3600, or above one hour for a session that
  assumes a role, "role chaining") is checked after, once the caller may
  know the role.
- Credentials of a session an AssumeRole request made expire as AWS's do:
  at the Expiration the answer names (now + DurationSeconds), or sooner
  when a test shortens every session from then on
  (`POST /_sluice/sts/lifetime?seconds=N`). A request signed with an
  expired session's key is refused before moto sees it
  (`control.middleware`, `expired`), so the code that renews credentials
  is exercised in seconds instead of an hour.

Sessions the harness makes as an AWS service (a function's execution role,
a rule's or a schedule's role: `roles.assume`) are not requests to STS:
they are neither shortened nor ended, as AWS's services renew their own
credentials.
"""

from __future__ import annotations

import datetime
import re
import threading
import time
import unicodedata
import uuid
from dataclasses import dataclass
from xml.sax.saxutils import escape

from werkzeug.exceptions import HTTPException

_ROLE_SESSION_NAME = re.compile(r"[\w+=,.@-]*", re.ASCII)
_EXTERNAL_ID = re.compile(r"[\w+=,./@:-]*", re.ASCII)
_MIN_DURATION, _MAX_DURATION = 900, 43200
_MAX_TAGS = 50
_CHAINED_MAX_DURATION = 3600


class ValidationError(HTTPException):
    """A 400 `ValidationError` as STS answers it (query protocol XML).

    An HTTPException, so that moto answers it both from the IAM check
    (which runs before the action and passes only HTTP errors through) and
    from the action itself."""

    code = 400

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message
        self.description = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<Error><Type>Sender</Type><Code>ValidationError</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        )

    def get_headers(self, *args, **kwargs) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
        return [("Content-Type", "text/xml")]

    def get_body(self, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
        return self.description or ""


def session_tags(params: dict[str, str]) -> tuple[list[tuple[str, str]], list[str]]:
    """The session tags (key, value) and TransitiveTagKeys of an AssumeRole
    request's flat query parameters (`Tags.member.N.Key`, …), in order."""
    tags: dict[int, dict[str, str]] = {}
    transitive: dict[int, str] = {}
    for name, value in params.items():
        parts = name.split(".")
        if len(parts) == 4 and parts[0] == "Tags" and parts[1] == "member" and parts[2].isdigit():
            tags.setdefault(int(parts[2]), {})[parts[3]] = value
        elif len(parts) == 3 and parts[0] == "TransitiveTagKeys" and parts[1] == "member" and parts[2].isdigit():
            transitive[int(parts[2])] = value
    pairs = [(tags[n].get("Key", ""), tags[n].get("Value", "")) for n in sorted(tags)]
    return pairs, [transitive[n] for n in sorted(transitive)]


def _tag_text(text: str) -> bool:
    """AWS's `[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*`: letters, separators, numbers
    and those signs."""
    return all(unicodedata.category(c)[0] in "LZN" or c in "_.:/=+-@" for c in text)


def _quoted(value: object) -> str:
    text = str(value)
    return text if len(text) <= 100 else text[:100] + "…"


def _length(errors: list[str], value: str, at: str, low: int, high: int) -> None:
    if len(value) < low:
        errors.append(f"Value '{_quoted(value)}' at '{at}' failed to satisfy constraint: Member must have length greater than or equal to {low}")
    elif len(value) > high:
        errors.append(f"Value '{_quoted(value)}' at '{at}' failed to satisfy constraint: Member must have length less than or equal to {high}")


def validate(params: dict[str, str]) -> None:
    """Raises ValidationError when an AssumeRole request's parameters break
    the API's constraints (every broken one named, as AWS does)."""
    errors: list[str] = []
    name = params.get("RoleSessionName")
    if name is not None:
        _length(errors, name, "roleSessionName", 2, 64)
        if not _ROLE_SESSION_NAME.fullmatch(name):
            errors.append(f"Value '{_quoted(name)}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*")
    external = params.get("ExternalId")
    if external is not None:
        _length(errors, external, "externalId", 2, 1224)
        if not _EXTERNAL_ID.fullmatch(external):
            errors.append(f"Value '{_quoted(external)}' at 'externalId' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,./@:-]*")
    duration = params.get("DurationSeconds")
    if duration is not None:
        try:
            seconds = int(duration)
        except ValueError:
            raise ValidationError(f"Value '{_quoted(duration)}' for DurationSeconds is not a valid integer") from None
        if seconds < _MIN_DURATION:
            errors.append(f"Value '{seconds}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to {_MIN_DURATION}")
        elif seconds > _MAX_DURATION:
            errors.append(f"Value '{seconds}' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to {_MAX_DURATION}")
    tags, transitive = session_tags(params)
    if len(tags) > _MAX_TAGS:
        errors.append(f"Value '[{len(tags)} tags]' at 'tags' failed to satisfy constraint: Member must have length less than or equal to {_MAX_TAGS}")
    for n, (key, value) in enumerate(tags, 1):
        _length(errors, key, f"tags.{n}.member.key", 1, 128)
        if not _tag_text(key):
            errors.append(f"Value '{_quoted(key)}' at 'tags.{n}.member.key' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]+")
        _length(errors, value, f"tags.{n}.member.value", 0, 256)
        if not _tag_text(value):
            errors.append(f"Value '{_quoted(value)}' at 'tags.{n}.member.value' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]*")
    if len(transitive) > _MAX_TAGS:
        errors.append(f"Value '[{len(transitive)} keys]' at 'transitiveTagKeys' failed to satisfy constraint: Member must have length less than or equal to {_MAX_TAGS}")
    for n, key in enumerate(transitive, 1):
        _length(errors, key, f"transitiveTagKeys.{n}.member", 1, 128)
    if errors:
        count = f"{len(errors)} validation error{'s' if len(errors) > 1 else ''} detected: "
        raise ValidationError(count + "; ".join(errors))


# -- sessions and their end ----------------------------------------------------


@dataclass(frozen=True)
class Session:
    """A session an AssumeRole request made: its key, the role's account
    (where moto counts the key), its ARN and when it ends (epoch seconds)."""

    access_key_id: str
    account: str
    arn: str
    expires: float


_sessions: dict[str, Session] = {}
_lock = threading.Lock()
# Seconds every session made from now on lasts; 0: its DurationSeconds.
_lifetime = 0


def set_lifetime(seconds: int) -> None:
    """Every AssumeRole from now on answers credentials that end `seconds`
    from their making (0: after their DurationSeconds, as AWS)."""
    global _lifetime
    if seconds < 0:
        raise ValueError(f"not a lifetime: {seconds}")
    _lifetime = seconds


def lifetime() -> int:
    return _lifetime


def session_of(access_key_id: str) -> Session | None:
    with _lock:
        return _sessions.get(access_key_id)


def expired(access_key_id: str, now: float | None = None) -> Session | None:
    """The session of the key if it has ended, else None (a user's key, a
    session still valid, or one the harness made as a service)."""
    session = session_of(access_key_id)
    if session is None:
        return None
    return session if (now if now is not None else time.time()) >= session.expires else None


def _flat(querystring: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {k: (v[0] if isinstance(v, list) and v else v) for k, v in querystring.items()}


def _caller_is_session(response) -> bool:  # type: ignore[no-untyped-def]
    """Whether the AssumeRole request is signed by a role's session (then
    AWS limits the new session to one hour: role chaining)."""
    from moto.sts.models import sts_backends

    headers = response.headers
    if not headers.get("X-Amz-Security-Token"):
        return False
    authorization = headers.get("Authorization", "")
    key = authorization.partition("Credential=")[2].partition("/")[0]
    if session_of(key) is not None:
        return True
    for _, account in list(sts_backends.items()):
        if any(role.access_key_id == key for role in account["aws"].assumed_roles):
            return True
    return False


def install() -> None:
    """AssumeRole validates its input and the role's limits, and every
    session it makes is kept with its end (shortened by `set_lifetime`)."""
    from moto.core.utils import utcnow
    from moto.iam.models import iam_backends
    from moto.sts.responses import TokenResponse

    original = TokenResponse.assume_role

    def assume_role(self):  # type: ignore[no-untyped-def]
        params = _flat(self.querystring)
        validate(params)
        role_arn = params.get("RoleArn") or ""
        duration = int(params.get("DurationSeconds") or 3600)
        try:
            role = iam_backends[role_arn.split(":")[4]]["aws"].get_role_by_arn(role_arn)
        except Exception:
            role = None
        if role is not None and duration > int(role.max_session_duration or 3600):
            raise ValidationError("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
        if duration > _CHAINED_MAX_DURATION and _caller_is_session(self):
            raise ValidationError("The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.")
        result = original(self)
        assumed = result.result["Credentials"]
        if _lifetime:
            assumed.expiration = utcnow() + datetime.timedelta(seconds=_lifetime)
        # moto's expiration is naive UTC.
        expires = assumed.expiration.replace(tzinfo=datetime.timezone.utc).timestamp()
        with _lock:
            _sessions[assumed.access_key_id] = Session(assumed.access_key_id, assumed.account_id, assumed.arn, expires)
        return result

    TokenResponse.assume_role = assume_role


# -- the refusal ---------------------------------------------------------------


def signing_key(environ) -> tuple[str, str] | None:  # type: ignore[no-untyped-def]
    """(access key id, service) a request is signed with: from its SigV4
    Authorization header, or a presigned URL's X-Amz-Credential."""
    from urllib.parse import parse_qs

    authorization = environ.get("HTTP_AUTHORIZATION", "")
    credential = authorization.partition("Credential=")[2].partition(",")[0].strip()
    if not credential:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        credential = (query.get("X-Amz-Credential") or [""])[0]
    parts = credential.split("/")
    if len(parts) < 4 or not parts[0]:
        return None
    return parts[0], parts[3]
