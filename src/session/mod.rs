//! Session state: what a WebSocket connection, or an environment handle, keeps beyond one
//! message: its `set-environment` overrides (the secrets sealed), the caller's identity, and the
//! bucket of the credential-testing tools. It lives in a [`SessionStore`] that every instance
//! shares: in memory for one instance (`serve`, `invoke`), or a DynamoDB table (`SESSION_TABLE`)
//! for a Lambda function with any concurrency.
//!
//! Every tool call that needs credentials reads its scope's state from the store, strongly
//! consistent, so an override set on one instance is seen by the next message on any other;
//! `ping`, `tools/list` and `list-profiles` read nothing. When the store cannot be read, the call
//! is refused (`session_unavailable`): it never runs as if nothing had been set.
//!
//! Handles: `set-environment` also answers an `environment_id`, an opaque random id (128 bits)
//! naming a stored copy of the overrides, bound to the caller and expiring; the
//! credential-using tools take it as an argument. This is how a caller without a connection
//! (Streamable HTTP, MCP 2026-07-28) keeps credentials from one call to the next.

pub mod dynamodb;
pub mod limits;
pub mod memory;
pub mod seal;

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use base64::Engine;
use ring::rand::SecureRandom;

pub use limits::{Gcra, RateLimited};
use seal::{Binding, Sealer};

use crate::config::RateLimits;

/// Whose stored state. Its id is borrowed where the message holds it (every tool call names
/// its connection's scope twice), and owned where it is made.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope<'a> {
    Connection(Cow<'a, str>),
    /// An environment handle (`environment_id`).
    Environment(Cow<'a, str>),
    /// A caller without a connection (Streamable HTTP): only its credential-tool bucket.
    Caller(Cow<'a, str>),
}

impl Scope<'_> {
    /// The store's key.
    pub fn key(&self) -> String {
        let (prefix, id) = self.parts();
        [prefix, id].concat()
    }

    /// `f` of the store's key, written in a buffer of this thread's rather than a new string:
    /// a lookup (every tool call makes two) allocates nothing.
    pub fn with_key<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        thread_local! {
            static KEY: RefCell<String> = const { RefCell::new(String::new()) };
        }
        let (prefix, id) = self.parts();
        KEY.with(|key| match key.try_borrow_mut() {
            Ok(mut key) => {
                key.clear();
                key.push_str(prefix);
                key.push_str(id);
                f(&key)
            }
            // `f` looks up another key: that one gets its own string.
            Err(_) => f(&self.key()),
        })
    }

    fn parts(&self) -> (&'static str, &str) {
        match self {
            Scope::Connection(id) => ("connection#", id),
            Scope::Environment(id) => ("environment#", id),
            Scope::Caller(binding) => ("caller#", binding),
        }
    }
}

/// Who is calling, as API Gateway's request context says (with IAM authorization: the
/// principal's ARN and account), and from where. As tools report it:
/// `{"arn", "account_id", "source_ip"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Caller {
    pub arn: Option<String>,
    pub account_id: Option<String>,
    pub source_ip: Option<String>,
}

impl Caller {
    /// What a handle is bound to: the IAM principal when known, else the source address.
    pub fn binding(&self) -> String {
        match (&self.arn, &self.source_ip) {
            (Some(arn), _) => ["arn:", arn].concat(),
            (None, Some(ip)) => ["ip:", ip].concat(),
            (None, None) => "anonymous".into(),
        }
    }

    pub fn is_known(&self) -> bool {
        self.arn.is_some() || self.source_ip.is_some()
    }

    /// Appends the caller as its `Serialize` writes it, field by field: through serde_json,
    /// which hands the writer each quote, name and colon on its own, it was a tenth of a
    /// get-credentials call.
    pub fn write_json(&self, text: &mut crate::json::Writer) {
        for (name, value) in [
            (r#"{"arn":"#, &self.arn),
            (r#","account_id":"#, &self.account_id),
            (r#","source_ip":"#, &self.source_ip),
        ] {
            text.raw(name);
            match value {
                Some(value) => text.string(value),
                None => text.raw("null"),
            }
        }
        text.raw("}");
    }
}

/// A scope's stored state. Secrets are sealed ([`seal`]): the store never holds them in clear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret: Option<Vec<u8>>,
    pub token: Option<Vec<u8>>,
    /// The caller, as `$connect` (or the call that made a handle) saw it.
    pub caller: Option<Caller>,
    /// What a handle is bound to ([`Caller::binding`]).
    pub binding: Option<String>,
    /// `$connect`'s time, milliseconds since the epoch.
    pub connected_at: Option<i64>,
    /// When the state is void, seconds since the epoch (the table's TTL attribute).
    pub expires_at: u64,
    /// The credential-tool bucket's TAT, microseconds since the epoch.
    pub credential_tat: Option<u64>,
}

/// A change of a scope's overrides: a new region, and/or a new key pair (which replaces the
/// session token too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub region: Option<String>,
    pub credentials: Option<SealedCredentials>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedCredentials {
    pub access_key_id: String,
    pub secret: Vec<u8>,
    pub token: Option<Vec<u8>>,
}

/// The store could not be read or written. The detail is for the log only.
#[derive(Debug, thiserror::Error)]
#[error("the session store failed: {detail}")]
pub struct StoreError {
    pub detail: String,
}

/// What a credential-bucket update found.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    Token,
    Wait(Duration),
}

/// The one interface to the session store; in memory, or a DynamoDB table.
pub enum SessionStore {
    Memory(memory::MemoryStore),
    DynamoDb(dynamodb::DynamoStore),
}

/// The DynamoDB calls' futures hold the SDK's operation state, kilobytes: they are boxed, so
/// that every caller's future (a tool call's, on every message) stays small with either store.
impl SessionStore {
    pub fn name(&self) -> &'static str {
        match self {
            SessionStore::Memory(_) => "memory",
            SessionStore::DynamoDb(_) => "dynamodb",
        }
    }

    /// A scope's state, read strongly consistent; `None` when there is none or it expired.
    pub async fn get(&self, scope: &Scope<'_>) -> Result<Option<Arc<Record>>, StoreError> {
        match self {
            SessionStore::Memory(store) => Ok(store.get(scope)),
            SessionStore::DynamoDb(store) => Ok(Box::pin(store.get(scope)).await?.map(Arc::new)),
        }
    }

    /// Writes a scope's whole state: `$connect` (replacing whatever was there), or a new
    /// handle (only if its id is new).
    pub async fn put(
        &self,
        scope: &Scope<'_>,
        record: &Record,
        only_new: bool,
    ) -> Result<bool, StoreError> {
        match self {
            SessionStore::Memory(store) => Ok(store.put(scope, record, only_new)),
            SessionStore::DynamoDb(store) => Box::pin(store.put(scope, record, only_new)).await,
        }
    }

    /// Changes a scope's overrides; for a handle, only if it is bound to `binding`. False when
    /// there is no such handle (or another caller's).
    pub async fn change(
        &self,
        scope: &Scope<'_>,
        change: &Change,
        expires_at: u64,
        binding: Option<&str>,
    ) -> Result<bool, StoreError> {
        match self {
            SessionStore::Memory(store) => Ok(store.change(scope, change, expires_at, binding)),
            SessionStore::DynamoDb(store) => {
                Box::pin(store.change(scope, change, expires_at, binding)).await
            }
        }
    }

    pub async fn delete(&self, scope: &Scope<'_>) -> Result<(), StoreError> {
        match self {
            SessionStore::Memory(store) => {
                store.delete(scope);
                Ok(())
            }
            SessionStore::DynamoDb(store) => Box::pin(store.delete(scope)).await,
        }
    }

    /// Takes a token from the scope's credential-tool bucket, atomically: two instances taking
    /// at once never both get the last token.
    pub async fn take_token(
        &self,
        scope: &Scope<'_>,
        bucket: &Gcra,
        now_us: u64,
        expires_at: u64,
    ) -> Result<Taken, StoreError> {
        match self {
            SessionStore::Memory(store) => Ok(store.take_token(scope, bucket, now_us, expires_at)),
            SessionStore::DynamoDb(store) => {
                Box::pin(store.take_token(scope, bucket, now_us, expires_at)).await
            }
        }
    }
}

/// Where a message came from: its connection (none over HTTP) and its caller.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub connection_id: Option<String>,
    pub caller: Caller,
    /// The transport declared MCP 2026-07-28 (the `MCP-Protocol-Version` header over HTTP):
    /// the request must carry that revision's `_meta`.
    pub declared_modern: bool,
}

impl Origin {
    /// A connection whose caller is not known (tests, benchmarks, fuzzing).
    pub fn connection(id: &str) -> Self {
        Self {
            connection_id: Some(id.to_owned()),
            caller: Caller::default(),
            declared_modern: false,
        }
    }

    /// The subject of rate limits: the connection, else the caller.
    pub fn subject(&self) -> Scope<'_> {
        match &self.connection_id {
            Some(id) => Scope::Connection(id.into()),
            None => Scope::Caller(self.caller.binding().into()),
        }
    }

    /// For the log: the connection id, or `-`.
    pub fn connection_label(&self) -> &str {
        self.connection_id.as_deref().unwrap_or("-")
    }
}

/// The overrides of a scope, opened, and the caller its state names.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub credentials: Option<Credentials>,
    pub region: Option<String>,
    pub caller: Option<Caller>,
}

/// Why session state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store (or KMS) failed: the call must not run as if nothing had been set.
    #[error(
        "this connection's stored settings could not be read, so the call was not made; try again"
    )]
    Unavailable,
    /// No handle by this id for this caller (or it expired).
    #[error("the environment_id is not known, has expired, or belongs to another caller")]
    UnknownEnvironment,
}

/// Why a call was not admitted.
#[derive(Debug)]
pub enum Refused {
    Limited(RateLimited),
    Unavailable,
}

/// A new or updated handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handle {
    pub id: String,
    pub expires_at: u64,
}

/// Connections live at most two hours (API Gateway's limit); their state a little longer, for
/// a `$disconnect` that comes late.
pub const CONNECTION_TTL: Duration = Duration::from_secs(2 * 60 * 60 + 5 * 60);

/// What every tool call uses: the store, the sealer, and this instance's tool-call buckets.
pub struct Sessions {
    store: Arc<SessionStore>,
    sealer: Arc<Sealer>,
    tools: limits::Local,
    credential_tools: Gcra,
    /// Bound into every sealed value: the function (or `serve`).
    function: String,
    environment_ttl: Duration,
}

/// The in-memory maps' hasher. SipHash, std's default, cost about 200 instructions for a
/// connection's key, twice a tool call; foldhash's quality hasher a fraction of that. Its
/// seed comes from address-space randomization and the clock, and it does not claim to resist
/// keys chosen to collide; none of these maps' keys is a client's choice: connection ids and
/// handles are made by API Gateway or here, and a caller without a connection is its signed
/// ARN or its source address.
type MapHasher = foldhash::quality::RandomState;

/// Shards of the in-memory maps ([`memory::MemoryStore`], [`limits::Local`]): four per worker
/// thread of the runtime that builds them, as dashmap's default is four per CPU, but without
/// asking the system how many CPUs there are (that reads cgroup files, in every cold start).
/// One worker in Lambda, one per core in `serve`; four outside a runtime.
fn shards() -> usize {
    let workers = tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers());
    (workers.max(1) * 4).next_power_of_two()
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Sessions {
    pub fn new(
        store: Arc<SessionStore>,
        sealer: Arc<Sealer>,
        limits: RateLimits,
        function: String,
        environment_ttl: Duration,
    ) -> Self {
        Self {
            store,
            sealer,
            tools: limits::Local::new(limits.tools),
            credential_tools: Gcra::new(limits.credential_tools),
            function,
            environment_ttl,
        }
    }

    pub fn store(&self) -> &SessionStore {
        &self.store
    }

    pub fn kms_calls(&self) -> u64 {
        self.sealer.kms_calls()
    }

    fn unavailable(&self, detail: &dyn std::fmt::Display) -> SessionError {
        tracing::warn!(store = self.store.name(), detail = %detail, "session store unavailable");
        SessionError::Unavailable
    }

    /// `$connect`: fresh state for the connection, with its caller.
    pub async fn connect(
        &self,
        connection_id: &str,
        caller: &Caller,
        connected_at_ms: i64,
    ) -> Result<(), SessionError> {
        let record = Record {
            caller: Some(caller.clone()),
            binding: Some(caller.binding()),
            connected_at: Some(connected_at_ms),
            expires_at: now_s() + CONNECTION_TTL.as_secs(),
            ..Record::default()
        };
        let scope = Scope::Connection(connection_id.into());
        self.store
            .put(&scope, &record, false)
            .await
            .map(|_| ())
            .map_err(|err| self.unavailable(&err))
    }

    /// `$disconnect`: forget what the connection owned, on every instance.
    pub async fn disconnect(&self, connection_id: &str) {
        let scope = Scope::Connection(connection_id.into());
        // The bucket is kept under the scope's key, as `admit` took from it.
        scope.with_key(|key| self.tools.forget(key));
        if let Err(err) = self.store.delete(&scope).await {
            // The state expires with the table's TTL.
            tracing::warn!(store = self.store.name(), detail = %err, "connection state not deleted");
        }
    }

    /// Admits a tool call: a token from this instance's tool-call bucket, and for a
    /// credential-testing tool one from the subject's shared bucket too. A refusal by either
    /// spends no token of the other.
    pub async fn admit(&self, subject: &Scope<'_>, tests_credentials: bool) -> Result<(), Refused> {
        let now = limits::now_us();
        subject
            .with_key(|key| self.tools.take(key, now))
            .map_err(|wait| {
                Refused::Limited(RateLimited {
                    bucket: "tool calls",
                    retry_after: wait,
                })
            })?;
        if !tests_credentials {
            return Ok(());
        }
        let expires_at = now_s() + CONNECTION_TTL.as_secs();
        match self
            .store
            .take_token(subject, &self.credential_tools, now, expires_at)
            .await
        {
            Ok(Taken::Token) => Ok(()),
            Ok(Taken::Wait(wait)) => {
                subject.with_key(|key| self.tools.refund(key));
                Err(Refused::Limited(RateLimited {
                    bucket: "credential-testing tools",
                    retry_after: wait,
                }))
            }
            Err(err) => {
                subject.with_key(|key| self.tools.refund(key));
                let _ = self.unavailable(&err);
                Err(Refused::Unavailable)
            }
        }
    }

    /// The caller a handle is bound to and checked against: on a WebSocket connection the
    /// one `$connect` authenticated (message events need not repeat it), else the request's.
    async fn caller(&self, origin: &Origin) -> Result<Caller, SessionError> {
        let Some(id) = &origin.connection_id else {
            return Ok(origin.caller.clone());
        };
        let record = self
            .store
            .get(&Scope::Connection(id.into()))
            .await
            .map_err(|err| self.unavailable(&err))?;
        Ok(record
            .and_then(|r| r.caller.clone())
            .unwrap_or_else(|| origin.caller.clone()))
    }

    /// The overrides a call runs with: those of `environment_id` when given (it must be bound
    /// to this caller), else the connection's, else none.
    pub async fn read(
        &self,
        origin: &Origin,
        environment_id: Option<&str>,
    ) -> Result<Stored, SessionError> {
        let (scope, caller) = match (environment_id, &origin.connection_id) {
            (Some(id), _) => (
                Scope::Environment(id.into()),
                Some(self.caller(origin).await?),
            ),
            (None, Some(id)) => (Scope::Connection(id.into()), None),
            (None, None) => return Ok(Stored::default()),
        };
        let record = self
            .store
            .get(&scope)
            .await
            .map_err(|err| self.unavailable(&err))?;
        let Some(record) = record else {
            return match scope {
                Scope::Environment(_) => Err(SessionError::UnknownEnvironment),
                _ => Ok(Stored::default()),
            };
        };
        if let Some(caller) = &caller
            && record.binding.as_deref() != Some(caller.binding().as_str())
        {
            return Err(SessionError::UnknownEnvironment);
        }
        let credentials = match (&record.access_key_id, &record.secret) {
            // Boxed, as only a connection or handle with stored credentials gets here:
            // unsealing (KMS) would otherwise make every message's future larger. Every
            // connection has a record from `$connect` (its caller), most with nothing sealed.
            (Some(key_id), Some(secret)) => {
                Some(Box::pin(self.unseal(&scope, key_id, secret, record.token.as_deref())).await?)
            }
            _ => None,
        };
        Ok(Stored {
            credentials,
            region: record.region.clone(),
            // A handle's reports the caller of this call, not the handle's maker.
            caller: caller.or_else(|| record.caller.clone()),
        })
    }

    /// The stored credentials, their secret and token unsealed.
    async fn unseal(
        &self,
        scope: &Scope<'_>,
        key_id: &str,
        secret: &[u8],
        token: Option<&[u8]>,
    ) -> Result<Credentials, SessionError> {
        let key = scope.key();
        let secret = self
            .sealer
            .open(&self.binding(&key, "secret_access_key"), secret)
            .await
            .map_err(|err| self.unavailable(&err))?;
        let token = match token {
            Some(token) => Some(
                self.sealer
                    .open(&self.binding(&key, "session_token"), token)
                    .await
                    .map_err(|err| self.unavailable(&err))?,
            ),
            None => None,
        };
        Ok(Credentials::new(
            key_id,
            secret,
            token,
            None,
            "set-environment",
        ))
    }

    fn binding<'a>(&'a self, scope_key: &'a str, field: &'a str) -> Binding<'a> {
        Binding {
            function: &self.function,
            scope: scope_key,
            field,
        }
    }

    async fn seal(
        &self,
        scope: &Scope<'_>,
        credentials: &Credentials,
    ) -> Result<SealedCredentials, SessionError> {
        let key = scope.key();
        let secret = self
            .sealer
            .seal(
                &self.binding(&key, "secret_access_key"),
                credentials.secret_access_key(),
            )
            .await
            .map_err(|err| self.unavailable(&err))?;
        let token = match credentials.session_token() {
            Some(token) => Some(
                self.sealer
                    .seal(&self.binding(&key, "session_token"), token)
                    .await
                    .map_err(|err| self.unavailable(&err))?,
            ),
            None => None,
        };
        Ok(SealedCredentials {
            access_key_id: credentials.access_key_id().to_owned(),
            secret,
            token,
        })
    }

    /// `set-environment`: applies the new values where they belong (the handle named by
    /// `environment_id`, else the connection), and answers the handle that now holds the
    /// overrides in effect: the one named, or a new one.
    pub async fn set(
        &self,
        origin: &Origin,
        environment_id: Option<&str>,
        credentials: Option<&Credentials>,
        region: Option<&str>,
    ) -> Result<Handle, SessionError> {
        let expires_at = now_s() + self.environment_ttl.as_secs();
        if let Some(id) = environment_id {
            let binding = self.caller(origin).await?.binding();
            let scope = Scope::Environment(id.into());
            let change = Change {
                region: region.map(str::to_owned),
                credentials: match credentials {
                    Some(credentials) => Some(self.seal(&scope, credentials).await?),
                    None => None,
                },
            };
            let changed = self
                .store
                .change(&scope, &change, expires_at, Some(&binding))
                .await
                .map_err(|err| self.unavailable(&err))?;
            return if changed {
                Ok(Handle {
                    id: id.to_owned(),
                    expires_at,
                })
            } else {
                Err(SessionError::UnknownEnvironment)
            };
        }
        // The overrides in effect after this call: the connection's, updated.
        let mut effective = match &origin.connection_id {
            Some(connection_id) => {
                let scope = Scope::Connection(connection_id.into());
                let change = Change {
                    region: region.map(str::to_owned),
                    credentials: match credentials {
                        Some(credentials) => Some(self.seal(&scope, credentials).await?),
                        None => None,
                    },
                };
                self.store
                    .change(&scope, &change, now_s() + CONNECTION_TTL.as_secs(), None)
                    .await
                    .map_err(|err| self.unavailable(&err))?;
                self.read(origin, None).await?
            }
            None => Stored::default(),
        };
        if let Some(credentials) = credentials {
            effective.credentials = Some(credentials.clone());
        }
        if let Some(region) = region {
            effective.region = Some(region.to_owned());
        }
        // A new handle holding them, sealed for the handle.
        let caller = match effective.caller.take() {
            Some(caller) => caller,
            None => origin.caller.clone(),
        };
        let id = new_handle_id().map_err(|err| self.unavailable(&err))?;
        let scope = Scope::Environment((&id).into());
        let sealed = match &effective.credentials {
            Some(credentials) => Some(self.seal(&scope, credentials).await?),
            None => None,
        };
        let record = Record {
            region: effective.region,
            access_key_id: sealed.as_ref().map(|s| s.access_key_id.clone()),
            secret: sealed.as_ref().map(|s| s.secret.clone()),
            token: sealed.and_then(|s| s.token),
            binding: Some(caller.binding()),
            caller: Some(caller),
            connected_at: None,
            expires_at,
            credential_tat: None,
        };
        let created = self
            .store
            .put(&scope, &record, true)
            .await
            .map_err(|err| self.unavailable(&err))?;
        if !created {
            return Err(self.unavailable(&"a new handle's id was taken"));
        }
        Ok(Handle { id, expires_at })
    }
}

/// 128 random bits, URL-safe base64: `env_...`.
fn new_handle_id() -> Result<String, seal::SealError> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| seal::SealError::Random)?;
    Ok(format!(
        "env_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::memory::MemoryStore;
    use super::{Caller, Refused, Scope, SessionStore, Sessions};
    use crate::config::{Rate, RateLimits};
    use crate::session::seal::Sealer;

    /// `$disconnect` forgets the connection's tool bucket (kept under the scope's key): a
    /// connection id seen again starts with a full bucket, and buckets of closed connections
    /// do not pile up.
    #[tokio::test]
    async fn disconnect_forgets_the_connections_bucket() {
        let slow = Rate {
            period: Duration::from_secs(3600),
            burst: 2,
        };
        let sessions = Sessions::new(
            Arc::new(SessionStore::Memory(MemoryStore::new())),
            Arc::new(Sealer::local(Sealer::new_local_key().unwrap())),
            RateLimits {
                tools: slow,
                credential_tools: slow,
            },
            "test".to_owned(),
            Duration::from_secs(60),
        );
        let subject = Scope::Connection("c1=".into());
        for _ in 0..2 {
            assert!(sessions.admit(&subject, false).await.is_ok());
        }
        assert!(matches!(
            sessions.admit(&subject, false).await,
            Err(Refused::Limited(_))
        ));
        sessions.disconnect("c1=").await;
        assert!(sessions.admit(&subject, false).await.is_ok());
    }

    /// Whatever its fields hold: what serde writes for it.
    #[test]
    fn a_caller_is_written_as_serde_writes_it() {
        let text = |value: &str| Some(value.to_owned());
        for caller in [
            Caller::default(),
            Caller {
                source_ip: text("203.0.113.10"),
                ..Caller::default()
            },
            Caller {
                arn: text("arn:aws:sts::123456789012:assumed-role/r\"o\\le/s\u{e9}ssion\u{1}"),
                account_id: text("123456789012"),
                source_ip: text("2001:db8::1"),
            },
            Caller {
                arn: text(""),
                account_id: None,
                source_ip: text("\u{2028}\u{1f980}"),
            },
        ] {
            let mut written = crate::json::Writer::with_capacity(16);
            caller.write_json(&mut written);
            let written = written.finish_json().unwrap();
            assert_eq!(written.get(), serde_json::to_string(&caller).unwrap());
        }
    }

    /// As tools report a caller: every key, in this order, `null` for what is not known.
    #[test]
    fn a_caller_is_reported_with_every_key() {
        let caller = Caller {
            arn: Some("arn:aws:iam::123456789012:user/a \"q\"".to_owned()),
            account_id: None,
            source_ip: Some("192.0.2.7".to_owned()),
        };
        assert_eq!(
            serde_json::to_string(&caller).unwrap(),
            r#"{"arn":"arn:aws:iam::123456789012:user/a \"q\"","account_id":null,"source_ip":"192.0.2.7"}"#
        );
    }

    #[test]
    fn store_keys_and_bindings() {
        assert_eq!(Scope::Connection("c1=".into()).key(), "connection#c1=");
        assert_eq!(Scope::Environment("e1".into()).key(), "environment#e1");
        assert_eq!(
            Scope::Caller("ip:192.0.2.7".into()).key(),
            "caller#ip:192.0.2.7"
        );
        let mut caller = Caller::default();
        assert_eq!(caller.binding(), "anonymous");
        caller.source_ip = Some("192.0.2.7".into());
        assert_eq!(caller.binding(), "ip:192.0.2.7");
        caller.arn = Some("arn:aws:iam::123456789012:user/a".into());
        assert_eq!(caller.binding(), "arn:arn:aws:iam::123456789012:user/a");
    }
}
