"""Pattern 4 of the article (stream processing), as the article designs it:
each Kinesis record of the batch is decoded, stamped with its own clock
read, scored against its threshold and stored with its own PutItem call.
Records that fail are printed and skipped, as in the article.

One deviation: boto3's DynamoDB resource refuses Python floats, so numbers
are turned into Decimal just before the write. Without it the article's
handler would drop every record carrying a fraction or an anomaly score.
"""

import base64
import json
import os
from datetime import datetime
from decimal import Decimal

import boto3

results_table = boto3.resource("dynamodb").Table(os.environ["RESULTS_TABLE"])


def handler(event, context):
    stored = 0
    for record in event["Records"]:
        text = base64.b64decode(record["kinesis"]["data"]).decode("utf-8")
        try:
            store(json.loads(text))
            stored += 1
        except Exception as error:
            print("record skipped: " + str(error))
    print("stored %d records" % stored)
    return {"statusCode": 200, "body": json.dumps("stored %d records" % stored)}


def store(reading):
    reading["processed_at"] = datetime.now().isoformat()
    if "value" in reading:
        score = 0
        if "threshold" in reading:
            limit = reading["threshold"]
            observed = reading["value"]
            reading["anomaly"] = observed > limit * 1.5
            if reading["anomaly"]:
                score = observed / limit - 1
        reading["anomaly_score"] = score
    item = {
        "id": reading.get("id", str(datetime.now().timestamp())),
        "timestamp": reading.get("timestamp", datetime.now().isoformat()),
        "data": reading,
        "anomaly_score": reading.get("anomaly_score", 0),
        "processed_at": reading["processed_at"],
    }
    results_table.put_item(Item=as_dynamodb(item))


def as_dynamodb(value):
    """The item with every float as a Decimal (boto3 accepts no floats)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: as_dynamodb(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [as_dynamodb(inner) for inner in value]
    return value
