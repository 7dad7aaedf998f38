//! Prints the DataPipeline CRD as YAML; `make crds` writes it to `crds/`.

use kube::CustomResourceExt;
use sluice_operator::crd::DataPipeline;

fn main() -> Result<(), serde_yaml::Error> {
    print!("{}", serde_yaml::to_string(&DataPipeline::crd())?);
    Ok(())
}
