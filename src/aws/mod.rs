//! AWS: credential resolution, named profiles, masking of secrets, the STS calls, SigV4 signing
//! and checking ([`sigv4`]), and the classification of every AWS failure by cause ([`error`]).

pub mod credentials;
pub mod error;
pub mod profiles;
pub mod secret;
pub mod sigv4;
pub mod sts;

use std::sync::OnceLock;

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// One HTTPS client for every AWS call: hyper with rustls on ring.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// An AWS client built on first use. Building an SDK client loads the system's TLS root
/// certificates (the SDK does it then, so that the first request does not); doing it on the
/// first AWS call instead of at start-up keeps that cost out of the cold start of every message
/// that needs no AWS call (`initialize`, `tools/list`, `get-credentials`, ...).
pub struct OnFirstUse<T> {
    make: Box<dyn Fn() -> T + Send + Sync>,
    value: OnceLock<T>,
}

impl<T> OnFirstUse<T> {
    pub fn new(make: impl Fn() -> T + Send + Sync + 'static) -> Self {
        Self {
            make: Box::new(make),
            value: OnceLock::new(),
        }
    }

    /// Already built (tests pass mock clients).
    pub fn ready(value: T) -> Self
    where
        T: Clone + Send + Sync + 'static,
    {
        let cell = OnceLock::new();
        let _ = cell.set(value.clone());
        Self {
            make: Box::new(move || value.clone()),
            value: cell,
        }
    }

    pub fn get(&self) -> &T {
        self.value.get_or_init(|| (self.make)())
    }
}
