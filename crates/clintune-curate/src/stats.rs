//! What a curation run counted, as it goes into the manifest and the card.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Counts by name.
pub type Counts = BTreeMap<String, u64>;

/// Every count of a run. Shards write theirs into their manifests and
/// `merge` adds them up, so a merged dataset reports what a single run would.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tallies {
    /// Patients by split.
    pub patients: Counts,
    /// Examples built, by task, before any filter.
    pub built: Counts,
    /// Records or examples skipped while building, by reason.
    pub skipped: Counts,
    /// Examples removed by the length filters, by filter.
    pub filtered: Counts,
    /// Examples removed as duplicates: `exact`, `near`.
    pub duplicates: Counts,
    /// Examples written, by split, then task.
    pub examples: BTreeMap<String, Counts>,
    /// Tokens written, by split, then task.
    pub tokens: BTreeMap<String, Counts>,
    /// Tokens with loss mask 1, by split.
    pub trained_tokens: Counts,
}

fn add(counts: &mut Counts, key: &str, n: u64) {
    *counts.entry(key.to_string()).or_default() += n;
}

impl Tallies {
    /// One more patient in `split`.
    pub fn patient(&mut self, split: &str) {
        add(&mut self.patients, split, 1);
    }

    /// One more example built by `task`.
    pub fn built(&mut self, task: &str) {
        add(&mut self.built, task, 1);
    }

    /// One more example removed by `filter`.
    pub fn filtered(&mut self, filter: &str) {
        add(&mut self.filtered, filter, 1);
    }

    /// Adds a task builder's skip reasons.
    pub fn add_skipped(&mut self, tally: &Counts) {
        for (k, v) in tally {
            add(&mut self.skipped, k, *v);
        }
    }

    /// Duplicates removed.
    pub fn dedup(&mut self, exact: u64, near: u64) {
        add(&mut self.duplicates, "exact", exact);
        add(&mut self.duplicates, "near", near);
    }

    /// One example written.
    pub fn written(&mut self, split: &str, task: &str, tokens: u64, trained: u64) {
        add(self.examples.entry(split.into()).or_default(), task, 1);
        add(self.tokens.entry(split.into()).or_default(), task, tokens);
        add(&mut self.trained_tokens, split, trained);
    }

    /// Adds another shard's counts (those made before deduplication).
    pub fn absorb(&mut self, other: &Tallies) {
        for (mine, theirs) in [
            (&mut self.patients, &other.patients),
            (&mut self.built, &other.built),
            (&mut self.skipped, &other.skipped),
            (&mut self.filtered, &other.filtered),
        ] {
            for (k, v) in theirs {
                add(mine, k, *v);
            }
        }
    }

    /// Examples written in `split`.
    pub fn split_examples(&self, split: &str) -> u64 {
        self.examples.get(split).map_or(0, |c| c.values().sum())
    }

    /// Tokens written in `split`.
    pub fn split_tokens(&self, split: &str) -> u64 {
        self.tokens.get(split).map_or(0, |c| c.values().sum())
    }

    /// As a manifest's `counts`.
    pub fn to_counts(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// From a manifest's `counts`; `None` when they are not a curation's.
    pub fn from_counts(counts: &Map<String, Value>) -> Option<Self> {
        serde_json::from_value(Value::Object(counts.clone())).ok()
    }
}
