//! The in-memory caches sized by `--cache-entries`: tokens (`auth/cache.rs`) and
//! workspaces on the heartbeat fast path (`heartbeat/remembered.rs`).

use std::hash::Hash;

/// A cache that holds `entries` keys without forgetting any of them.
///
/// quick_cache splits its capacity over shards, and once a shard is full it
/// evicts new entries that are not read again while they are in its small
/// "cold" section (3 % of the capacity). Heartbeats read each workspace once
/// per round, so a fleet as large as the capacity thrashed: most heartbeats
/// missed, authenticated through the database and took the locked path
/// (see BENCHMARKS.md, "Per-request costs, and what bounds Postgres").
/// So the cache has
/// [`SHARDS`] shards (a fixed number, where quick_cache's default depends on
/// the machine's cores, so the margin below holds on any machine) and a
/// quarter more room than
/// `entries`, plus [`SPARE_PER_SHARD`] places in each shard: `entries`
/// keys, however the hash spreads them, never fill a shard. Nothing is
/// allocated before it is used.
pub fn holding<K, V>(entries: usize) -> quick_cache::sync::Cache<K, V>
where
    K: Eq + Hash,
    V: Clone,
{
    let capacity = entries.saturating_add(entries / 4).saturating_add(SHARDS * SPARE_PER_SHARD);
    let options = quick_cache::OptionsBuilder::new()
        .shards(SHARDS)
        .estimated_items_capacity(capacity)
        .weight_capacity(capacity as u64)
        .build();
    match options {
        Ok(options) => quick_cache::sync::Cache::with_options(
            options,
            quick_cache::UnitWeighter,
            quick_cache::DefaultHashBuilder::default(),
            quick_cache::sync::DefaultLifecycle::default(),
        ),
        Err(error) => {
            tracing::warn!(%error, "cache options refused; using quick_cache's defaults");
            quick_cache::sync::Cache::new(capacity)
        }
    }
}

/// Shards of each cache: enough that two cores rarely wait on one another.
const SHARDS: usize = 16;
/// Places each shard keeps beyond its share of `entries` + 25 %, for small
/// caches, where a quarter is only a few places.
const SPARE_PER_SHARD: usize = 64;

#[cfg(test)]
mod tests {
    /// A fleet exactly as large as `--cache-entries`, heartbeating in
    /// rounds (each workspace once per round, the same order every round):
    /// after the first round every heartbeat finds its workspace.
    #[test]
    fn a_fleet_as_large_as_the_setting_is_never_forgotten() {
        for entries in [1, 7, 100, 1_000, 20_000, 100_000] {
            let cache = super::holding::<u64, u64>(entries);
            let mut missed_after_the_first_round = 0;
            for round in 0..4 {
                for key in 0..entries as u64 {
                    if cache.get(&key).is_none() {
                        if round > 0 {
                            missed_after_the_first_round += 1;
                        }
                        cache.insert(key, round);
                    }
                }
            }
            assert_eq!(missed_after_the_first_round, 0, "{entries} entries: some were forgotten");
        }
    }
}
