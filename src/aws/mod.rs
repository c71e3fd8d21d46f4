//! AWS: credential resolution, named profiles, masking of secrets, the STS calls, SigV4 signing
//! and checking ([`sigv4`]), and the classification of every AWS failure by cause ([`error`]).

pub mod credentials;
pub mod error;
pub mod profiles;
pub mod secret;
pub mod sigv4;
pub mod sts;

use std::sync::{LazyLock, OnceLock};

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::{
    RuntimeComponents, RuntimeComponentsBuilder,
};
use aws_smithy_types::config_bag::ConfigBag;

/// The certificates AWS endpoints are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
    /// Mozilla's root program (from the CCADB, through the `webpki-root-certs` crate), compiled
    /// into the binary: nothing to read or scan at start-up. They change when that crate is
    /// updated (`cargo update -p webpki-root-certs`) and the function is built and deployed
    /// again.
    Compiled,
    /// The system's bundle, read at run time; honours `SSL_CERT_FILE` and `SSL_CERT_DIR` (a
    /// private CA for a VPC endpoint or a TLS-inspecting proxy).
    System,
}

/// One HTTPS client for every AWS call: hyper with rustls on ring, trusting `roots`. Built on
/// first use ([`LazyHttps`]): configuring the SDK at start-up costs no TLS work.
pub fn https_client(roots: TrustRoots) -> SharedHttpClient {
    SharedHttpClient::new(LazyHttps {
        roots,
        client: OnceLock::new(),
    })
}

/// The SDK's HTTPS client, built when an SDK client is first built or a request first needs a
/// connector, not when the SDK's configuration is loaded at start-up. Building it writes the
/// compiled-in roots out as PEM and hands them to the SDK's trust store (about 0.2 ms), so at
/// start-up it would delay every cold start, `tools/list`'s included.
#[derive(Debug)]
struct LazyHttps {
    roots: TrustRoots,
    client: OnceLock<SharedHttpClient>,
}

impl LazyHttps {
    fn client(&self) -> &SharedHttpClient {
        self.client.get_or_init(|| {
            let store = match self.roots {
                TrustRoots::Compiled => {
                    TrustStore::empty().with_pem_certificate(COMPILED_ROOTS.as_slice())
                }
                TrustRoots::System => TrustStore::default(),
            };
            let context = TlsContext::builder()
                .with_trust_store(store)
                .build()
                .unwrap_or_else(|_| TlsContext::default());
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .tls_context(context)
                .build_https()
        })
    }
}

impl HttpClient for LazyHttps {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.client().http_connector(settings, components)
    }

    /// The SDK's client builds a connector here, when an SDK client is built, and throws it
    /// away: that loads the system's roots ahead of the first request. With the compiled-in
    /// roots there is nothing to load, and each connector built decodes their PEM again (about
    /// 0.5 ms), so the first request, which builds the connector it keeps, would pay twice.
    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        match self.roots {
            TrustRoots::Compiled => Ok(()),
            TrustRoots::System => self.client().validate_base_client_config(components, cfg),
        }
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.client().validate_final_config(components, cfg)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.client().connector_metadata()
    }
}

/// The compiled-in roots as one PEM bundle, the form the SDK's trust store takes (about 0.2 ms
/// to write, once per process).
static COMPILED_ROOTS: LazyLock<Vec<u8>> = LazyLock::new(|| {
    use base64::Engine;
    let base64 = base64::engine::general_purpose::STANDARD;
    let mut pem = Vec::with_capacity(200 * 1024);
    for root in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in base64.encode(root.as_ref()).as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
});

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

#[cfg(test)]
mod tests {
    use rustls_pki_types::pem::PemObject;

    use super::*;

    #[test]
    fn the_compiled_roots_are_mozillas_and_every_one_parses() {
        let parsed: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(&COMPILED_ROOTS)
            .collect::<Result<_, _>>()
            .expect("PEM");
        assert_eq!(parsed.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(parsed.len() > 100, "{} roots", parsed.len());
        for (ours, theirs) in parsed.iter().zip(webpki_root_certs::TLS_SERVER_ROOT_CERTS) {
            assert_eq!(ours.as_ref(), theirs.as_ref());
            webpki::anchor_from_trusted_cert(ours).expect("a trust anchor");
        }
    }
}
