//! One handler under cargo-lambda's local Lambda Runtime API
//! emulator: shared by the emulator tests and `examples/bench.rs`, which
//! includes this file with `#[path]`.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The function name the emulator serves. cargo-lambda accepts only the
/// names of the package's binary targets, and the one binary is
/// `bootstrap`; each emulator serves one function, and `_HANDLER` says which
/// handler it runs.
pub(crate) const FUNCTION: &str = "bootstrap";

/// How long `cargo lambda watch` may take to listen.
const START_LIMIT: Duration = Duration::from_secs(60);

/// `cargo lambda watch --only-lambda-apis` on a free local port; killed on
/// drop.
#[derive(Debug)]
pub(crate) struct Emulator {
    port: u16,
    child: Child,
}

impl Emulator {
    /// Starts the emulator and waits for it to listen. It runs in the
    /// handlers package: cargo-lambda reads the package's binary targets to
    /// accept a function name.
    pub(crate) fn start(cargo_lambda: &Path, stdout: Stdio, stderr: Stdio) -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new(cargo_lambda)
            .args(["lambda", "watch", "--only-lambda-apis", "--ignore-changes"])
            .args(["-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(
                std::env::var("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", cargo_lambda.display()))?;
        // Built first, so an early return below still kills the child.
        let mut emulator = Self { port, child };
        let deadline = Instant::now() + START_LIMIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = emulator.child.try_wait() {
                return Err(format!(
                    "cargo lambda watch exited before listening on port {port}: {status}"
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "cargo lambda watch did not listen on port {port} within {START_LIMIT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(emulator)
    }

    /// A command that runs the handlers' `bootstrap` executable as this
    /// emulator's [`FUNCTION`], with the environment Lambda gives a function
    /// (`_HANDLER` names the handler, as the function's Handler setting does
    /// in Lambda; the function name is the handler's) and its AWS clients
    /// pointed at `aws_endpoint` with the environment's credentials. The caller adds its
    /// own variables and output.
    pub(crate) fn handler_command(
        &self,
        bootstrap: &Path,
        handler: &str,
        aws_endpoint: &str,
    ) -> Command {
        let (key, secret) = credentials();
        let mut command = Command::new(bootstrap);
        command
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{}/.rt/{FUNCTION}", self.port),
            )
            .env("_HANDLER", handler)
            .env("AWS_LAMBDA_FUNCTION_NAME", handler)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_ENDPOINT_URL", aws_endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .stdin(Stdio::null());
        command
    }

    /// A Lambda client that invokes through this emulator, without retries
    /// (a failed invoke must show, not be repeated).
    pub(crate) fn client(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_lambda::Client {
        aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(sdk)
                .endpoint_url(format!("http://127.0.0.1:{}", self.port))
                .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
                .build(),
        )
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The local environment's credentials (`AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY` from its env file: the harness's administrator
/// when it enforces IAM), or moto's usual `testing` pair without one (the
/// benchmark's own moto takes any). The local-Lambda tests are about the
/// handlers' behaviour, so the handlers run with them too; e2e's data-flow
/// tests run them under their execution roles.
pub(crate) fn credentials() -> (String, String) {
    let var = |name| std::env::var(name).unwrap_or_else(|_| "testing".to_owned());
    (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
}
