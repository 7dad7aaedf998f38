"""Starts moto server with the few places where moto answers unlike AWS
mended, so the operator is tested against what AWS does.

usage: launcher.py [moto_server arguments...]   (e.g. -H 127.0.0.1 -p 5000)

Each patch names the AWS behaviour it restores:

- S3 GetBucketNotificationConfiguration: AWS returns
  <EventBridgeConfiguration/> when a bucket sends its events to EventBridge;
  moto 5.2.5 stores it but leaves it out of the answer, so a bucket that
  starts a workflow would read as drifted on every resync.
"""

import sys
from xml.etree import ElementTree

from moto.s3 import responses as s3_responses
from moto.server import main as moto_main


def _patch_s3_eventbridge_notification() -> None:
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


def main() -> None:
    _patch_s3_eventbridge_notification()
    sys.exit(moto_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
