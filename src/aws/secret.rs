//! Secrets and the only functions that turn credential values into something showable.
//!
//! The reference document's masking rules: an access key id shows its first 10 characters
//! followed by `...`; a session token its first 20 followed by `...`, and only when the caller
//! asks for it. A secret access key is never shown, not even in part: always `***`.

use std::fmt;

/// What a secret access key is always shown as.
pub const MASKED_SECRET: &str = "***";

/// A secret value (secret access key, session token). It cannot be serialized, its `Debug` and
/// `Display` print `***`, and [`Secret::expose`] is the only way to reach the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for signing requests and fingerprinting; never for output.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASKED_SECRET)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASKED_SECRET)
    }
}

/// An access key id as shown: its first 10 characters and `...`.
pub fn mask_access_key_id(access_key_id: &str) -> String {
    with_ellipsis(access_key_id_shown(access_key_id))
}

/// A session token as shown when the caller asked for it: its first 20 characters and `...`.
pub fn mask_session_token(session_token: &str) -> String {
    with_ellipsis(session_token_shown(session_token))
}

/// The part of an access key id that its mask shows, before the `...`.
pub fn access_key_id_shown(access_key_id: &str) -> &str {
    prefix(access_key_id, 10)
}

/// The part of a session token that its mask shows, before the `...`.
pub fn session_token_shown(session_token: &str) -> &str {
    prefix(session_token, 20)
}

fn with_ellipsis(shown: &str) -> String {
    let mut out = String::with_capacity(shown.len() + 3);
    out.push_str(shown);
    out.push_str("...");
    out
}

/// The first `keep` characters of `value`, or all of it.
fn prefix(value: &str, keep: usize) -> &str {
    let end = match value.as_bytes().get(..keep) {
        // No more bytes than `keep` is no more characters.
        None => value.len(),
        // The usual case (key ids and tokens are ASCII): `keep` bytes are `keep` characters.
        Some(prefix) if prefix.is_ascii() => keep,
        Some(_) => value
            .char_indices()
            .nth(keep)
            .map_or(value.len(), |(at, _)| at),
    };
    &value[..end]
}

/// Removes every occurrence of the given secrets from a text that came from elsewhere (an AWS
/// error message, say) before it is shown or logged, and shows the access key id only in its
/// masked form.
pub fn scrub(text: &str, secrets: &[&str], access_key_id: &str) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(*secret) {
            out = out.replace(*secret, MASKED_SECRET);
        }
    }
    if access_key_id.len() > 10 && out.contains(access_key_id) {
        out = out.replace(access_key_id, &mask_access_key_id(access_key_id));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_keeps_ten_characters() {
        assert_eq!(mask_access_key_id("AKIAIOSFODNN7EXAMPLE"), "AKIAIOSFOD...");
    }

    #[test]
    fn session_token_keeps_twenty_characters() {
        assert_eq!(
            mask_session_token("FQoGZXIvYXdzEJr//////////wEaDOq1Bmore"),
            "FQoGZXIvYXdzEJr/////..."
        );
    }

    #[test]
    fn short_and_multibyte_values_do_not_panic() {
        assert_eq!(mask_access_key_id("AKIA"), "AKIA...");
        assert_eq!(mask_access_key_id("ééééééééééééé"), "éééééééééé...");
        assert_eq!(mask_access_key_id("AKIAé1234567"), "AKIAé12345...");
        assert_eq!(mask_access_key_id("AKIA123456"), "AKIA123456...");
        assert_eq!(mask_session_token(""), "...");
        assert_eq!(access_key_id_shown("AKIAé1234567"), "AKIAé12345");
        assert_eq!(session_token_shown("short"), "short");
    }

    #[test]
    fn secret_never_prints() {
        let secret = Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(secret.expose(), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    }

    #[test]
    fn scrub_removes_secrets_from_foreign_text() {
        let text = "signature for key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY failed";
        assert_eq!(
            scrub(
                text,
                &["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
                "AKIAIOSFODNN7EXAMPLE"
            ),
            "signature for key *** failed"
        );
        assert_eq!(
            scrub(
                "key AKIAIOSFODNN7EXAMPLE is unknown",
                &[],
                "AKIAIOSFODNN7EXAMPLE"
            ),
            "key AKIAIOSFOD... is unknown"
        );
    }
}
