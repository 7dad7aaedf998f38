//! Prints the operator's AWS policies as the code declares them
//! (`sluice_operator::policygen`): `policygen core`
//! config/iam/operator-policy.json, `policygen services`
//! config/iam/operator-policy-services.json. `make policy` writes both;
//! `make policy-check` (in `make test`) fails when the committed files differ.

use std::process::ExitCode;

use sluice_operator::{aws::operator_policy::Document, policygen::render};

fn main() -> ExitCode {
    match std::env::args()
        .nth(1)
        .as_deref()
        .and_then(Document::from_name)
    {
        Some(document) => {
            print!("{}", render(document));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("usage: policygen core|services");
            for document in Document::ALL {
                eprintln!("  {:<9} config/iam/{}", document.name(), document.file());
            }
            ExitCode::from(2)
        }
    }
}
