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
import logging
import os
import signal
import sys

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from sluice_harness import control, iam, patches
from sluice_harness.context import Emulator
from sluice_harness.invoke import AsyncInvoker
from sluice_harness.lambda_runtime import Runtimes
from sluice_harness.sources import Pollers
from sluice_harness.targets import Clock


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
    app = control.middleware(DomainDispatcherApplication(create_backend_app))
    try:
        run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    finally:
        Runtimes.shutdown()


if __name__ == "__main__":
    main()
