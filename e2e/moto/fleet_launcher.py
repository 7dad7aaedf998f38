"""moto for `make bench-fleet`: the launcher's mended moto (patches.py),
without the deliveries (no event source mapping pollers, asynchronous
invoker or schedule clock: a fleet of a thousand pipelines would have moto
poll its own queues thousands of times a second, and the benchmark measures
the control plane), and with one copy of each function's code.

moto keeps every function's code in memory, a copy per function even when
they all run the same zip: 2,400 functions of 4.4 MB each would need more
memory than the machine has. Here equal code (by SHA-256) is held once.

IAM is enforced as in launcher.py when SLUICE_HARNESS_IAM=enforce;
`make bench-fleet` turns it off, to measure the operator rather than the
emulator's policy evaluator.

usage: fleet_launcher.py [-H HOST] [-p PORT]
"""

import argparse
import logging
import os
import sys

from moto.awslambda import models as lambda_models
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

from sluice_harness import control, iam, patches, sources
from sluice_harness.context import Emulator

_CODE: dict[str, bytes] = {}


def share_function_code() -> None:
    original = lambda_models.LambdaFunction._set_function_code

    def set_code(self, updated_spec):  # type: ignore[no-untyped-def]
        original(self, updated_spec)
        digest = getattr(self, "code_digest", "")
        if digest and getattr(self, "code_bytes", None):
            self.code_bytes = _CODE.setdefault(digest, self.code_bytes)
        # An inline zip is kept base64-encoded besides; drop that copy.
        if isinstance(self.code, dict) and "ZipFile" in self.code:
            self.code["ZipFile"] = ""

    lambda_models.LambdaFunction._set_function_code = set_code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args, _ = parser.parse_known_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ["MOTO_PORT"] = str(args.port)
    Emulator.configure(args.host, args.port)
    patches.apply_all()
    if iam.ENABLED:
        iam.enable()
    # No pollers: mappings are stored, never polled.
    sources.Pollers._ensure = classmethod(lambda cls, esm: None)  # type: ignore[method-assign]
    share_function_code()
    app = control.middleware(DomainDispatcherApplication(create_backend_app))
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    sys.exit(main())
