//! Prints Sluice's CRDs as YAML: `crdgen` the DataPipeline CRD, `crdgen
//! policy` the SluicePolicy CRD; `make crds` writes both to `charts/sluice/crds/`.

use kube::CustomResourceExt;
use sluice_operator::crd::{DataPipeline, SluicePolicy};

fn main() -> Result<(), serde_yaml::Error> {
    let crd = match std::env::args().nth(1).as_deref() {
        Some("depth-policy") => {
            print!("{}", sluice_operator::crd::depth_policy());
            return Ok(());
        }
        Some("policy") => SluicePolicy::crd(),
        _ => DataPipeline::crd(),
    };
    print!("{}", serde_yaml::to_string(&crd)?);
    Ok(())
}
