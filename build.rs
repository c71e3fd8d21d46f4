//! Mozilla's root certificates (the `webpki-root-certs` crate, from the CCADB) as the trust
//! anchors rustls checks against, extracted here by rustls-webpki at build time instead of by
//! the function at its first AWS call (about 0.37 million instructions on a cold start). The
//! `webpki-roots` crate ships anchors made the same way, but its copy in this registry lags:
//! it still trusts two roots Mozilla has since removed.
//!
//! Writes `$OUT_DIR/trust_anchors.rs`: `COMPILED_ANCHORS`, one `TrustAnchor` per root, in the
//! crate's order. A root rustls-webpki cannot take fails the build rather than being left out.

use std::fmt::Write as _;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let mut out = String::from(
        "/// Mozilla's roots as trust anchors, made by build.rs from `webpki-root-certs`.\n\
         pub static COMPILED_ANCHORS: &[rustls::pki_types::TrustAnchor<'static>] = &[\n",
    );
    for (i, cert) in webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().enumerate() {
        let anchor = webpki::anchor_from_trusted_cert(cert).unwrap_or_else(|err| {
            panic!("root {i} of webpki-root-certs is not a trust anchor: {err:?}")
        });
        out.push_str("    rustls::pki_types::TrustAnchor {\n");
        out.push_str("        subject: ");
        der(&mut out, &anchor.subject);
        out.push_str("        subject_public_key_info: ");
        der(&mut out, &anchor.subject_public_key_info);
        out.push_str("        name_constraints: ");
        match &anchor.name_constraints {
            Some(constraints) => {
                out.push_str("Some(");
                der(&mut out, constraints);
                out.truncate(out.len() - 2);
                out.push_str("),\n");
            }
            None => out.push_str("None,\n"),
        }
        out.push_str("    },\n");
    }
    out.push_str("];\n");
    let path =
        std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("trust_anchors.rs");
    std::fs::write(&path, out).expect("write trust_anchors.rs");
}

/// `bytes` as a `Der` borrowing a byte-string literal, followed by `,\n`.
fn der(out: &mut String, bytes: &[u8]) {
    out.push_str("rustls::pki_types::Der::from_slice(b\"");
    for byte in bytes {
        let _ = write!(out, "\\x{byte:02x}");
    }
    out.push_str("\"),\n");
}
