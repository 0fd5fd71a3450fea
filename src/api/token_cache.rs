//! Verified tokens, remembered for a few seconds so that a burst of requests does not look the
//! same token up in the database every time. Only successful lookups are kept (an unknown token
//! is asked about every time, and cannot fill the cache); a revoked token stops working once its
//! entry expires, within `ttl`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{Plan, TokenGrant};

/// Entries kept at most; past it, expired entries go, and if that is not enough, all of them.
const MAX_ENTRIES: usize = 10_000;

pub struct TokenCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Plan, TokenGrant, Instant)>>,
}

impl TokenCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The plan and grant of a token hash verified less than `ttl` before `now`.
    pub fn get(&self, hash: &str, now: Instant) -> Option<(Plan, TokenGrant)> {
        let entries = self.entries.lock().ok()?;
        let (plan, grant, verified_at) = entries.get(hash)?;
        (now.saturating_duration_since(*verified_at) < self.ttl)
            .then(|| (plan.clone(), grant.clone()))
    }

    /// Forgets the tokens whose hash starts with `prefix` (a token revoked here stops working
    /// here at once).
    pub fn forget(&self, prefix: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|hash, _| !hash.starts_with(prefix));
        }
    }

    pub fn insert(&self, hash: &str, plan: &Plan, grant: &TokenGrant, now: Instant) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, _, verified_at)| {
                now.saturating_duration_since(*verified_at) < self.ttl
            });
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(hash.to_owned(), (plan.clone(), grant.clone(), now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::PlanId;
    use crate::domain::scope::Scopes;
    use crate::domain::time::Timestamp;

    fn plan() -> Plan {
        Plan {
            id: PlanId::generate(),
            name: "Cached".into(),
            default_region: None,
            created_at: Timestamp::now(),
        }
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = TokenCache::new(Duration::from_secs(5));
        let start = Instant::now();
        let plan = plan();
        assert!(cache.get("h", start).is_none());
        let read = TokenGrant {
            name: Some("reader".into()),
            scopes: Scopes::of([crate::domain::scope::Scope::Read]),
        };
        cache.insert("h", &plan, &read, start);
        let hit = cache.get("h", start + Duration::from_secs(4));
        assert_eq!(
            hit.map(|(p, grant)| (p.id, grant.name, grant.scopes)),
            Some((plan.id.clone(), read.name.clone(), read.scopes))
        );
        assert!(cache.get("h", start + Duration::from_secs(5)).is_none());
        assert!(cache.get("other", start).is_none());
        cache.insert("abc123", &plan, &read, start);
        cache.forget("abc");
        assert!(cache.get("abc123", start).is_none());
    }

    #[test]
    fn a_full_cache_makes_room() {
        let cache = TokenCache::new(Duration::from_secs(5));
        let start = Instant::now();
        let plan = plan();
        for n in 0..MAX_ENTRIES {
            cache.insert(&n.to_string(), &plan, &TokenGrant::full(), start);
        }
        let later = start + Duration::from_secs(10);
        cache.insert("fresh", &plan, &TokenGrant::full(), later);
        assert!(cache.get("fresh", later).is_some());
        assert_eq!(cache.entries.lock().map(|e| e.len()).unwrap_or(0), 1);
    }
}
