//! De-identification policy: which fields are kept per resource type, and how.
//!
//! The policy is an allowlist. A resource type without a `[resources.X]`
//! section is dropped whole; a field not listed under it is dropped. Both are
//! counted in the audit report, never passed through.

use crate::error::DeidError;
use crate::scrub::DictionaryFiles;
use crate::terminology::TerminologyPolicy;
use clintune_core::{ConfigError, Invalid};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// How a kept field is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FieldKind {
    /// A FHIR `code` primitive from one of FHIR's value sets: kept when it
    /// has a code's form (lower-case words joined by hyphens; a language tag
    /// for `language`), else dropped and counted.
    Code,
    /// A coded structure (CodeableConcept, Coding, Quantity, Dosage, components):
    /// only members listed in `[structured] keys` are kept. Codings are kept
    /// only when their system is in `[terminology]` and their code, version
    /// and unit have the system's form ([`crate::terminology`]); free-text
    /// members (`display`, `text`, string values) are scrubbed.
    Structured,
    /// A number or boolean, kept; strings are scrubbed.
    Value,
    /// A date, dateTime or Period: shifted by the patient's offset.
    Date,
    /// The patient's birth date: shifted, or removed for ages over the cap.
    BirthDate,
    /// A Reference: the id becomes a keyed pseudonym, `display` is dropped.
    Reference,
    /// Free text: scrubbed.
    Text,
    /// An Address: only state, country and the 3-digit ZIP prefix are kept.
    Address,
    /// Attachments (DocumentReference.content): text/plain data is decoded,
    /// scrubbed and emitted as the record's text.
    Attachment,
}

/// How detected PHI in free text is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Replacement {
    /// A consistent, realistic surrogate (the same input maps to the same
    /// surrogate within a patient).
    #[default]
    Surrogate,
    /// A category tag such as `[NAME]`.
    Tag,
}

/// How far the free-text detector goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TextMode {
    /// Every word that is not known to be safe (the safe-word list, clinical
    /// terms, numbers no PHI pattern claims) is replaced: the highest recall,
    /// at the cost of misspellings and rare words. For a first release of a
    /// model trained on a partner's text.
    Strict,
    /// Words that are not safe become PHI when they are name-like by form or
    /// position (in any letter case); PHI patterns and context rules as in
    /// strict mode.
    #[default]
    Balanced,
}

impl TextMode {
    /// The mode's name as written in the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            TextMode::Strict => "strict",
            TextMode::Balanced => "balanced",
        }
    }
}

/// Date handling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatesPolicy {
    /// Smallest absolute shift in days.
    pub min_shift_days: u32,
    /// Largest absolute shift in days.
    pub max_shift_days: u32,
    /// Ages at or above this collapse into one group (Safe Harbor: 90).
    pub age_cap: u32,
    /// How dates in free text are handled: `surrogate` shifts them, `tag` replaces them.
    #[serde(default)]
    pub text: Replacement,
}

/// Geography handling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeographyPolicy {
    /// Three-digit ZIP prefixes whose area has 20,000 people or fewer: become `000`.
    pub restricted_zip3: BTreeSet<String>,
}

/// Free-text handling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextPolicy {
    /// `balanced` (default) or `strict`: see [`TextMode`].
    #[serde(default)]
    pub mode: TextMode,
    /// How names are replaced.
    #[serde(default)]
    pub names: Replacement,
    /// Directory of name/place dictionaries, relative to the policy file.
    pub dictionaries: PathBuf,
    /// Optional list of the institution's own place names (hospitals, wards,
    /// buildings, their abbreviations), one per line, relative to the policy
    /// file; matched in any case as locations.
    #[serde(default)]
    pub site_terms: Option<PathBuf>,
}

/// Chat trace handling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatPolicy {
    /// Dotted paths tried in order to find a trace's patient id.
    pub patient_fields: Vec<String>,
    /// Message roles kept; messages with other roles are dropped and counted.
    pub roles: BTreeSet<String>,
}

/// Members kept inside `structured` fields.
///
/// There is no list of members kept verbatim any more: a coded member
/// (`system`, `code`, `version`, `unit`, `status`, ...) is kept only when it
/// is validated ([`crate::terminology`]), so a policy that still names
/// `verbatim` is refused rather than silently read differently.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructuredPolicy {
    /// Member names kept.
    pub keys: BTreeSet<String>,
}

/// Policy for one resource type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcePolicy {
    /// Fields referencing the patient, tried in order (e.g. `subject`, `patient`).
    #[serde(default)]
    pub patient: Vec<String>,
    /// Dotted paths giving the event time, tried in order.
    #[serde(default)]
    pub time: Vec<String>,
    /// Fields kept, with their treatment.
    pub fields: BTreeMap<String, FieldKind>,
}

/// A complete de-identification policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Policy name, recorded in the manifest.
    pub name: String,
    /// What the policy is for.
    #[serde(default)]
    pub description: String,
    /// Date handling.
    pub dates: DatesPolicy,
    /// Geography handling.
    pub geography: GeographyPolicy,
    /// Free-text handling.
    pub text: TextPolicy,
    /// Chat trace handling.
    pub chat: ChatPolicy,
    /// Structured member allowlist.
    pub structured: StructuredPolicy,
    /// Code systems whose codings are kept, and the form of their codes.
    pub terminology: TerminologyPolicy,
    /// Resource types kept, by FHIR resource type name.
    pub resources: BTreeMap<String, ResourcePolicy>,
}

/// A loaded policy, with its source text (hashed into the lineage).
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// The parsed policy.
    pub policy: Policy,
    /// Where it was read from.
    pub source: PolicySource,
    /// Its text, as read.
    pub text: String,
    /// Its dictionaries: the folder it names, resolved against the policy
    /// file, or the built-in ones.
    pub dictionaries: DictionaryFiles,
    /// The site terms file, resolved against the policy file.
    pub site_terms: Option<PathBuf>,
}

/// Where a policy was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// A policy file given by the user.
    File(PathBuf),
    /// The policy compiled into clintune ([`crate::builtin`]).
    Builtin,
}

impl std::fmt::Display for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicySource::File(path) => write!(f, "{}", path.display()),
            PolicySource::Builtin => f.write_str(crate::builtin::NAME),
        }
    }
}

impl LoadedPolicy {
    /// The policy file or the built-in policy: the policy given, else the
    /// built-in one.
    pub fn from_arg(path: Option<&Path>) -> Result<Self, DeidError> {
        match path {
            Some(path) => Policy::load(path),
            None => Policy::builtin(),
        }
    }

    /// Loads the dictionaries (and site terms) this policy names and builds
    /// the free-text scrubber over them.
    pub fn scrubber(&self) -> Result<crate::scrub::Scrubber, DeidError> {
        self.scrubber_over(crate::scrub::Dictionaries::load_from(&self.dictionaries)?)
    }

    /// The scrubber with the rules deciding alone: its dictionaries' model
    /// file is not read (see [`crate::scrub::Dictionaries::load_lists`]).
    pub fn rules_scrubber(&self) -> Result<crate::scrub::Scrubber, DeidError> {
        self.scrubber_over(crate::scrub::Dictionaries::load_lists(&self.dictionaries)?)
    }

    fn scrubber_over(
        &self,
        mut dicts: crate::scrub::Dictionaries,
    ) -> Result<crate::scrub::Scrubber, DeidError> {
        if let Some(path) = &self.site_terms {
            dicts.add_site_terms(path)?;
        }
        Ok(crate::scrub::Scrubber::new(dicts).with_mode(self.policy.text.mode))
    }
}

impl Policy {
    /// Reads and validates a policy file (unknown keys are errors).
    pub fn load(path: &Path) -> Result<LoadedPolicy, DeidError> {
        let text = std::fs::read_to_string(path).map_err(DeidError::io(path))?;
        let policy = Self::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let dictionaries = DictionaryFiles::Dir(base.join(&policy.text.dictionaries));
        let site_terms = policy.text.site_terms.as_ref().map(|p| base.join(p));
        Ok(LoadedPolicy {
            policy,
            source: PolicySource::File(path.to_path_buf()),
            text,
            dictionaries,
            site_terms,
        })
    }

    /// The policy compiled into clintune, with its dictionaries.
    pub fn builtin() -> Result<LoadedPolicy, DeidError> {
        let text = crate::builtin::POLICY.to_string();
        let policy = Self::parse(&text, Path::new(crate::builtin::NAME))?;
        Ok(LoadedPolicy {
            policy,
            source: PolicySource::Builtin,
            text,
            dictionaries: DictionaryFiles::Builtin,
            site_terms: None,
        })
    }

    fn parse(text: &str, path: &Path) -> Result<Self, DeidError> {
        let bad = |source: ConfigError| DeidError::Policy {
            path: path.to_path_buf(),
            source,
        };
        let policy: Policy = ConfigError::parse_toml(text).map_err(bad)?;
        policy.validate().map_err(|e| bad(e.into()))?;
        Ok(policy)
    }

    fn validate(&self) -> Result<(), Invalid> {
        let d = &self.dates;
        if d.min_shift_days == 0 || d.min_shift_days > d.max_shift_days {
            return Err(Invalid::new(
                "dates.min_shift_days",
                format!(
                    "must be between 1 and dates.max_shift_days (got {} and {})",
                    d.min_shift_days, d.max_shift_days
                ),
            ));
        }
        if d.age_cap == 0 || d.age_cap > 90 {
            return Err(Invalid::new(
                "dates.age_cap",
                format!("must be between 1 and 90 (Safe Harbor), got {}", d.age_cap),
            ));
        }
        for z in &self.geography.restricted_zip3 {
            if z.len() != 3 || !z.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Invalid::new(
                    "geography.restricted_zip3",
                    format!("holds {z:?}, which is not three digits"),
                ));
            }
        }
        for (name, r) in &self.resources {
            if name != "Patient" && r.patient.is_empty() {
                return Err(Invalid::new(
                    format!("resources.{name}.patient"),
                    "is required (the fields that reference the patient): \
                     records not linked to a patient cannot be de-identified consistently",
                ));
            }
        }
        if !self.resources.contains_key("Patient") {
            return Err(Invalid::new("resources.Patient", "is required"));
        }
        self.terminology.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_policy_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deid/safe-harbor.toml");
        let p = Policy::load(&path).unwrap();
        assert!(p.policy.resources.contains_key("Encounter"));
        assert!(matches!(&p.dictionaries, DictionaryFiles::Dir(d) if d.ends_with("dictionaries")));
        // The built-in policy is the same file, with the same dictionaries.
        let b = Policy::builtin().unwrap();
        assert_eq!(b.text, p.text);
        assert_eq!(
            b.dictionaries.hash().unwrap(),
            p.dictionaries.hash().unwrap()
        );
        assert_eq!(b.source.to_string(), crate::builtin::NAME);
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deid/safe-harbor.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let bad = dir.path().join("p.toml");
        std::fs::write(
            &bad,
            text.replace("[dates]", "[dates]\nshift_everything = true"),
        )
        .unwrap();
        let err = Policy::load(&bad).unwrap_err().to_string();
        assert!(err.contains("shift_everything"), "{err}");
        assert!(err.contains("p.toml"), "{err}");
        // The terminology table is parsed as strictly: an unknown key, an
        // unknown code syntax, a system that is no URI, and the old
        // `verbatim` list (whose meaning is gone) are all refused.
        for (from, to, named) in [
            (
                "[terminology.systems]",
                "[terminology.systems]\n\"http://example.org/local\" = \"anything\"",
                "anything",
            ),
            (
                "[terminology]",
                "[terminology]\nkeep_all = true",
                "keep_all",
            ),
            (
                "[terminology.systems]",
                "[terminology.systems]\n\"local codes\" = \"hl7\"",
                "terminology.systems",
            ),
            (
                "\n[terminology]",
                "verbatim = [\"code\"]\n\n[terminology]",
                "verbatim",
            ),
        ] {
            assert!(text.contains(from), "{from}");
            std::fs::write(&bad, text.replacen(from, to, 1)).unwrap();
            let err = Policy::load(&bad).unwrap_err().to_string();
            assert!(err.contains(named), "{named}: {err}");
        }
        // A value the types allow but Safe Harbor does not: named by its field.
        std::fs::write(&bad, text.replace("age_cap = 90", "age_cap = 95")).unwrap();
        match Policy::load(&bad).unwrap_err() {
            DeidError::Policy {
                source: ConfigError::Invalid(e),
                ..
            } => assert_eq!(e.field, "dates.age_cap"),
            other => panic!("{other}"),
        }
    }
}
