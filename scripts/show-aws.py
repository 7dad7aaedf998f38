"""Lists the AWS resources Sluice manages, as the AWS API (moto in the demo)
reports them: buckets, functions and roles with their sluice.dev tags."""

import boto3


def tags_of(pairs):
    return {t["Key"]: t["Value"] for t in pairs if t["Key"].startswith("sluice.dev/")}


def owner(tags: dict) -> str:
    """The pipeline a resource belongs to; the operator's own code bucket,
    shared by every pipeline in the account and region, belongs to none."""
    if "sluice.dev/pipeline" in tags:
        return tags["sluice.dev/pipeline"]
    if tags.get("sluice.dev/managed-by") == "sluice-operator":
        return "(the operator's code artifacts, shared by every pipeline; kept on delete)"
    return "(untagged)"


def main() -> None:
    s3 = boto3.client("s3")
    for b in s3.list_buckets().get("Buckets", []):
        try:
            tags = tags_of(s3.get_bucket_tagging(Bucket=b["Name"])["TagSet"])
        except s3.exceptions.ClientError:
            tags = {}
        print(f"S3::Bucket        {b['Name']}  {owner(tags)}")
    lam = boto3.client("lambda")
    for f in lam.list_functions().get("Functions", []):
        tags = lam.list_tags(Resource=f["FunctionArn"]).get("Tags", {})
        print(
            f"Lambda::Function  {f['FunctionName']}  {f['Runtime']} {f['MemorySize']} MiB "
            f"{f['Timeout']} s  {owner(tags)}"
        )
    iam = boto3.client("iam")
    for r in iam.list_roles().get("Roles", []):
        tags = tags_of(iam.list_role_tags(RoleName=r["RoleName"]).get("Tags", []))
        print(f"IAM::Role         {r['RoleName']}  {owner(tags)}")


if __name__ == "__main__":
    main()
