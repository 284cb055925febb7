//! Secret keys: loaded from a file or an environment variable, never printed.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::{Path, PathBuf};

/// Minimum key length in bytes; shorter keys make pseudonyms guessable.
pub const MIN_KEY_BYTES: usize = 32;

/// Where a secret key came from, for error messages (never the key itself).
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A key file given on the command line.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "key file {}", p.display()),
            KeySource::Env(v) => write!(f, "environment variable {v}"),
        }
    }
}

/// Errors while loading a secret key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key was provided at all.
    #[error(
        "no de-identification key: pass --key-file FILE or set {env}.\n\
         Create a key once with `clintune keygen --out FILE` and keep it secret: \
         the same key gives the same pseudonyms and date shifts on every run"
    )]
    Missing {
        /// The environment variable that was checked.
        env: String,
    },
    /// The key file could not be read.
    #[error("cannot read {source_desc}: {err}")]
    Unreadable {
        /// Where the key was to come from.
        source_desc: KeySource,
        /// The I/O error.
        err: std::io::Error,
    },
    /// The key is too short.
    #[error("the key from {source_desc} is {len} bytes; at least {MIN_KEY_BYTES} are required")]
    TooShort {
        /// Where the key came from.
        source_desc: KeySource,
        /// Its length in bytes after trimming.
        len: usize,
    },
}

/// A secret key. Its `Debug` output is redacted; there is no `Display`.
#[derive(Clone)]
pub struct SecretKey {
    /// HMAC state with the key already absorbed; cloned per use, which saves
    /// re-deriving the inner and outer pads for every pseudonym.
    mac: Hmac<Sha256>,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// Builds a key from raw bytes (surrounding whitespace removed).
    pub fn from_bytes(raw: &[u8], source: KeySource) -> Result<Self, KeyError> {
        let trimmed = raw.trim_ascii();
        if trimmed.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                source_desc: source,
                len: trimmed.len(),
            });
        }
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(trimmed)
            .expect("HMAC accepts keys of any length");
        Ok(Self { mac })
    }

    /// Loads the key from `file` when given, else from the environment variable `env`.
    pub fn load(file: Option<&Path>, env: &str) -> Result<Self, KeyError> {
        if let Some(path) = file {
            let source = KeySource::File(path.to_path_buf());
            let raw = std::fs::read(path).map_err(|err| KeyError::Unreadable {
                source_desc: source.clone(),
                err,
            })?;
            return Self::from_bytes(&raw, source);
        }
        match std::env::var_os(env) {
            Some(v) if !v.is_empty() => {
                Self::from_bytes(v.as_encoded_bytes(), KeySource::Env(env.to_string()))
            }
            _ => Err(KeyError::Missing {
                env: env.to_string(),
            }),
        }
    }

    /// HMAC-SHA256 of `parts` under this key; parts are length-prefixed so
    /// that ("ab","c") and ("a","bc") never collide.
    pub fn hmac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// A public identifier of the key (not the key): lets a reviewer see that
    /// two runs used the same key without learning it.
    pub fn key_id(&self) -> String {
        hex::encode(&self.hmac(&[b"clintune key id v1"])[..8])
    }
}

/// Generates a fresh random key as 64 hex characters, from the OS's entropy source.
pub fn generate_key_hex() -> std::io::Result<String> {
    let mut buf = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom")?;
    std::io::Read::read_exact(&mut f, &mut buf)?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> SecretKey {
        SecretKey::from_bytes(s.as_bytes(), KeySource::Env("T".into())).unwrap()
    }

    #[test]
    fn short_key_is_refused() {
        let err = SecretKey::from_bytes(b"short", KeySource::Env("T".into())).unwrap_err();
        assert!(err.to_string().contains("at least 32"));
    }

    #[test]
    fn debug_is_redacted() {
        let k = key("0123456789abcdef0123456789abcdef-secret");
        assert!(!format!("{k:?}").contains("secret"));
    }

    #[test]
    fn hmac_is_keyed_and_length_prefixed() {
        let a = key("0123456789abcdef0123456789abcdef");
        let b = key("0123456789abcdef0123456789abcdeX");
        assert_ne!(a.hmac(&[b"x"]), b.hmac(&[b"x"]));
        assert_ne!(a.hmac(&[b"ab", b"c"]), a.hmac(&[b"a", b"bc"]));
        assert_eq!(a.hmac(&[b"x"]), a.hmac(&[b"x"]));
    }
}
