"""Pattern 5 of the article (periodic batch), as the article designs it: list
the day's objects, then read each one in turn, total its records by
category and write one summary per object under processed/ in
DESTINATION_BUCKET.

Deviations, so both implementations read the same objects: the listing
follows continuation tokens (the article reads only the first page of
1,000 keys), and the event's "date" (YYYY-MM-DD), when given, names the day
instead of yesterday.
"""

import json
import os
from datetime import datetime, timedelta

import boto3

s3_client = boto3.client("s3")
SOURCE_BUCKET = os.environ["SOURCE_BUCKET"]
DESTINATION_BUCKET = os.environ["DESTINATION_BUCKET"]


def handler(event, context):
    if event.get("date"):
        day = datetime.strptime(event["date"], "%Y-%m-%d")
    else:
        day = datetime.now() - timedelta(days=1)
    prefix = day.strftime("%Y/%m/%d/")

    done = 0
    listing = {"Bucket": SOURCE_BUCKET, "Prefix": prefix}
    while True:
        page = s3_client.list_objects_v2(**listing)
        for entry in page.get("Contents", []):
            summarise(entry["Key"])
            done += 1
        if not page.get("IsTruncated"):
            break
        listing["ContinuationToken"] = page["NextContinuationToken"]

    return {
        "statusCode": 200,
        "body": json.dumps("summarised %d objects under %s" % (done, prefix)),
    }


def summarise(key):
    obj = s3_client.get_object(Bucket=SOURCE_BUCKET, Key=key)
    text = obj["Body"].read().decode("utf-8")
    try:
        document = json.loads(text)
        by_category = {}
        for record in document.get("records", []):
            category = record.get("category", "unknown")
            by_category[category] = by_category.get(category, 0) + record.get("value", 0)
        parts = key.split("/")
        summary = {
            "date": "-".join(parts[:3]),
            "total_records": len(document.get("records", [])),
            "aggregated_values": by_category,
            "total_value": sum(by_category.values()),
            "processed_at": datetime.now().isoformat(),
        }
        output_key = "processed/" + parts[-1]
        s3_client.put_object(
            Bucket=DESTINATION_BUCKET,
            Key=output_key,
            Body=json.dumps(summary),
            ContentType="application/json",
        )
        print("summarised " + key + " into " + output_key)
    except Exception as error:
        print("failed on " + key + ": " + str(error))
        raise
