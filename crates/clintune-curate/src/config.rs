//! The curation configuration (`curate.toml`, or the `[curate]` table of a recipe).
//!
//! Parsed strictly: an unknown key is an error naming file, line and key.

use crate::canary::AuditConfig;
use crate::dedup::DedupConfig;
use crate::error::CurateError;
use crate::tasks::Task;
use clintune_core::{ConfigError, Invalid};
use clintune_text::tokenizer::TrainConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Everything that decides what a curation run produces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CurateConfig {
    /// Which examples are built from each patient.
    pub tasks: TasksConfig,
    /// Length bounds.
    pub filter: FilterConfig,
    /// Exact and near-duplicate removal.
    pub dedup: DedupConfig,
    /// Patient-level train/validation/test split.
    pub split: SplitConfig,
    /// Tokenizer training, used when no tokenizer is given.
    pub tokenizer: TrainConfig,
    /// Output layout.
    pub output: OutputConfig,
    /// Canaries planted for the memorization audit; off by default, and
    /// then left out of the config hash.
    #[serde(skip_serializing_if = "AuditConfig::is_off")]
    pub audit: AuditConfig,
}

/// The example-building tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TasksConfig {
    /// The patient's history as chronological text.
    pub timeline: TimelineConfig,
    /// Chat examples: history up to an encounter → what was diagnosed there.
    #[serde(rename = "next-diagnosis")]
    pub next_diagnosis: NextDiagnosisConfig,
    /// De-identified chat traces, as they are.
    pub chat: ChatConfig,
    /// De-identified preference pairs, for preference tuning (DPO). On by
    /// default; left out of the config hash while it is, so datasets curated
    /// before the task keep their ids.
    #[serde(skip_serializing_if = "ChatConfig::is_on")]
    pub preference: ChatConfig,
}

/// The `timeline` task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimelineConfig {
    /// Build timeline examples.
    pub enabled: bool,
    /// A patient's timeline is cut into examples of at most this many
    /// characters, at event boundaries; a longer single note is truncated.
    pub max_chars: usize,
    /// Include clinical notes (DocumentReference text) in the timeline.
    pub notes: bool,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_chars: 6000,
            notes: true,
        }
    }
}

/// The `next-diagnosis` task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NextDiagnosisConfig {
    /// Build next-diagnosis examples.
    pub enabled: bool,
    /// Events of history before the encounter, at most (the most recent are kept).
    pub max_history_events: usize,
    /// Encounters with fewer events of history are skipped.
    pub min_history_events: usize,
    /// At most this many examples per patient (the latest encounters); 0: no limit.
    pub max_per_patient: usize,
}

impl Default for NextDiagnosisConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_history_events: 40,
            min_history_events: 3,
            max_per_patient: 0,
        }
    }
}

/// The `chat` and `preference` tasks: records passed through as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Build the task's examples.
    pub enabled: bool,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl ChatConfig {
    /// True when the task is on (its default).
    pub fn is_on(&self) -> bool {
        self.enabled
    }
}

/// Length filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Examples with fewer characters of content are dropped.
    pub min_chars: usize,
    /// Examples with fewer tokens are dropped.
    pub min_tokens: usize,
    /// Examples with more tokens are dropped (not truncated: a cut chat example
    /// would lose its answer).
    pub max_tokens: usize,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            min_chars: 20,
            min_tokens: 8,
            max_tokens: 8192,
        }
    }
}

/// Split ratios and the salt of the patient hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    /// Share of patients in the train split.
    pub train: f64,
    /// Share of patients in the validation split.
    pub validation: f64,
    /// Share of patients in the test split.
    pub test: f64,
    /// Salt of the keyed patient hash: another salt gives another split.
    pub salt: String,
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self {
            train: 0.8,
            validation: 0.1,
            test: 0.1,
            salt: "clintune-split-v1".into(),
        }
    }
}

/// Output layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Examples per Parquet file.
    pub rows_per_file: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            rows_per_file: 50_000,
        }
    }
}

/// Tables only a training recipe has: a file with any of them is a recipe,
/// whose curation settings are its `[curate]` table.
const RECIPE_TABLES: [&str; 8] = [
    "model",
    "data",
    "method",
    "optimizer",
    "schedule",
    "train",
    "deid",
    "export",
];

impl CurateConfig {
    /// Reads a configuration file: a curation config, or a recipe with a
    /// `[curate]` table.
    pub fn load(path: &Path) -> Result<Self, CurateError> {
        let text = std::fs::read_to_string(path).map_err(CurateError::io(path))?;
        Self::parse(&text).map_err(|source| CurateError::Config {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses TOML text: a curation config, or a recipe whose `[curate]`
    /// table (the defaults when it has none) is the config. The error says
    /// where and what.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let message = |e: toml::de::Error| ConfigError::syntax(text, &e);
        let table: toml::Table = text.parse().map_err(message)?;
        let config: Self = match table.get("curate") {
            // The table alone has no line numbers to quote: name it instead.
            Some(toml::Value::Table(section)) => section
                .clone()
                .try_into()
                .map_err(|e| ConfigError::Syntax(format!("[curate]: {e}")))?,
            Some(other) => {
                return Err(Invalid::new(
                    "curate",
                    format!(
                        "is a {}; in a recipe it must be a table ([curate])",
                        other.type_str()
                    ),
                )
                .into());
            }
            None if RECIPE_TABLES.iter().any(|t| table.contains_key(*t)) => Self::default(),
            None => toml::from_str(text).map_err(message)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks values that the types alone allow but the stage cannot use.
    pub fn validate(&self) -> Result<(), Invalid> {
        let s = &self.split;
        for (name, r) in [
            ("train", s.train),
            ("validation", s.validation),
            ("test", s.test),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return Err(Invalid::new(
                    format!("split.{name}"),
                    format!("must be between 0 and 1, got {r}"),
                ));
            }
        }
        let sum = s.train + s.validation + s.test;
        if (sum - 1.0).abs() > 1e-9 {
            return Err(Invalid::new(
                "split.train + split.validation + split.test",
                format!("must be 1, got {sum}"),
            ));
        }
        if self.filter.min_tokens > self.filter.max_tokens {
            return Err(Invalid::new(
                "filter.min_tokens",
                "must not exceed filter.max_tokens",
            ));
        }
        if self.tasks.timeline.max_chars < 100 {
            return Err(Invalid::new(
                "tasks.timeline.max_chars",
                "must be at least 100",
            ));
        }
        if self.output.rows_per_file == 0 {
            return Err(Invalid::new("output.rows_per_file", "must be at least 1"));
        }
        let t = &self.tasks;
        if !(t.timeline.enabled
            || t.next_diagnosis.enabled
            || t.chat.enabled
            || t.preference.enabled)
        {
            return Err(Invalid::new(
                "tasks",
                "needs at least one of tasks.timeline, tasks.next-diagnosis, tasks.chat, tasks.preference enabled",
            ));
        }
        self.dedup.validate()?;
        if let Some(t) = self
            .dedup
            .near_tasks
            .iter()
            .find(|t| Task::parse(t).is_none())
        {
            return Err(Invalid::new(
                "dedup.near_tasks",
                format!("names an unknown task `{t}` (tasks: timeline, next-diagnosis, chat)"),
            ));
        }
        self.audit.validate()?;
        self.tokenizer.validate()
    }

    /// `sha256:` hash of the effective configuration, for the manifest.
    pub fn hash(&self) -> String {
        let value = clintune_core::json::to_value("the curation config", self);
        clintune_lineage::manifest::content_hash(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(name)
    }

    #[test]
    fn the_documented_config_is_the_default() {
        let documented = CurateConfig::load(&repo_file("recipes/curate.toml")).unwrap();
        assert_eq!(documented, CurateConfig::default());
    }

    #[test]
    fn a_recipe_section_is_read() {
        let cfg = CurateConfig::parse(
            "[model]\nx = 1\n[curate.split]\ntrain = 0.5\nvalidation = 0.25\ntest = 0.25\n",
        )
        .unwrap();
        assert_eq!(cfg.split.train, 0.5);
    }

    #[test]
    fn a_recipe_without_curate_gets_the_defaults_and_a_bad_one_is_named() {
        let recipe = "[model]\nbase = \"m\"\n[data]\ndataset = \"d\"\n[train]\nepochs = 1\n";
        assert_eq!(
            CurateConfig::parse(recipe).unwrap(),
            CurateConfig::default()
        );
        let err = CurateConfig::parse(&format!("{recipe}[curate.filter]\nmax_tokes = 5\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[curate]") && err.contains("max_tokes"),
            "{err}"
        );
        let err = CurateConfig::parse("curate = 3\n[model]\nbase = \"m\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("curate") && err.contains("table"), "{err}");
        // Not a recipe: a key the config does not know is still an error.
        assert!(CurateConfig::parse("[datasets]\nx = 1\n").is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_say_where_and_what() {
        let err = CurateConfig::parse("[filter]\nmin_chars = 1\nmax_tokes = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_tokes") && err.contains("line 3"), "{err}");
        let err = CurateConfig::parse("[split]\ntrain = 0.9\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be 1"), "{err}");
        let err = CurateConfig::parse("[dedup]\nthreshold = 1.5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dedup.threshold"), "{err}");
        let none = ["timeline", "next-diagnosis", "chat", "preference"]
            .map(|t| format!("[tasks.{t}]\nenabled = false\n"))
            .concat();
        let err = CurateConfig::parse(&none).unwrap_err().to_string();
        assert!(err.contains("at least one"), "{err}");
    }

    #[test]
    fn the_hash_follows_the_content() {
        let a = CurateConfig::default();
        let mut b = a.clone();
        assert_eq!(a.hash(), b.hash());
        b.split.salt = "other".into();
        assert_ne!(a.hash(), b.hash());
    }
}
