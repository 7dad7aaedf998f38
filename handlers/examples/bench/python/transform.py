"""Pattern 1 of the article (event-triggered processing), as the article
designs it: for the S3 record of the event, read the object, parse it, stamp
it, add the item totals and write it under processed/ in PROCESSED_BUCKET.

Like the article's version it answers after the first record of an event
(the benchmark's events carry one record each) and does not URL-decode keys.
"""

import json
import os
from datetime import datetime

import boto3

s3_client = boto3.client("s3")
PROCESSED_BUCKET = os.environ["PROCESSED_BUCKET"]


def handler(event, context):
    for record in event["Records"]:
        source_bucket = record["s3"]["bucket"]["name"]
        source_key = record["s3"]["object"]["key"]

        obj = s3_client.get_object(Bucket=source_bucket, Key=source_key)
        text = obj["Body"].read().decode("utf-8")
        try:
            document = json.loads(text)
            document["processed_at"] = datetime.now().isoformat()
            if "items" in document:
                items = document["items"]
                document["total_items"] = sum(item["quantity"] for item in items)
                document["total_value"] = sum(
                    item["quantity"] * item["price"] for item in items
                )
            output_key = "processed/" + source_key
            s3_client.put_object(
                Bucket=PROCESSED_BUCKET,
                Key=output_key,
                Body=json.dumps(document),
                ContentType="application/json",
            )
            return {"statusCode": 200, "body": "processed " + source_key}
        except Exception as error:
            print("failed on " + source_key + ": " + str(error))
            raise
