"""Starts moto server as the AWS the tests and the demo run against: moto,
with the places where it answers unlike AWS mended and what AWS does around
its APIs done locally (sluice_harness: functions run their deployed code,
event source mappings are polled, rules and schedules deliver).

usage: launcher.py [-H HOST] [-p PORT] [--no-clock]

Environment:
  SLUICE_HARNESS_DIR           where code is unpacked and function logs go
  SLUICE_HARNESS_DELAY_FACTOR  scales AWS's documented waits (retry delays,
                               visibility timeouts, batching windows); 1 = AWS
  SLUICE_HARNESS_IAM=enforce   authorize every request as IAM would (see
                               sluice_harness/iam.py); callers then act as the
                               administrator sluice_harness.iam.ADMIN, an
                               operator user, or a role
"""

import argparse
import io
import logging
import os
import signal
import socket
import sys

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from sluice_harness import control, iam, patches
from sluice_harness.context import Emulator
from sluice_harness.invoke import AsyncInvoker
from sluice_harness.lambda_runtime import Runtimes
from sluice_harness.sources import Pollers
from sluice_harness.targets import Clock


class KeepAliveRequestHandler(MotoRequestHandler):
    """moto's request handler, keeping HTTP/1.1 connections open as AWS's
    endpoints do. werkzeug's development server closes every connection,
    and after each response drains whatever the client sent since (which,
    on an open connection, is the next request), because http.server
    cannot skip a body the application left unread. This handler reads each
    body whole before the application runs, so none is ever left, and
    install() turns the drain off. Without it every call paid a new
    connection and a new server thread."""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; on an open connection
        # Nagle's algorithm held the second until the client's delayed ACK,
        # 40 ms per call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @staticmethod
    def install() -> None:
        import werkzeug.serving

        class NothingLeftToDrain:
            EVENT_READ = 1

            class DefaultSelector:
                def register(self, *_):  # type: ignore[no-untyped-def]
                    pass

                def select(self, timeout=None):  # type: ignore[no-untyped-def]
                    return []

                def close(self) -> None:
                    pass

        # werkzeug.serving uses its selectors module only for that drain.
        werkzeug.serving.selectors = NothingLeftToDrain  # type: ignore[assignment]

    def make_environ(self):  # type: ignore[no-untyped-def]
        environ = super().make_environ()
        stream = environ["wsgi.input"]
        if environ.pop("wsgi.input_terminated", False):
            body = stream.read()
            environ["CONTENT_LENGTH"] = str(len(body))
        else:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = stream.read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        return environ

    def send_header(self, keyword, value):  # type: ignore[no-untyped-def]
        # werkzeug adds "Connection: close" to every response; the client's
        # own "Connection: close", or HTTP/1.0, still closes.
        if keyword.lower() == "connection" and value.lower() == "close" and not self.close_connection:
            return
        super().send_header(keyword, value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument("--no-clock", action="store_true", help="fire schedules only on demand")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ["MOTO_PORT"] = str(args.port)
    Emulator.configure(args.host, args.port)
    patches.apply_all()
    if iam.ENABLED:
        iam.enable()
    AsyncInvoker.start()
    Pollers.start()
    if not args.no_clock:
        Clock().start()

    def stop(*_):  # type: ignore[no-untyped-def]
        Runtimes.shutdown()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    KeepAliveRequestHandler.install()
    app = control.middleware(DomainDispatcherApplication(create_backend_app))
    try:
        run_simple(args.host, args.port, app, threaded=True, request_handler=KeepAliveRequestHandler)
    finally:
        Runtimes.shutdown()


if __name__ == "__main__":
    main()
