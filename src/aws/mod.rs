//! AWS: credential resolution, named profiles, masking of secrets, the STS calls, SigV4 signing
//! and checking ([`sigv4`]), and the classification of every AWS failure by cause ([`error`]).

pub mod credentials;
pub mod error;
mod https;
pub mod profiles;
pub mod secret;
pub mod sigv4;
pub mod sts;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

pub use https::https_client;

/// The certificates AWS endpoints are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustRoots {
    /// Mozilla's root program (from the CCADB, through the `webpki-root-certs` crate), compiled
    /// into the binary as the trust anchors rustls checks against (made by build.rs): nothing
    /// to read, decode or parse at run time. They change when that crate is updated
    /// (`cargo update -p webpki-root-certs`) and the function is built and deployed again.
    Compiled,
    /// The system's bundle, read at run time; honours `SSL_CERT_FILE` and `SSL_CERT_DIR` (a
    /// private CA for a VPC endpoint or a TLS-inspecting proxy).
    System,
    /// The bundle `AWS_CA_BUNDLE` names, and nothing else, as the AWS CLI does.
    Bundle(CaBundle),
}

impl TrustRoots {
    /// The roots as rustls checks certificates against them: the compiled-in anchors, the
    /// system's read as rustls-native-certs reads them (each one it cannot load is logged), a
    /// bundle's as they were parsed when it was checked.
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut store = rustls::RootCertStore::empty();
        match self {
            TrustRoots::Compiled => store.extend(anchors::COMPILED_ANCHORS.iter().cloned()),
            TrustRoots::System => {
                let loaded = rustls_native_certs::load_native_certs();
                for error in &loaded.errors {
                    tracing::warn!(error = %error, "a system root certificate could not be loaded");
                }
                let _ = store.add_parsable_certificates(loaded.certs);
            }
            TrustRoots::Bundle(bundle) => store = bundle.root_store(),
        }
        store
    }
}

mod anchors {
    include!(concat!(env!("OUT_DIR"), "/trust_anchors.rs"));
}

/// A CA bundle of one's own, named by `AWS_CA_BUNDLE` as the AWS CLI and the other AWS SDKs name
/// it (the Rust SDK does not read it): PEM certificates, read, checked and parsed once, at
/// start, so that a bundle that cannot be used is refused then, in one sentence, and not at the
/// first AWS call.
#[derive(Clone)]
pub struct CaBundle {
    pem: Arc<[u8]>,
    /// The certificates as rustls took them when the bundle was checked.
    roots: Arc<rustls::RootCertStore>,
}

impl CaBundle {
    /// Reads the bundle at `path`; the error, one sentence, says why it cannot be used.
    pub fn read(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path)
            .map_err(|err| format!("{} could not be read ({err})", path.display()))?;
        Self::from_pem(pem).map_err(|reason| format!("{}: {reason}", path.display()))
    }

    /// Checks `pem` as the SDK and rustls will read it: every certificate section decodes, at
    /// least one is there, and each is one rustls takes as a root.
    pub fn from_pem(pem: Vec<u8>) -> Result<Self, String> {
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "a certificate in it is not valid PEM".to_owned())?;
        if certificates.is_empty() {
            return Err("it holds no PEM certificate".to_owned());
        }
        let mut store = rustls::RootCertStore::empty();
        for (at, certificate) in certificates.into_iter().enumerate() {
            store.add(certificate).map_err(|_| {
                format!(
                    "certificate {} of it is not one a CA can be trusted by",
                    at + 1
                )
            })?;
        }
        Ok(Self {
            pem: pem.into(),
            roots: Arc::new(store),
        })
    }

    /// The certificates as a rustls root store (the stdio proxy's own clients).
    pub fn root_store(&self) -> rustls::RootCertStore {
        (*self.roots).clone()
    }
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaBundle({} certificates)", self.roots.len())
    }
}

impl PartialEq for CaBundle {
    fn eq(&self, other: &Self) -> bool {
        self.pem == other.pem
    }
}

impl Eq for CaBundle {}

/// An AWS client built on first use. Building an SDK client reads its endpoint rules (the
/// partitions' JSON, compiled regular expressions) and its configuration; doing it on the
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
pub(crate) mod tests {

    use super::*;

    /// The compiled-in anchors are Mozilla's roots, every one, exactly as rustls-webpki takes
    /// each certificate at run time: build.rs left none out and changed none.
    #[test]
    fn the_compiled_anchors_are_every_mozilla_root() {
        let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS;
        assert!(roots.len() > 100, "{} roots", roots.len());
        let parsed: Vec<_> = roots
            .iter()
            .map(|cert| webpki::anchor_from_trusted_cert(cert).expect("a trust anchor"))
            .collect();
        assert_eq!(anchors::COMPILED_ANCHORS, &parsed[..]);
        assert_eq!(TrustRoots::Compiled.root_store().roots, parsed);
    }

    /// The first `roots` of Mozilla's roots as a PEM bundle.
    pub(crate) fn compiled_pem(roots: usize) -> Vec<u8> {
        use base64::Engine;
        let mut pem = Vec::new();
        for root in &webpki_root_certs::TLS_SERVER_ROOT_CERTS[..roots] {
            pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
            let encoded = base64::engine::general_purpose::STANDARD.encode(root.as_ref());
            for line in encoded.as_bytes().chunks(64) {
                pem.extend_from_slice(line);
                pem.push(b'\n');
            }
            pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
        }
        pem
    }

    /// A bundle is taken only when rustls can use every certificate in it; otherwise the reason
    /// is one sentence, given at start.
    #[test]
    fn a_ca_bundle_is_checked_before_it_is_used() {
        let bundle = CaBundle::from_pem(compiled_pem(3)).expect("three Mozilla roots");
        assert_eq!(bundle.root_store().len(), 3);
        assert_eq!(format!("{bundle:?}"), "CaBundle(3 certificates)");

        let mut with_key = compiled_pem(1);
        with_key
            .extend_from_slice(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
        assert_eq!(
            CaBundle::from_pem(with_key)
                .expect("a key is skipped")
                .root_store()
                .len(),
            1
        );

        let refused = [
            (b"".to_vec(), "it holds no PEM certificate"),
            (b"not PEM at all\n".to_vec(), "it holds no PEM certificate"),
            (
                b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_vec(),
                "a certificate in it is not valid PEM",
            ),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n".to_vec(),
                "a certificate in it is not valid PEM",
            ),
            (
                [
                    compiled_pem(1),
                    b"-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n".to_vec(),
                ]
                .concat(),
                "certificate 2 of it is not one a CA can be trusted by",
            ),
        ];
        for (pem, reason) in refused {
            assert_eq!(CaBundle::from_pem(pem).unwrap_err(), reason);
        }

        let missing = std::env::temp_dir().join("mcp-aws-tools-no-such-bundle.pem");
        let err = CaBundle::read(&missing).unwrap_err();
        assert!(
            err.starts_with(&format!("{} could not be read (", missing.display())),
            "{err}"
        );
    }

    /// A TLS endpoint (here STS, answered by a server on loopback) whose certificate comes from a
    /// private CA: trusted through a bundle holding that CA, refused with the compiled-in roots.
    #[tokio::test]
    async fn an_endpoint_of_a_private_ca_is_trusted_through_its_bundle() {
        use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
        use aws_smithy_types::retry::RetryConfig;

        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf");
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
        )
        .expect("server config");
        let port = sts_over_tls(Arc::new(server));

        let call = |roots: TrustRoots| async move {
            let config = aws_sdk_sts::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .http_client(https_client(roots))
                .retry_config(RetryConfig::disabled())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::for_tests())
                .endpoint_url(format!("https://127.0.0.1:{port}"))
                .build();
            aws_sdk_sts::Client::from_conf(config)
                .get_caller_identity()
                .send()
                .await
        };
        let bundle = CaBundle::from_pem(ca.pem().into_bytes()).expect("the CA");
        let identity = call(TrustRoots::Bundle(bundle)).await.expect("trusted");
        assert_eq!(identity.account(), Some("111122223333"));

        let refused = call(TrustRoots::Compiled)
            .await
            .expect_err("not a Mozilla root");
        let chain = {
            let mut text = String::new();
            let mut at: Option<&(dyn std::error::Error + 'static)> = Some(&refused);
            while let Some(err) = at {
                text.push_str(&err.to_string());
                text.push('\n');
                at = err.source();
            }
            text
        };
        assert!(chain.contains("UnknownIssuer"), "{chain}");
    }

    /// Answers every GetCallerIdentity over TLS with `config`, on a thread; returns the port.
    fn sts_over_tls(config: Arc<rustls::ServerConfig>) -> u16 {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let Ok(connection) = rustls::ServerConnection::new(config.clone()) else {
                    continue;
                };
                let mut tls = rustls::StreamOwned::new(connection, tcp);
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // The head, then as much body as it announces; a refused handshake ends here.
                let complete = loop {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => break false,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                    let text = String::from_utf8_lossy(&request).to_lowercase();
                    if let Some(head) = text.find("\r\n\r\n") {
                        let length = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= head + 4 + length {
                            break true;
                        }
                    }
                };
                if !complete {
                    continue;
                }
                let body = "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>arn:aws:iam::111122223333:user/bundle</Arn><UserId>AIDAEXAMPLEBUNDLE</UserId><Account>111122223333</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>b</RequestId></ResponseMetadata></GetCallerIdentityResponse>";
                let _ = write!(
                    tls,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        port
    }
}
