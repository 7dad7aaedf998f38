//! Limits of the account rather than of the spec, refused before AWS
//! refuses them: a reserved concurrency that would leave fewer than the
//! 100 unreserved executions Lambda keeps (the account's limit read with
//! GetAccountSettings; the emulator's is AWS's default 1,000) stalls the
//! pipeline naming the field and what fits, before the function exists;
//! a value that fits converges and is reserved.

use sluice_e2e::{
    Namespace, Operator, Policy, apply_and_wait, condition, get_pipeline, id_of, install_crd,
    sample_manifest, token,
};

const NAME: &str = "event-triggered";

fn with_reservation(n: u32) -> String {
    let manifest = sample_manifest("event-triggered.yaml");
    let reserved = manifest.replace(
        "      memoryMiB: 256\n",
        &format!("      memoryMiB: 256\n      reservedConcurrency: {n}\n"),
    );
    assert_ne!(reserved, manifest, "the sample's function changed shape");
    reserved
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reservation_the_account_cannot_give_stalls_naming_the_field_before_lambda_refuses_it() {
    install_crd();
    // The platform allows reservations here, up to more than the account has.
    let name = format!("reserve-{}", token());
    let _policy = Policy::apply(
        &name,
        serde_json::json!({
            "allow": {"reservedConcurrency": true},
            "limits": {"reservedConcurrencyPerNamespace": 5000}
        }),
    );
    let ns = Namespace::under_policy(&name);
    let op = Operator::start(&ns.0);

    apply_and_wait(&ns.0, NAME, &with_reservation(950), "Stalled", &op);
    let dp = get_pipeline(&ns.0, NAME);
    let stalled = condition(&dp, "Stalled").expect("Stalled");
    // The operator's refusal (InvalidSpec), not Lambda's (AWSRejected).
    assert_eq!(stalled["reason"], "InvalidSpec", "{stalled:#}");
    let message = stalled["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.functions[name=processor].reservedConcurrency: 950 would leave")
            && message.contains("concurrent executions in us-east-1 unreserved")
            && message.contains("at most"),
        "{message}"
    );
    // Checked before the function was created: none runs unbounded.
    let lambda = aws_sdk_lambda::Client::new(&sluice_e2e::sdk().await);
    let functions = lambda.list_functions().send().await.expect("ListFunctions");
    let mine: Vec<&str> = functions
        .functions()
        .iter()
        .filter_map(|f| f.function_name())
        .filter(|n| n.contains(&ns.0))
        .collect();
    assert!(mine.is_empty(), "created before the check: {mine:?}");

    // A reservation that fits converges, and Lambda holds it.
    apply_and_wait(&ns.0, NAME, &with_reservation(100), "Ready", &op);
    let dp = get_pipeline(&ns.0, NAME);
    let function = id_of(&dp, "Lambda::Function", "processor");
    let concurrency = lambda
        .get_function_concurrency()
        .function_name(&function)
        .send()
        .await
        .expect("GetFunctionConcurrency");
    assert_eq!(concurrency.reserved_concurrent_executions(), Some(100));
}
