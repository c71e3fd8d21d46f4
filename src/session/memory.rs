//! The session store in memory: the default, for `serve`, `invoke` and a function kept to one
//! instance. A concurrent map (sharded locks: no lock shared by every connection), the same
//! semantics as the DynamoDB store: expiry, handles bound to their caller, atomic buckets.

use dashmap::DashMap;

use super::{Change, Gcra, Record, Scope, Taken};

pub struct MemoryStore {
    items: DashMap<String, Record>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// Past this many items, expired ones are swept when one is written.
const SWEEP_ABOVE: usize = 4096;

fn now_s() -> u64 {
    super::now_s()
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            items: DashMap::with_shard_amount(super::shards()),
        }
    }

    pub fn get(&self, scope: &Scope<'_>) -> Option<Record> {
        scope.with_key(|key| {
            let record = self.items.get(key)?;
            if record.expires_at <= now_s() {
                drop(record);
                self.items.remove(key);
                return None;
            }
            Some(record.clone())
        })
    }

    fn sweep(&self) {
        if self.items.len() > SWEEP_ABOVE {
            let now = now_s();
            self.items.retain(|_, record| record.expires_at > now);
        }
    }

    pub fn put(&self, scope: &Scope<'_>, record: &Record, only_new: bool) -> bool {
        self.sweep();
        let key = scope.key();
        if only_new {
            match self.items.entry(key) {
                dashmap::Entry::Occupied(mut existing) => {
                    if existing.get().expires_at > now_s() {
                        return false;
                    }
                    existing.insert(record.clone());
                }
                dashmap::Entry::Vacant(slot) => {
                    slot.insert(record.clone());
                }
            }
            return true;
        }
        self.items.insert(key, record.clone());
        true
    }

    pub fn change(
        &self,
        scope: &Scope<'_>,
        change: &Change,
        expires_at: u64,
        binding: Option<&str>,
    ) -> bool {
        self.sweep();
        let now = now_s();
        let mut record = match binding {
            // A handle: it must exist, unexpired, and be the caller's.
            Some(binding) => match self.items.get_mut(&scope.key()) {
                Some(record)
                    if record.expires_at > now && record.binding.as_deref() == Some(binding) =>
                {
                    record
                }
                _ => return false,
            },
            None => self.items.entry(scope.key()).or_insert_with(|| Record {
                expires_at,
                ..Record::default()
            }),
        };
        if let Some(region) = &change.region {
            record.region = Some(region.clone());
        }
        if let Some(credentials) = &change.credentials {
            record.access_key_id = Some(credentials.access_key_id.clone());
            record.secret = Some(credentials.secret.clone());
            record.token = credentials.token.clone();
        }
        if binding.is_some() {
            record.expires_at = expires_at;
        }
        true
    }

    pub fn delete(&self, scope: &Scope<'_>) {
        self.items.remove(&scope.key());
    }

    pub fn take_token(
        &self,
        scope: &Scope<'_>,
        bucket: &Gcra,
        now_us: u64,
        expires_at: u64,
    ) -> Taken {
        self.sweep();
        let mut record = self.items.entry(scope.key()).or_insert_with(|| Record {
            expires_at,
            ..Record::default()
        });
        match bucket.take(record.credential_tat, now_us) {
            Ok(tat) => {
                record.credential_tat = Some(tat);
                Taken::Token
            }
            Err(wait) => Taken::Wait(wait),
        }
    }
}
