//! A real Prometheus — Debian's package, installed by `make
//! tools-observability` — scraping the operator every second and
//! evaluating the alert rules, queried through its HTTP API.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::{free_port, token, tool};

/// One GET to the local Prometheus; queries may take a while.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    crate::http_get_within(([127, 0, 0, 1], port).into(), path, Duration::from_secs(10))
}

/// A Prometheus process with its own data directory, killed when dropped.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    /// Its HTTP port.
    pub port: u16,
    /// Its configuration, data and log.
    pub dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`) as job
    /// `sluice-operator` every second, with `rules` (a rule file) evaluated
    /// every second, and waits until it is ready.
    pub fn start(targets: &[String], rules: Option<&Path>) -> Self {
        let bin = tool("SLUICE_PROMETHEUS", "prometheus");
        let dir = std::env::temp_dir().join(format!("sluice-prometheus-{}", token()));
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let rule_files = rules
            .map(|r| format!("rule_files: [{:?}]\n", r.display().to_string()))
            .unwrap_or_default();
        let config = format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
             {rule_files}\
             scrape_configs:\n  - job_name: sluice-operator\n    static_configs:\n      - targets: {targets:?}\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("config");
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let mut p = Prometheus { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(port, "/-/ready").is_none_or(|(s, _)| s != 200) {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("prometheus exited ({status}):\n{}", p.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    fn api(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
            .collect();
        let url = format!("{path}?{}", query.join("&"));
        let (_, body) = http_get(self.port, &url).ok_or("no answer from prometheus")?;
        let doc: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if doc["status"] != "success" {
            return Err(format!("{}: {}", doc["errorType"], doc["error"]));
        }
        Ok(doc["data"]["result"].clone())
    }

    /// An instant query: its series, or Prometheus's error (a query that
    /// does not parse).
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let result = self.api("/api/v1/query", &[("query", expr.to_owned())])?;
        Ok(result.as_array().cloned().unwrap_or_default())
    }

    /// A range query over `[start, end]` (Unix seconds) every `step` seconds.
    pub fn query_range(
        &self,
        expr: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<Vec<Value>, String> {
        let result = self.api(
            "/api/v1/query_range",
            &[
                ("query", expr.to_owned()),
                ("start", format!("{start:.3}")),
                ("end", format!("{end:.3}")),
                ("step", format!("{step}")),
            ],
        )?;
        Ok(result.as_array().cloned().unwrap_or_default())
    }

    /// The value of the first series of an instant query, if any.
    pub fn value(&self, expr: &str) -> Option<f64> {
        let series = self.query(expr).ok()?;
        series.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Polls `expr` until `check` holds for its series.
    pub fn wait_for(
        &self,
        what: &str,
        expr: &str,
        limit: Duration,
        check: impl Fn(&[Value]) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            let result = self.query(expr);
            if result.as_deref().is_ok_and(&check) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({expr} = {result:?}); prometheus log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
