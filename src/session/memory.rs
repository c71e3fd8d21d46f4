//! The session store in memory: the default, for `serve`, `invoke` and a function kept to one
//! instance. A concurrent map (sharded locks: no lock shared by every connection), the same
//! semantics as the DynamoDB store: expiry, handles bound to their caller, atomic buckets.

use std::sync::Arc;

use dashmap::DashMap;

use super::{Change, Gcra, Record, Scope, Taken};

/// Each record is shared with its readers, not copied for them: a tool call reads its
/// connection's record on every message. A write to a record being read makes a new one.
pub struct MemoryStore {
    items: DashMap<String, Arc<Record>, super::MapHasher>,
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
            items: DashMap::with_hasher_and_shard_amount(
                super::MapHasher::default(),
                super::shards(),
            ),
        }
    }

    pub fn get(&self, scope: &Scope<'_>) -> Option<Arc<Record>> {
        scope.with_key(|key| {
            let record = self.items.get(key)?;
            if record.expires_at <= now_s() {
                drop(record);
                self.items.remove(key);
                return None;
            }
            Some(Arc::clone(&record))
        })
    }

    /// Called after a key was added, its shard's lock let go (the count takes every shard's):
    /// past [`SWEEP_ABOVE`] items, the expired ones are swept. The count is looked at only
    /// when the map grew, not on every write: writes to a key that exists touch only its own
    /// shard.
    fn added(&self) {
        if self.items.len() > SWEEP_ABOVE {
            let now = now_s();
            self.items.retain(|_, record| record.expires_at > now);
        }
    }

    /// `f` of the scope's record, made (expiring at `expires_at`) if there is none.
    fn update<R>(&self, scope: &Scope<'_>, expires_at: u64, f: impl FnOnce(&mut Record) -> R) -> R {
        let (result, added) = match self.items.entry(scope.key()) {
            dashmap::Entry::Occupied(mut existing) => (f(Arc::make_mut(existing.get_mut())), false),
            dashmap::Entry::Vacant(slot) => {
                let mut record = slot.insert(Arc::new(Record {
                    expires_at,
                    ..Record::default()
                }));
                (f(Arc::make_mut(&mut record)), true)
            }
        };
        if added {
            self.added();
        }
        result
    }

    pub fn put(&self, scope: &Scope<'_>, record: &Record, only_new: bool) -> bool {
        let key = scope.key();
        let added = if only_new {
            match self.items.entry(key) {
                dashmap::Entry::Occupied(mut existing) => {
                    if existing.get().expires_at > now_s() {
                        return false;
                    }
                    existing.insert(Arc::new(record.clone()));
                    false
                }
                dashmap::Entry::Vacant(slot) => {
                    slot.insert(Arc::new(record.clone()));
                    true
                }
            }
        } else {
            self.items.insert(key, Arc::new(record.clone())).is_none()
        };
        if added {
            self.added();
        }
        true
    }

    pub fn change(
        &self,
        scope: &Scope<'_>,
        change: &Change,
        expires_at: u64,
        binding: Option<&str>,
    ) -> bool {
        let apply = |record: &mut Record| {
            if let Some(region) = &change.region {
                record.region = Some(region.clone());
            }
            if let Some(credentials) = &change.credentials {
                record.access_key_id = Some(credentials.access_key_id.clone());
                record.secret = Some(credentials.secret.clone());
                record.token = credentials.token.clone();
            }
        };
        let Some(binding) = binding else {
            self.update(scope, expires_at, apply);
            return true;
        };
        // A handle: it must exist, unexpired, and be the caller's.
        match self.items.get_mut(&scope.key()) {
            Some(mut record)
                if record.expires_at > now_s() && record.binding.as_deref() == Some(binding) =>
            {
                let record = Arc::make_mut(&mut record);
                apply(record);
                record.expires_at = expires_at;
                true
            }
            _ => false,
        }
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
        self.update(scope, expires_at, |record| {
            match bucket.take(record.credential_tat, now_us) {
                Ok(tat) => {
                    record.credential_tat = Some(tat);
                    Taken::Token
                }
                Err(wait) => Taken::Wait(wait),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(id: &str) -> Scope<'_> {
        Scope::Connection(id.into())
    }

    /// Past the limit, adding a key sweeps the expired records, by each of the writes that
    /// can add one; a write to a key that exists adds nothing and sweeps nothing.
    #[test]
    fn expired_records_are_swept_when_a_key_is_added_past_the_limit() {
        let store = MemoryStore::new();
        let expired = Record {
            expires_at: now_s() - 1,
            ..Record::default()
        };
        let live = now_s() + 600;
        // Filled past the limit without the store's writes, which would sweep as they add.
        let fill = |store: &MemoryStore| {
            for n in 0..=SWEEP_ABOVE {
                store
                    .items
                    .insert(scope(&format!("old-{n}")).key(), Arc::new(expired.clone()));
            }
        };
        let bucket = Gcra::new(crate::config::Rate {
            burst: 1,
            period: std::time::Duration::from_secs(1),
        });
        let fresh = Record {
            expires_at: live,
            ..Record::default()
        };
        type Write<'a> = &'a dyn Fn(&MemoryStore, &str);
        let writes: [Write<'_>; 4] = [
            &|store, id| {
                store.put(&scope(id), &fresh, false);
            },
            &|store, id| {
                store.put(&scope(id), &fresh, true);
            },
            &|store, id| {
                let change = Change {
                    region: Some("eu-west-1".into()),
                    credentials: None,
                };
                store.change(&scope(id), &change, live, None);
            },
            &|store, id| {
                store.take_token(&scope(id), &bucket, 0, live);
            },
        ];
        for (n, write) in writes.iter().enumerate() {
            fill(&store);
            write(&store, "new");
            assert_eq!(store.items.len(), 1, "write {n} did not sweep");
            assert!(store.get(&scope("new")).is_some(), "write {n}");
            // The same key again, over a full map: nothing added, nothing swept.
            fill(&store);
            write(&store, "new");
            assert_eq!(store.items.len(), SWEEP_ABOVE + 2, "write {n} swept");
            store.items.clear();
        }
    }
}
