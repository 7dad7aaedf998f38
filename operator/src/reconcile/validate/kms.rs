//! Customer-managed KMS keys (queue, stream and table encryption).
//!
//! | AWS rule | Where | Reference |
//! |---|---|---|
//! | A key ARN is `arn:<partition>:kms:<region>:<account>:key/<id>` | schema (pattern) | KMS, "Key ARN" |
//! | The key is in the pipeline's partition (`aws`, `aws-cn`, `aws-us-gov`): a service never uses a key of another partition | here | ARN reference, "Partitions" |

use crate::crd::{DataPipelineSpec, KmsEncryption};

/// Every KMS key of the spec in the partition of `region`.
pub(super) fn validate_kms_keys(spec: &DataPipelineSpec, region: &str, problems: &mut Vec<String>) {
    let partition = crate::iam::partition(region);
    let keys = spec
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| (format!("spec.queues[{i}]"), &q.encryption))
        .chain(
            spec.streams
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("spec.streams[{i}]"), &s.encryption)),
        )
        .chain(
            spec.tables
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("spec.tables[{i}]"), &t.encryption)),
        );
    for (at, encryption) in keys {
        let Some(KmsEncryption { kms_key_arn }) = encryption else {
            continue;
        };
        let theirs = kms_key_arn.split(':').nth(1).unwrap_or_default();
        if theirs != partition {
            problems.push(format!(
                "{at}.encryption.kmsKeyArn: the key is in partition {theirs:?}, but region \
                 {region} is in {partition:?}; name a key of that partition \
                 (arn:{partition}:kms:{region}:<account>:key/<id>)"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::sample;

    #[test]
    fn a_key_of_another_partition_is_refused() {
        let mut spec = sample("fan-out.yaml");
        spec.queues[0].encryption = Some(KmsEncryption {
            kms_key_arn: "arn:aws-cn:kms:cn-north-1:123456789012:key/abc".into(),
        });
        let mut problems = Vec::new();
        validate_kms_keys(&spec, "us-east-1", &mut problems);
        assert_eq!(
            problems,
            [
                "spec.queues[0].encryption.kmsKeyArn: the key is in partition \"aws-cn\", but \
              region us-east-1 is in \"aws\"; name a key of that partition \
              (arn:aws:kms:us-east-1:<account>:key/<id>)"
            ]
        );
        let mut problems = Vec::new();
        validate_kms_keys(&spec, "cn-north-1", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
    }
}
