//! The HTTP client the AWS SDK crates use in a function: HTTP/1.1 over
//! rustls (ring, the system's CA certificates), one connection pool per
//! timeout setting.
//!
//! Why not aws-smithy-http-client's: it always compiles HTTP/2 (the `h2`
//! crate and hyper's HTTP/2 client, 0.3 MB of code), which no AWS endpoint
//! a handler calls needs, and nearly every page of a function's code ends
//! up resident (the kernel maps 64 KB around each page touched), so code is
//! memory Lambda bills for. What this client does is what that one does for
//! HTTP/1.1: the SDK's connect and read timeouts, pooled keep-alive
//! connections, and errors sorted into timeout, I/O (retried), user and
//! other, as the SDK's retry classifier expects.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_smithy_runtime_api::{
    box_error::BoxError,
    client::{
        http::{
            HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings,
            SharedHttpConnector,
        },
        orchestrator::{HttpRequest, HttpResponse},
        result::ConnectorError,
        runtime_components::RuntimeComponents,
    },
};
use aws_smithy_types::body::SdkBody;
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector as TcpConnector},
    rt::TokioExecutor,
};

type Pool = Client<HttpsConnector<TcpConnector>, SdkBody>;

/// Connect timeout when the SDK gives none (the SDK's own default).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// How long an idle pooled connection is kept: below the 20 s after which
/// S3 and DynamoDB close idle connections, so a reused one is rarely
/// already closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// The SDK's HTTP client for handlers (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct LambdaHttpClient {
    /// One connector (and pool) per distinct timeout setting; a function
    /// uses one or two.
    connectors: Arc<Mutex<Vec<(Timeouts, SharedHttpConnector)>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timeouts {
    connect: Option<Duration>,
    read: Option<Duration>,
}

impl HttpClient for LambdaHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector_for(Timeouts {
            connect: settings.connect_timeout(),
            read: settings.read_timeout(),
        })
    }
}

impl LambdaHttpClient {
    fn connector_for(&self, timeouts: Timeouts) -> SharedHttpConnector {
        let mut connectors = self.connectors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, connector)) = connectors.iter().find(|(t, _)| *t == timeouts) {
            return connector.clone();
        }
        let connector = SharedHttpConnector::new(Connector::new(timeouts));
        connectors.push((timeouts, connector.clone()));
        connector
    }
}

#[derive(Clone, Debug)]
struct Connector {
    pool: Pool,
    read_timeout: Option<Duration>,
}

impl Connector {
    fn new(timeouts: Timeouts) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(timeouts.connect.unwrap_or(DEFAULT_CONNECT_TIMEOUT)));
        // The system's certificates are read and parsed once per process,
        // however many timeout settings ask for a pool.
        static TLS: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(TLS.get_or_init(tls_config).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let pool = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(https);
        Connector {
            pool,
            read_timeout: timeouts.read,
        }
    }
}

/// TLS 1.2 and 1.3 on ring, trusting the system's CA certificates (Lambda's
/// `/etc/pki/tls/certs`, or `SSL_CERT_FILE`); certificates that do not
/// parse are skipped, as the SDK's own client does.
fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "cannot load a system CA certificate");
    }
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder,
        // ring supports the default versions; this is unreachable, but a
        // client without TLS 1.2 is better than a panic.
        Err(_) => rustls::ClientConfig::builder(),
    };
    builder.with_root_certificates(roots).with_no_client_auth()
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let response = self.pool.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                Some(limit) => match tokio::time::timeout(limit, response).await {
                    Ok(response) => response,
                    Err(elapsed) => return Err(ConnectorError::timeout(elapsed.into())),
                },
                None => response.await,
            };
            match response {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => Err(classify(e)),
            }
        })
    }
}

/// Sorts a failed request the way the SDK's retry classifier expects:
/// connection failures, resets and I/O errors are retried as transient.
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let io = error.is_connect() || source::<std::io::Error>(&error).is_some();
    let hyper = source::<hyper::Error>(&error);
    let kind: fn(BoxError) -> ConnectorError = match hyper {
        Some(h) if h.is_timeout() => ConnectorError::timeout,
        Some(h) if h.is_user() => ConnectorError::user,
        Some(h) if h.is_closed() || h.is_canceled() || h.is_incomplete_message() => {
            ConnectorError::io
        }
        _ if io => ConnectorError::io,
        _ => |e| ConnectorError::other(e, None),
    };
    kind(error.into())
}

fn source<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let connector = Connector::new(Timeouts {
            connect: Some(Duration::from_secs(1)),
            read: None,
        });
        let request = HttpRequest::get(format!("http://127.0.0.1:{port}/")).expect("a request");
        let error = connector.call(request).await.expect_err("nothing listens");
        assert!(error.is_io(), "{error:?}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_a_read_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a listener");
        let addr = listener.local_addr().expect("its address");
        // Accepts and holds the connection without answering.
        let held = tokio::spawn(async move { listener.accept().await });
        let connector = Connector::new(Timeouts {
            connect: None,
            read: Some(Duration::from_millis(100)),
        });
        let request = HttpRequest::get(format!("http://{addr}/")).expect("a request");
        let error = connector.call(request).await.expect_err("no answer");
        assert!(error.is_timeout(), "{error:?}");
        held.abort();
    }

    #[test]
    fn one_pool_per_timeout_setting() {
        let client = LambdaHttpClient::default();
        let timeouts = |connect| Timeouts {
            connect: Some(Duration::from_secs(connect)),
            read: None,
        };
        client.connector_for(timeouts(1));
        client.connector_for(timeouts(1));
        client.connector_for(timeouts(2));
        assert_eq!(client.connectors.lock().expect("lock").len(), 2);
    }
}
