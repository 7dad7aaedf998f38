//! Which AWS identity a pipeline's calls go through: the account role its
//! namespace maps to ([`crate::accounts`], one session per pipeline) or the
//! operator's own, behind the pipeline's shard fence; and the identity its
//! resources are deleted with, which is the one they were made with.

use kube::ResourceExt;

use super::{Context, region};
use crate::{
    Error, Result, accounts,
    aws::Aws,
    crd::{AccountStatus, DataPipeline, DataPipelineStatus},
    policy::Effective,
};

/// The clients a pipeline's AWS calls go through: as the account role its
/// namespace maps to (in a session of the pipeline's own) or as the
/// operator. Refused ([`Error::Account`]) when that account may not be
/// used, or when the pipeline's resources (`has_resources`) are in
/// another one.
pub(super) async fn pipeline_aws(
    dp: &DataPipeline,
    ctx: &Context,
    effective: &Effective,
    previous: &DataPipelineStatus,
    has_resources: bool,
) -> Result<Aws> {
    let role = accounts::role_for(effective, &ctx.config.accounts).map_err(Error::Account)?;
    let region = region(dp, ctx);
    let namespace = dp.namespace().unwrap_or_default();
    let aws = ctx
        .regions
        .as_role(role.as_ref(), &region)
        .await?
        .for_pipeline(&namespace, &dp.name_any())
        .with_fence(ctx.shards.fence_for(&namespace).clone());
    let recorded = match &previous.account {
        Some(account) => Some(account.clone()),
        // Made before accounts were recorded: as the operator.
        None if has_resources => Some(AccountStatus {
            id: ctx.aws(&region).await?.account,
            role_arn: None,
        }),
        None => None,
    };
    accounts::stays_in_account(recorded.as_ref(), has_resources, &aws.account)
        .map_err(Error::Account)?;
    Ok(aws)
}

/// Where a pipeline made with `aws` has its resources, for its status.
pub(super) fn account_of(aws: &Aws) -> AccountStatus {
    AccountStatus {
        id: aws.account.clone(),
        role_arn: aws.role().map(|r| r.role_arn.clone()),
    }
}

/// The clients that delete a pipeline's resources: those of the account
/// they are in (status), as the identity that made them, where the
/// namespace's mapping still reaches it; `None` when nothing was made.
pub(super) async fn cleanup_aws(
    dp: &DataPipeline,
    ctx: &Context,
    effective: &Effective,
    previous: &DataPipelineStatus,
    has_resources: bool,
) -> Result<Option<Aws>> {
    let region = region(dp, ctx);
    let wanted = accounts::role_for(effective, &ctx.config.accounts);
    let aws = match (&previous.account, &wanted) {
        // The mapping reaches the account the resources are in.
        (Some(made), Ok(Some(role))) if made.id == role.account() => {
            ctx.regions.as_role(Some(role), &region).await?
        }
        (Some(made), _) if made.role_arn.is_none() => {
            let own = ctx.aws(&region).await?;
            if own.account != made.id {
                return Err(Error::Account(format!(
                    "this pipeline's AWS resources are in account {}, which the operator's \
                     own identity no longer reaches (it is in {}); run the operator with that \
                     account's identity to delete them",
                    made.id, own.account
                )));
            }
            own
        }
        (Some(made), _) if has_resources => {
            return Err(Error::Account(format!(
                "this pipeline's AWS resources are in account {} (made as {}), which its \
                 namespace's SluicePolicy no longer maps it to; map the namespace back \
                 (spec.account) so they can be deleted, or delete them there and remove the \
                 finalizer",
                made.id,
                made.role_arn.as_deref().unwrap_or_default()
            )));
        }
        (Some(_), _) => return Ok(None),
        // Made before accounts were recorded: as the operator.
        (None, _) if has_resources => ctx.aws(&region).await?,
        (None, Ok(role)) => ctx.regions.as_role(role.as_ref(), &region).await?,
        // Refused before any AWS call, so nothing was made.
        (None, Err(_)) => return Ok(None),
    };
    let namespace = dp.namespace().unwrap_or_default();
    Ok(Some(
        aws.for_pipeline(&namespace, &dp.name_any())
            .with_fence(ctx.shards.fence_for(&namespace).clone()),
    ))
}
