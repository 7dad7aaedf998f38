"""Lists the AWS resources Sluice manages, as the AWS API (moto in the demo)
reports them: buckets, functions and roles with their sluice.dev tags."""

import boto3


def tags_of(pairs):
    return {t["Key"]: t["Value"] for t in pairs if t["Key"].startswith("sluice.dev/")}


def main() -> None:
    s3 = boto3.client("s3")
    for b in s3.list_buckets().get("Buckets", []):
        try:
            tags = tags_of(s3.get_bucket_tagging(Bucket=b["Name"])["TagSet"])
        except s3.exceptions.ClientError:
            tags = {}
        print(f"S3::Bucket        {b['Name']}  {tags.get('sluice.dev/pipeline', '(untagged)')}")
    lam = boto3.client("lambda")
    for f in lam.list_functions().get("Functions", []):
        tags = lam.list_tags(Resource=f["FunctionArn"]).get("Tags", {})
        print(
            f"Lambda::Function  {f['FunctionName']}  {f['Runtime']} {f['MemorySize']} MiB "
            f"{f['Timeout']} s  {tags.get('sluice.dev/pipeline', '(untagged)')}"
        )
    iam = boto3.client("iam")
    for r in iam.list_roles().get("Roles", []):
        tags = tags_of(iam.list_role_tags(RoleName=r["RoleName"]).get("Tags", []))
        print(f"IAM::Role         {r['RoleName']}  {tags.get('sluice.dev/pipeline', '(untagged)')}")


if __name__ == "__main__":
    main()
