//! `kubectl sluice`: validate, plan, price and draw a DataPipeline before
//! it merges, and see its state after (`kubectl sluice help`). A kubectl
//! plugin: installed on the PATH as `kubectl-sluice`, kubectl runs it for
//! `kubectl sluice ...`.

fn main() -> std::process::ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    sluice_operator::cli::main(&argv)
}
