"""The harness's own endpoints, beside moto's, under /_sluice/.

  GET  /_sluice/invocations[?function=NAME]  recent invocations (JSON list)
  GET  /_sluice/pending                      async events queued or running
  POST /_sluice/schedules/fire?name=N[&group=G][&time=ISO]
                                             fire a schedule now, as its run
                                             scheduled at `time` (default: now)
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from .invoke import AsyncInvoker
from .lambda_runtime import History
from .targets import FireError, fire

PREFIX = "/_sluice/"


def middleware(app):  # type: ignore[no-untyped-def]
    def wrapped(environ, start_response):  # type: ignore[no-untyped-def]
        path = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX):
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
            elif method == "POST" and route == "schedules/fire":
                status, body = "200 OK", fire(query["name"], query.get("group", "default"), scheduled=query.get("time"))
        except (FireError, KeyError) as e:
            status, body = "400 Bad Request", {"error": str(e)}
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return wrapped
