"""The harness's own endpoints, beside moto's, under /_sluice/.

  GET  /_sluice/invocations[?function=NAME]  recent invocations (JSON list)
  GET  /_sluice/pending                      async events queued or running
  GET  /_sluice/denials                      the requests IAM refused (JSON list)
  POST /_sluice/iam/operator?prefix=P        credentials of an IAM user holding
                                             exactly config/iam/operator-policy.json
                                             for names starting with P-
  POST /_sluice/schedules/fire?name=N[&group=G][&time=ISO]
                                             fire a schedule now, as its run
                                             scheduled at `time` (default: now)
"""

from __future__ import annotations

import json
import os
from urllib.parse import parse_qs

from . import iam
from .invoke import AsyncInvoker
from .lambda_runtime import History
from .targets import FireError, fire

PREFIX = "/_sluice/"
POLICY = os.path.join(os.path.dirname(__file__), "..", "..", "..", "config", "iam", "operator-policy.json")


def middleware(app):  # type: ignore[no-untyped-def]
    def wrapped(environ, start_response):  # type: ignore[no-untyped-def]
        path = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX):
            iam.keep_raw_body(environ)
            return app(environ, start_response)
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
                # request; loopback only, like everything here.
                status, body = "200 OK", {"secretAccessKey": iam.secret_of(query["key"])}
            elif method == "GET" and route == "denials":
                status, body = "200 OK", iam.denials()
            elif method == "POST" and route == "iam/operator":
                creds = iam.operator_user(query["prefix"], POLICY)
                status, body = "200 OK", {"accessKeyId": creds.access_key_id, "secretAccessKey": creds.secret_access_key}
            elif method == "POST" and route == "schedules/fire":
                status, body = "200 OK", fire(query["name"], query.get("group", "default"), scheduled=query.get("time"))
        except (FireError, KeyError) as e:
            status, body = "400 Bad Request", {"error": str(e)}
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return wrapped
