"""A minimal Lambda Runtime API client, standing in for the managed Python
runtime's awslambdaric: import the handler named by _HANDLER
("module.function", from this directory), then forever fetch the next
event, parse it, call the handler and post its result or its error.

AWS_LAMBDA_RUNTIME_API is host:port, optionally with a scheme and a path
prefix (cargo-lambda's emulator serves one function under /.rt/<name>).
"""

import http.client
import importlib
import json
import os
import socket
import sys
import time
import traceback

API_VERSION = "/2018-06-01/runtime/invocation/"


class Context:
    """The attributes of the managed runtime's context object that a
    handler may read."""

    def __init__(self, request_id, deadline_ms):
        self.aws_request_id = request_id
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.time() * 1000))


class Connection(http.client.HTTPConnection):
    """Keep-alive HTTP with TCP_NODELAY, as the managed runtime's client
    (libcurl) has it: http.client writes a POST's headers and body in two
    sends, and with Nagle's algorithm on, the body could wait for the
    delayed ACK of the headers (40 ms on Linux)."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def endpoint():
    address = os.environ["AWS_LAMBDA_RUNTIME_API"]
    if "://" in address:
        address = address.split("://", 1)[1]
    host, _, prefix = address.partition("/")
    return host, ("/" + prefix if prefix else "")


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    module_name, function_name = os.environ["_HANDLER"].rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), function_name)
    host, prefix = endpoint()
    base = prefix + API_VERSION
    connection = Connection(host)
    while True:
        connection.request("GET", base + "next")
        # The event may come in two segments (cargo-lambda's emulator
        # writes with Nagle's algorithm on): acknowledge at once, or the
        # second waits for our delayed ACK (40 ms) and the invocation with
        # it. Linux forgets the flag after a while, so set it every time.
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        response = connection.getresponse()
        event = response.read()
        request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
        deadline = int(response.getheader("Lambda-Runtime-Deadline-Ms") or "0")
        try:
            result = handler(json.loads(event), Context(request_id, deadline))
            path, body = "/response", json.dumps(result)
        except Exception as error:
            path = "/error"
            body = json.dumps(
                {
                    "errorMessage": str(error),
                    "errorType": type(error).__name__,
                    "stackTrace": traceback.format_tb(error.__traceback__),
                }
            )
        connection.request(
            "POST", base + request_id + path, body, {"Content-Type": "application/json"}
        )
        connection.getresponse().read()


if __name__ == "__main__":
    main()
