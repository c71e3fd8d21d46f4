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

/// A credential value as shown: the part its mask keeps, written with `...` after it, or
/// nothing of it (`***`). The kept part is borrowed from the value, or owned where a shown
/// answer is kept; either way it is what the answer shows, never more.
#[derive(Clone, PartialEq, Eq)]
pub enum Masked<S> {
    Prefix(S),
    Hidden,
}

impl<'a> Masked<&'a str> {
    /// An access key id as shown: its first 10 characters and `...`.
    pub fn access_key_id(access_key_id: &'a str) -> Self {
        Masked::Prefix(prefix(access_key_id, 10))
    }

    /// A session token as shown when the caller asked for it: its first 20 characters and
    /// `...`.
    pub fn session_token(session_token: &'a str) -> Self {
        Masked::Prefix(prefix(session_token, 20))
    }
}

impl<S> Masked<S> {
    /// The same mask with its kept part held as `to` makes it.
    pub fn map<'a, T>(&'a self, to: impl FnOnce(&'a S) -> T) -> Masked<T> {
        match self {
            Masked::Prefix(shown) => Masked::Prefix(to(shown)),
            Masked::Hidden => Masked::Hidden,
        }
    }
}

impl<S: AsRef<str>> fmt::Display for Masked<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Masked::Prefix(shown) => {
                f.write_str(shown.as_ref())?;
                f.write_str("...")
            }
            Masked::Hidden => f.write_str(MASKED_SECRET),
        }
    }
}

impl<S: AsRef<str>> serde::Serialize for Masked<S> {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.collect_str(self)
    }
}

/// An access key id as shown: its first 10 characters and `...`.
pub fn mask_access_key_id(access_key_id: &str) -> String {
    Masked::access_key_id(access_key_id).to_string()
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
            Masked::session_token("FQoGZXIvYXdzEJr//////////wEaDOq1Bmore").to_string(),
            "FQoGZXIvYXdzEJr/////..."
        );
    }

    #[test]
    fn short_and_multibyte_values_do_not_panic() {
        assert_eq!(mask_access_key_id("AKIA"), "AKIA...");
        assert_eq!(mask_access_key_id("ééééééééééééé"), "éééééééééé...");
        assert_eq!(mask_access_key_id("AKIAé1234567"), "AKIAé12345...");
        assert_eq!(mask_access_key_id("AKIA123456"), "AKIA123456...");
        assert_eq!(Masked::session_token("").to_string(), "...");
        assert_eq!(Masked::<&str>::Hidden.to_string(), "***");
        assert_eq!(
            serde_json::to_string(&Masked::access_key_id("AKIAé1234567")).unwrap(),
            "\"AKIAé12345...\""
        );
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
