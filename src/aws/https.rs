//! The HTTP client every AWS SDK client sends through: hyper (HTTP/1.1) with rustls on ring,
//! trusting [`TrustRoots`].
//!
//! The SDK's own client (aws-smithy-http-client) takes trust roots only as PEM, so the
//! compiled-in roots had to be written out as PEM, which it then decoded again when it built its
//! TLS configuration: about 8.5 million instructions, most of the work of a cold start's first
//! STS call. Here rustls takes the compiled-in roots as the trust anchors build.rs made of them
//! (nothing parsed at run time); a bundle (`AWS_CA_BUNDLE`) was parsed once when it was
//! checked, and the system's roots (`SSL_CERT_FILE`, `SSL_CERT_DIR`) are read as
//! rustls-native-certs reads them.
//!
//! What the SDK's client does that matters here, this does too: the connect time-out
//! (TCP) and the read time-out (until the response's head) of the SDK's settings, a connection
//! pool per pair of them, the SDK's cipher suites, and each failure tagged as the SDK's retry
//! strategy expects (a time-out, an I/O failure, the request's fault, or other).

use std::error::Error;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::TrustRoots;

/// One HTTPS client for every AWS call, trusting `roots`. Nothing is built until the first
/// request needs a connector: configuring the SDK at start-up costs no TLS work.
pub fn https_client(roots: TrustRoots) -> SharedHttpClient {
    SharedHttpClient::new(Https {
        roots,
        tls: OnceLock::new(),
        connectors: RwLock::new(Vec::new()),
    })
}

/// The time-outs a connector applies: connect, read.
type Timeouts = (Option<Duration>, Option<Duration>);

#[derive(Debug)]
struct Https {
    roots: TrustRoots,
    tls: OnceLock<rustls::ClientConfig>,
    /// One connector, with its pool of connections, per pair of time-outs asked for (each SDK
    /// client asks with its own settings; this process has two or three pairs at most).
    connectors: RwLock<Vec<(Timeouts, SharedHttpConnector)>>,
}

impl Https {
    fn tls(&self) -> &rustls::ClientConfig {
        self.tls.get_or_init(|| tls_config(&self.roots))
    }

    fn connector(&self, timeouts: Timeouts) -> SharedHttpConnector {
        let cached = |connectors: &[(Timeouts, SharedHttpConnector)]| {
            connectors
                .iter()
                .find(|(of, _)| *of == timeouts)
                .map(|(_, connector)| connector.clone())
        };
        if let Some(connector) = cached(&self.connectors.read().unwrap_or_else(|e| e.into_inner()))
        {
            return connector;
        }
        let mut connectors = self.connectors.write().unwrap_or_else(|e| e.into_inner());
        if let Some(connector) = cached(&connectors) {
            return connector;
        }
        let connector = SharedHttpConnector::new(Connector::new(self.tls().clone(), timeouts));
        connectors.push((timeouts, connector.clone()));
        connector
    }
}

impl HttpClient for Https {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector((settings.connect_timeout(), settings.read_timeout()))
    }
}

/// The roots and cipher suites the SDK's client would use, TLS 1.2 and 1.3.
fn tls_config(roots: &TrustRoots) -> rustls::ClientConfig {
    let store = roots.root_store();
    let base = rustls::crypto::ring::default_provider();
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: base
            .cipher_suites
            .iter()
            .filter(|suite| CIPHER_SUITES.contains(&suite.suite()))
            .copied()
            .collect(),
        ..base
    };
    rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("ring's provider supports TLS 1.2 and 1.3")
        .with_root_certificates(store)
        .with_no_client_auth()
}

/// The SDK's client's cipher suites, in its order of preference.
const CIPHER_SUITES: [rustls::CipherSuite; 7] = [
    rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// Sends requests over a pool of HTTP/1.1 connections, TLS for `https://`.
#[derive(Debug, Clone)]
struct Connector {
    client: Client<HttpsConnector<TcpConnector>, SdkBody>,
    read_timeout: Option<Duration>,
}

impl Connector {
    fn new(tls: rustls::ClientConfig, (connect_timeout, read_timeout): Timeouts) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(connect_timeout);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(https);
        Self {
            client,
            read_timeout,
        }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(err) => return HttpConnectorFuture::ready(Err(ConnectorError::user(err.into()))),
        };
        let (client, read_timeout) = (self.client.clone(), self.read_timeout);
        HttpConnectorFuture::new(async move {
            let response = client.request(request);
            let response = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, response)
                    .await
                    .map_err(|_| ConnectorError::timeout(Box::new(NoResponse(limit))))?,
                None => response.await,
            }
            .map_err(connector_error)?;
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|err| ConnectorError::other(err.into(), None))
        })
    }
}

/// The read time-out passed with no response.
#[derive(Debug, thiserror::Error)]
#[error("no response within the read time-out ({0:?})")]
struct NoResponse(Duration);

/// Tags a failure as the SDK's retry strategy reads it, as the SDK's own client does: a
/// time-out (the connect time-out is an I/O error of kind `TimedOut`), a connection that could
/// not be made or was lost (retried), the request's own fault, or anything else.
fn connector_error(err: hyper_util::client::legacy::Error) -> ConnectorError {
    let timed_out = chain(&err).any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    });
    let hyper = chain(&err).find_map(|e| e.downcast_ref::<hyper::Error>());
    let io = chain(&err).any(|e| e.is::<std::io::Error>());
    if timed_out {
        ConnectorError::timeout(err.into())
    } else if hyper.is_some_and(|h| h.is_user()) {
        ConnectorError::user(err.into())
    } else if err.is_connect() || io || hyper.is_some_and(|h| h.is_closed() || h.is_canceled()) {
        ConnectorError::io(err.into())
    } else if hyper.is_some_and(|h| h.is_incomplete_message()) {
        ConnectorError::other(err.into(), Some(ErrorKind::TransientError))
    } else {
        ConnectorError::other(err.into(), None)
    }
}

fn chain<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |&e| e.source())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(url: &str) -> HttpRequest {
        let request = http::Request::get(url)
            .body(SdkBody::empty())
            .expect("request");
        HttpRequest::try_from(request).expect("an SDK request")
    }

    fn connector(timeouts: Timeouts) -> Connector {
        Connector::new(tls_config(&TrustRoots::Compiled), timeouts)
    }

    /// An endpoint that takes the connection and never answers: the read time-out ends the
    /// call, as a time-out (which the SDK's retry strategy and our error messages read).
    #[tokio::test]
    async fn no_answer_within_the_read_time_out_is_a_time_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(socket);
        });
        let err = connector((None, Some(Duration::from_millis(200))))
            .call(get(&format!("http://127.0.0.1:{port}/")))
            .await
            .expect_err("no answer");
        assert!(err.is_timeout(), "{err:?}");
        held.abort();
    }

    /// A port nobody listens on: an I/O failure (retried by the SDK), not a time-out. The port
    /// stays bound, never listening, so that nothing else started meanwhile can be given it.
    #[tokio::test]
    async fn a_refused_connection_is_an_io_failure() {
        let bound = tokio::net::TcpSocket::new_v4().expect("socket");
        bound
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
        let port = bound.local_addr().expect("address").port();
        let err = connector((Some(Duration::from_secs(5)), None))
            .call(get(&format!("http://127.0.0.1:{port}/")))
            .await
            .expect_err("refused");
        assert!(err.is_io(), "{err:?}");
        assert!(!err.is_timeout(), "{err:?}");
    }

    /// Each pair of time-outs has one connector (one pool), built once.
    #[test]
    fn one_connector_per_pair_of_time_outs() {
        let https = Https {
            roots: TrustRoots::Compiled,
            tls: OnceLock::new(),
            connectors: RwLock::new(Vec::new()),
        };
        let short = (Some(Duration::from_secs(1)), None);
        let long = (Some(Duration::from_secs(2)), Some(Duration::from_secs(3)));
        https.connector(short);
        https.connector(long);
        https.connector(short);
        assert_eq!(https.connectors.read().expect("lock").len(), 2);
    }
}
