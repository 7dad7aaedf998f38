"""A gateway that lets AWS SDKs speaking Smithy RPC v2 CBOR reach moto.

The Rust SDK talks to CloudWatch in the `smithy-rpc-v2-cbor` protocol (the
one AWS lists first for the service); moto 5.2.5 serves CloudWatch in its
JSON and query protocols only. This gateway takes a CBOR request
(`POST /service/<ServiceId>/operation/<Operation>`), decodes it with
botocore's CBOR parser, makes the same call on moto with boto3 (same region
and access key, so the same moto account and region), and encodes moto's
answer, or its error, back to CBOR with botocore's serializer and the
operation's output shape. Nothing is interpreted: botocore's models say
which fields are timestamps, lists, numbers.

usage: cbor_gateway.py --upstream http://127.0.0.1:PORT [-H HOST] [-p PORT]

scripts/localenv.sh starts it and exports its URL as
AWS_ENDPOINT_URL_CLOUDWATCH, so only CloudWatch clients come here.
"""

import argparse
import gzip
import io
import json
import re
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import botocore.session
from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.parsers import RpcV2CBORParser
from botocore.serialize import RpcV2CBORSerializer

# Services whose SDKs speak CBOR to us: botocore's name by Smithy service id.
SERVICES = {"GraniteServiceVersion20100801": "cloudwatch"}

PATH = re.compile(r"^/service/([^/]+)/operation/([^/?]+)$")
CREDENTIAL = re.compile(r"Credential=([^/]+)/[0-9]+/([a-z0-9-]+)/")

_session = botocore.session.get_session()
_clients: dict = {}
_lock = threading.Lock()


def _secret(access_key: str, upstream: str) -> str:
    """The caller's secret key, from the emulator's harness when IAM is
    enforced there (so the call is signed, and authorized, as the caller);
    any string when it is not."""
    try:
        with urllib.request.urlopen(f"{upstream}/_sluice/credentials?key={access_key}", timeout=5) as answer:
            return json.load(answer)["secretAccessKey"]
    except (OSError, ValueError, KeyError):
        return "gateway"


def client(service: str, region: str, access_key: str, token: str | None, upstream: str):
    key = (service, region, access_key, token)
    with _lock:
        if key not in _clients:
            _clients[key] = boto3.client(
                service,
                region_name=region,
                endpoint_url=upstream,
                aws_access_key_id=access_key,
                aws_secret_access_key=_secret(access_key, upstream),
                aws_session_token=token,
            )
        return _clients[key]


def encode(value, shape) -> bytes:
    out = bytearray()
    RpcV2CBORSerializer()._serialize_data_item(out, value, shape)
    return bytes(out)


def encode_text_map(entries: dict) -> bytes:
    """A CBOR map of short text keys and values (error bodies)."""

    def text(s: str) -> bytes:
        raw = s.encode()
        n = len(raw)
        if n < 24:
            head = bytes([0x60 | n])
        elif n < 256:
            head = bytes([0x78, n])
        else:
            head = bytes([0x79]) + n.to_bytes(2, "big")
        return head + raw

    body = bytes([0xA0 | len(entries)])
    for k, v in entries.items():
        body += text(k) + text(v[:60000])
    return body


class Gateway(BaseHTTPRequestHandler):
    upstream = ""

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("smithy-protocol", "rpc-v2-cbor")
        self.send_header("Content-Type", "application/cbor")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status: int, code: str, message: str, namespace: str = "com.amazonaws.cloudwatch") -> None:
        self.reply(status, encode_text_map({"__type": f"{namespace}#{code}", "message": message}))

    def do_POST(self):  # noqa: N802 - the base class's name
        match = PATH.match(self.path)
        service = SERVICES.get(match.group(1)) if match else None
        if service is None:
            self.error(404, "UnknownOperationException", f"no CBOR service at {self.path}")
            return
        operation_name = match.group(2)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        credential = CREDENTIAL.search(self.headers.get("Authorization", ""))
        access_key, region = credential.groups() if credential else ("testing", "us-east-1")
        model = _session.get_service_model(service).operation_model(operation_name)
        params = {}
        if body:
            params = RpcV2CBORParser().parse_data_item(io.BufferedReader(io.BytesIO(body)))
        token = self.headers.get("X-Amz-Security-Token")
        method = getattr(client(service, region, access_key, token, self.upstream), xform_name(operation_name))
        try:
            result = method(**params)
        except ClientError as e:
            err = e.response.get("Error", {})
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
            self.error(status, err.get("Code", "InternalFailure"), err.get("Message", ""))
            return
        result.pop("ResponseMetadata", None)
        if model.output_shape is None:
            self.reply(200, b"")
            return
        try:
            body = encode(result, model.output_shape)
        except (KeyError, TypeError, ValueError) as e:
            # moto answered with something the model does not have: say so
            # rather than drop the connection.
            self.error(500, "InternalFailure", f"cbor_gateway cannot encode moto's {operation_name} answer: {e!r}")
            return
        self.reply(200, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="moto's URL")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    Gateway.upstream = args.upstream
    ThreadingHTTPServer((args.host, args.port), Gateway).serve_forever()


if __name__ == "__main__":
    main()
