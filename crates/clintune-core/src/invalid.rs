//! Configuration errors: a TOML file that does not parse, or a value that
//! parses but that the stage cannot use.

/// A setting whose value the types allow but the stage cannot use: which
/// setting (`data.seq_len`, `dates.age_cap`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct Invalid {
    /// The setting, as a dotted path from the top of its file.
    pub field: String,
    /// What is wrong, worded to follow the field's name ("must be at least 1").
    pub problem: String,
}

impl Invalid {
    /// `field` and what is wrong with it.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The same error for a setting nested under `table` (a curation config
    /// inside a recipe's `[curate]`).
    pub fn within(mut self, table: &str) -> Self {
        self.field = format!("{table}.{}", self.field);
        self
    }
}

/// Why a configuration file's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not valid TOML, or a key or type its schema does not know: the
    /// parser's message, with the offending line cut to fit.
    #[error("{0}")]
    Syntax(String),
    /// Parsed, but a value cannot be used.
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

impl ConfigError {
    /// Parses `text` as TOML into `T`, with the parser's message cut to fit.
    pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
        toml::from_str(text).map_err(|e| Self::syntax(text, &e))
    }

    /// The parser's error `e` on `text`, with the offending line cut to fit.
    pub fn syntax(text: &str, e: &toml::de::Error) -> ConfigError {
        ConfigError::Syntax(crate::toml_text::error_message(text, e))
    }

    /// The same error for settings nested under `table`.
    pub fn within(self, table: &str) -> Self {
        match self {
            ConfigError::Invalid(i) => ConfigError::Invalid(i.within(table)),
            ConfigError::Syntax(m) => ConfigError::Syntax(format!("[{table}]: {m}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_names_its_field_and_nests() {
        let e = Invalid::new("dedup.threshold", "must be in (0, 1], got 2");
        assert_eq!(e.to_string(), "dedup.threshold must be in (0, 1], got 2");
        let e = ConfigError::from(e).within("curate");
        assert_eq!(
            e.to_string(),
            "curate.dedup.threshold must be in (0, 1], got 2"
        );
        assert!(
            matches!(e, ConfigError::Invalid(Invalid { ref field, .. }) if field == "curate.dedup.threshold")
        );
    }

    #[test]
    fn syntax_errors_keep_the_parsers_message() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            a: u32,
        }
        let e = ConfigError::parse_toml::<T>("b = 1\n").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax(_)));
        assert!(e.to_string().contains('b'), "{e}");
    }
}
