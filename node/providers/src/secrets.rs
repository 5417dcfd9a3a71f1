//! Provider secrets: resolved from environment variables or files at start, never logged.

use std::fmt;
use std::path::Path;

use crate::config::{ConfigError, ProviderConfig};

/// A secret value. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for building an upstream request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Shows enough of a key to recognise it, and nothing an attacker could use.
pub fn redact(key: &str) -> String {
    let prefix: String = key.chars().take(4).collect();
    format!("{prefix}…[redacted]")
}

/// What resolving a provider's key found.
#[derive(Debug)]
pub enum ResolvedKey {
    /// The provider needs no key (demo) or none was configured.
    NotNeeded,
    /// The key was found.
    Found(Secret),
    /// The named variable or file is missing or empty.
    Missing(String),
}

/// The value of environment variable `var`, trimmed; `None` when unset or blank.
pub fn secret_from_env(var: &str) -> Option<Secret> {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .map(Secret::new)
}

/// The contents of `path`, trimmed; `Ok(None)` when the file is blank.
pub fn secret_from_file(path: &Path) -> std::io::Result<Option<Secret>> {
    let text = std::fs::read_to_string(path)?;
    let text = text.trim();
    Ok((!text.is_empty()).then(|| Secret::new(text.to_owned())))
}

/// Reads the provider's key from its environment variable or file.
pub fn resolve_provider_key(
    index: usize,
    provider: &ProviderConfig,
) -> Result<ResolvedKey, ConfigError> {
    if let Some(var) = &provider.api_key_env {
        return Ok(match secret_from_env(var) {
            Some(key) => ResolvedKey::Found(key),
            None => ResolvedKey::Missing(format!("environment variable {var} is not set")),
        });
    }
    if let Some(path) = &provider.api_key_file {
        return read_key_file(index, path);
    }
    Ok(ResolvedKey::NotNeeded)
}

fn read_key_file(index: usize, path: &Path) -> Result<ResolvedKey, ConfigError> {
    match secret_from_file(path) {
        Ok(Some(key)) => Ok(ResolvedKey::Found(key)),
        Ok(None) => Ok(ResolvedKey::Missing(format!(
            "key file {} is empty",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ResolvedKey::Missing(format!(
            "key file {} does not exist",
            path.display()
        ))),
        Err(e) => Err(ConfigError::invalid(
            format!("providers[{index}].api_key_file"),
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}
