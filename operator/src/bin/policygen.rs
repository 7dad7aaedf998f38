//! Prints the operator's AWS policies as the code declares them
//! (`sluice_operator::policygen`): `policygen core`
//! config/iam/operator-policy.json, `policygen services`
//! config/iam/operator-policy-services.json, `policygen role-listing`
//! config/iam/role-listing-policy.json (optional: `SLUICE_ROLE_LISTING`),
//! `policygen reviewer` config/iam/reviewer-policy.json (the reads alone,
//! for `kubectl sluice plan --live`). `make policy` writes them; `make policy-check` (in `make
//! test`) fails when the committed files differ.

use std::process::ExitCode;

use sluice_operator::{
    aws::operator_policy::Document,
    policygen::{render, render_reviewer},
};

fn main() -> ExitCode {
    let name = std::env::args().nth(1);
    if name.as_deref() == Some("reviewer") {
        print!("{}", render_reviewer());
        return ExitCode::SUCCESS;
    }
    match name.as_deref().and_then(Document::from_name) {
        Some(document) => {
            print!("{}", render(document));
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("usage: policygen core|services|role-listing|reviewer");
            for document in Document::EVERY {
                eprintln!("  {:<12} config/iam/{}", document.name(), document.file());
            }
            eprintln!("  reviewer     config/iam/reviewer-policy.json");
            ExitCode::from(2)
        }
    }
}
