//! Sealing: the secrets a connection or handle keeps beyond one message (a secret access key, a
//! session token) are encrypted before they reach the session store, and opened only where a
//! tool call needs them.
//!
//! AES-256-GCM (ring), with associated data that binds a sealed value to what it belongs to: the
//! function, the scope (connection id or environment handle) and the field. A value copied to
//! another connection's item, another field or another function's table does not open.
//!
//! Keys: locally (`serve`, `invoke`, tests) one random key, made when the process starts and
//! never written anywhere. In Lambda with `KMS_KEY_ID`, envelope encryption: each instance asks
//! KMS for one data key (GenerateDataKey, with the function in the encryption context) and
//! seals with it; the data key's KMS-encrypted form travels inside every sealed value, and an
//! instance that meets another instance's data key asks KMS to decrypt it once and keeps it. A
//! tool call so costs no KMS call once an instance has seen the data keys in use: at most one
//! per data key per instance, never one per message.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::OnceCell;

use crate::aws::OnFirstUse;
use crate::aws::error::AwsError;

/// The first byte of every sealed value: the format.
const VERSION: u8 = 1;
/// Marks the process's own key, in place of a KMS-encrypted data key.
const LOCAL_KEY: &[u8] = b"local";
/// Data keys of other instances kept per instance (each one is a KMS call to learn).
const MAX_DATA_KEYS: usize = 256;

/// Why a value could not be sealed or opened. Never carries the value.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the sealed value is damaged or belongs elsewhere")]
    Invalid,
    #[error("the system's random source failed")]
    Random,
    #[error("AWS KMS: {0}")]
    Kms(#[from] AwsError),
}

/// What a sealed value belongs to, as associated data: it opens only there.
pub struct Binding<'a> {
    pub function: &'a str,
    pub scope: &'a str,
    pub field: &'a str,
}

impl Binding<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32 + self.function.len() + self.scope.len());
        for part in [
            "mcp-aws-tools/sealed/v1",
            self.function,
            self.scope,
            self.field,
        ] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// KMS as the keeper of data keys.
pub struct Kms {
    client: OnFirstUse<aws_sdk_kms::Client>,
    key_id: String,
    /// The encryption context every data key is bound to (`function`, `service`).
    context: HashMap<String, String>,
}

impl Kms {
    pub fn new(client: OnFirstUse<aws_sdk_kms::Client>, key_id: String, function: &str) -> Self {
        let context = HashMap::from([
            ("service".to_owned(), "mcp-aws-tools".to_owned()),
            ("function".to_owned(), function.to_owned()),
        ]);
        Self {
            client,
            key_id,
            context,
        }
    }
}

/// This instance's data key: its plaintext (as a key) and its KMS-encrypted form.
struct DataKey {
    key: Arc<LessSafeKey>,
    encrypted: Vec<u8>,
}

enum Keys {
    /// One key for the process, made at start.
    Local(Arc<LessSafeKey>),
    Kms(Box<KmsKeys>),
}

/// The data keys of envelope encryption: this instance's, and those of others it has met.
struct KmsKeys {
    kms: Kms,
    own: OnceCell<DataKey>,
    /// Read without a lock; a key met for the first time copies it with the key added.
    known: ArcSwap<HashMap<Vec<u8>, Arc<LessSafeKey>>>,
}

pub struct Sealer {
    keys: Keys,
    random: SystemRandom,
    /// KMS calls made (GenerateDataKey and Decrypt), for `/api/metrics` and the benchmarks.
    kms_calls: AtomicU64,
}

impl Sealer {
    /// A process-local key. `serve --instances N` shares one: instances of one process.
    pub fn local(key: Arc<LessSafeKey>) -> Self {
        Self {
            keys: Keys::Local(key),
            random: SystemRandom::new(),
            kms_calls: AtomicU64::new(0),
        }
    }

    /// A fresh random key, for [`Sealer::local`].
    pub fn new_local_key() -> Result<Arc<LessSafeKey>, SealError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SealError::Random)?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::Random)?;
        bytes.fill(0);
        Ok(Arc::new(LessSafeKey::new(key)))
    }

    /// Envelope encryption under a KMS key.
    pub fn kms(kms: Kms) -> Self {
        Self {
            keys: Keys::Kms(Box::new(KmsKeys {
                kms,
                own: OnceCell::new(),
                known: ArcSwap::default(),
            })),
            random: SystemRandom::new(),
            kms_calls: AtomicU64::new(0),
        }
    }

    pub fn kms_calls(&self) -> u64 {
        self.kms_calls.load(Ordering::Relaxed)
    }

    /// Seals `secret` for `binding`: version, key reference, nonce, ciphertext and tag.
    pub async fn seal(&self, binding: &Binding<'_>, secret: &str) -> Result<Vec<u8>, SealError> {
        let (key, reference) = match &self.keys {
            Keys::Local(key) => (key.clone(), LOCAL_KEY.to_vec()),
            Keys::Kms(keys) => {
                let own = keys
                    .own
                    .get_or_try_init(|| Box::pin(self.generate_data_key(&keys.kms)))
                    .await?;
                (own.key.clone(), own.encrypted.clone())
            }
        };
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut sealed = Vec::with_capacity(3 + reference.len() + NONCE_LEN + secret.len() + 16);
        sealed.push(VERSION);
        sealed.extend_from_slice(&(reference.len() as u16).to_be_bytes());
        sealed.extend_from_slice(&reference);
        sealed.extend_from_slice(&nonce);
        let mut in_out = secret.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(binding.aad()),
            &mut in_out,
        )
        .map_err(|_| SealError::Invalid)?;
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Opens a sealed value for `binding`; fails if it was sealed for anything else, or altered.
    pub async fn open(&self, binding: &Binding<'_>, sealed: &[u8]) -> Result<String, SealError> {
        let [version, high, low, rest @ ..] = sealed else {
            return Err(SealError::Invalid);
        };
        if *version != VERSION {
            return Err(SealError::Invalid);
        }
        let length = usize::from(u16::from_be_bytes([*high, *low]));
        if rest.len() < length + NONCE_LEN + 16 {
            return Err(SealError::Invalid);
        }
        let (reference, rest) = rest.split_at(length);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let key = self.key_for(reference).await?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Invalid)?;
        let mut in_out = ciphertext.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(binding.aad()), &mut in_out)
            .map_err(|_| SealError::Invalid)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Invalid)
    }

    async fn key_for(&self, reference: &[u8]) -> Result<Arc<LessSafeKey>, SealError> {
        match &self.keys {
            Keys::Local(key) if reference == LOCAL_KEY => Ok(key.clone()),
            Keys::Local(_) => Err(SealError::Invalid),
            Keys::Kms(keys) => {
                let KmsKeys { kms, own, known } = &**keys;
                if let Some(own) = own.get()
                    && own.encrypted == reference
                {
                    return Ok(own.key.clone());
                }
                if let Some(key) = known.load().get(reference) {
                    return Ok(key.clone());
                }
                // Boxed: the KMS call's future is kilobytes, and every read of a connection's
                // state would otherwise carry its size.
                let key = Box::pin(self.decrypt_data_key(kms, reference)).await?;
                known.rcu(|known| {
                    let mut known = if known.len() >= MAX_DATA_KEYS {
                        HashMap::new()
                    } else {
                        HashMap::clone(known)
                    };
                    known.insert(reference.to_vec(), key.clone());
                    known
                });
                Ok(key)
            }
        }
    }

    async fn generate_data_key(&self, kms: &Kms) -> Result<DataKey, SealError> {
        self.kms_calls.fetch_add(1, Ordering::Relaxed);
        let output = kms
            .client
            .get()
            .generate_data_key()
            .key_id(&kms.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(kms.context.clone()))
            .send()
            .await
            .map_err(|err| AwsError::logged_sdk("AWS KMS", &err))?;
        let (Some(plaintext), Some(encrypted)) = (output.plaintext, output.ciphertext_blob) else {
            return Err(SealError::Invalid);
        };
        Ok(DataKey {
            key: key_from(plaintext)?,
            encrypted: encrypted.into_inner(),
        })
    }

    async fn decrypt_data_key(
        &self,
        kms: &Kms,
        encrypted: &[u8],
    ) -> Result<Arc<LessSafeKey>, SealError> {
        self.kms_calls.fetch_add(1, Ordering::Relaxed);
        let output = kms
            .client
            .get()
            .decrypt()
            .key_id(&kms.key_id)
            .ciphertext_blob(Blob::new(encrypted.to_vec()))
            .set_encryption_context(Some(kms.context.clone()))
            .send()
            .await
            .map_err(|err| AwsError::logged_sdk("AWS KMS", &err))?;
        key_from(output.plaintext.ok_or(SealError::Invalid)?)
    }
}

fn key_from(plaintext: Blob) -> Result<Arc<LessSafeKey>, SealError> {
    let mut bytes = plaintext.into_inner();
    let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::Invalid);
    bytes.fill(0);
    Ok(Arc::new(LessSafeKey::new(key?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::local(Sealer::new_local_key().unwrap())
    }

    const CONNECTION_A: Binding<'static> = Binding {
        function: "f",
        scope: "connection:A",
        field: "secret_access_key",
    };

    #[tokio::test]
    async fn a_sealed_value_opens_only_where_it_belongs() {
        let sealer = sealer();
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let sealed = sealer.seal(&CONNECTION_A, secret).await.unwrap();
        assert!(
            !sealed
                .windows(8)
                .any(|w| secret.as_bytes().windows(8).any(|s| s == w))
        );
        assert_eq!(sealer.open(&CONNECTION_A, &sealed).await.unwrap(), secret);
        for elsewhere in [
            Binding {
                scope: "connection:B",
                ..CONNECTION_A
            },
            Binding {
                field: "session_token",
                ..CONNECTION_A
            },
            Binding {
                function: "g",
                ..CONNECTION_A
            },
        ] {
            assert!(matches!(
                sealer.open(&elsewhere, &sealed).await,
                Err(SealError::Invalid)
            ));
        }
        // Another process's key opens nothing.
        assert!(sealer_other_opens_nothing(&sealed).await);
    }

    async fn sealer_other_opens_nothing(sealed: &[u8]) -> bool {
        sealer().open(&CONNECTION_A, sealed).await.is_err()
    }

    #[tokio::test]
    async fn altered_or_truncated_values_do_not_open() {
        let sealer = sealer();
        let sealed = sealer.seal(&CONNECTION_A, "secret-value").await.unwrap();
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 1;
            assert!(
                sealer.open(&CONNECTION_A, &altered).await.is_err(),
                "byte {i}"
            );
            assert!(
                sealer.open(&CONNECTION_A, &sealed[..i]).await.is_err(),
                "cut at {i}"
            );
        }
    }

    #[tokio::test]
    async fn each_sealing_uses_a_fresh_nonce() {
        let sealer = sealer();
        let a = sealer.seal(&CONNECTION_A, "same").await.unwrap();
        let b = sealer.seal(&CONNECTION_A, "same").await.unwrap();
        assert_ne!(a, b);
    }
}
