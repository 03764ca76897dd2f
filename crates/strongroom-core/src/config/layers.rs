//! Merging configuration layers into one TOML table, then into [`super::Config`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::{Table, Value};

/// Prefix of every environment variable that sets a setting.
pub const ENV_PREFIX: &str = "STRONGROOM_";

/// Environment variables with the prefix that are not settings (read by the CLI).
const ENV_NOT_SETTINGS: &[&str] = &["STRONGROOM_CONFIG"];

/// Why the configuration could not be loaded. Each variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A setting has a bad value or does not exist.
    #[error("invalid setting `{setting}`{origin}: {message}")]
    Invalid {
        /// Dotted path of the setting, e.g. `limits.max_body_bytes`.
        setting: String,
        /// Where the value came from, e.g. ` (from STRONGROOM_LISTEN)`; may be empty.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// Where a setting's value came from, to name it in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An environment variable.
    Env(String),
    /// A command-line flag.
    Flag(&'static str),
}

/// Where each overridden setting came from, by dotted path.
#[derive(Debug, Default)]
pub(super) struct Origins(BTreeMap<String, Source>);

impl Origins {
    /// ` (from X)` for `setting` or a setting below it; empty when it came from the file
    /// or the defaults.
    pub(super) fn describe(&self, setting: &str) -> String {
        let source = self.0.get(setting).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| k.starts_with(&format!("{setting}.")))
                .map(|(_, v)| v)
        });
        match source {
            Some(Source::Env(var)) => format!(" (from {var})"),
            Some(Source::Flag(flag)) => format!(" (from --{})", flag.replace('_', "-")),
            None => String::new(),
        }
    }
}

impl ConfigError {
    /// Fills in where the offending value came from, if not yet known.
    pub(super) fn with_origin(self, origins: &Origins) -> Self {
        match self {
            Self::Invalid {
                setting,
                origin,
                message,
            } if origin.is_empty() => Self::Invalid {
                origin: origins.describe(&setting),
                setting,
                message,
            },
            other => other,
        }
    }
}

/// Merges the layers and deserialises the result into `T`.
pub(super) fn merge<T: DeserializeOwned>(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: Vec<(&'static str, Value)>,
) -> Result<(T, Origins), ConfigError> {
    let mut root = match file {
        Some(path) => read_file(path)?,
        None => Table::new(),
    };
    let mut origins: BTreeMap<String, Source> = BTreeMap::new();
    for (name, raw) in env {
        let Some(path) = env_setting_path(&name) else {
            continue;
        };
        set(&mut root, &path, env_value(&raw));
        origins.insert(path.join("."), Source::Env(name));
    }
    for (setting, value) in flags {
        let path: Vec<String> = setting.split('.').map(str::to_owned).collect();
        set(&mut root, &path, value);
        origins.insert(setting.to_owned(), Source::Flag(setting));
    }
    let origins = Origins(origins);
    let value = serde_path_to_error::deserialize(Value::Table(root)).map_err(|e| {
        let setting = e.path().to_string();
        // toml's message repeats the key on a second line; the first line is the message.
        let message = e
            .into_inner()
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        ConfigError::Invalid {
            origin: origins.describe(&setting),
            setting,
            message,
        }
    })?;
    Ok((value, origins))
}

fn read_file(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    text.parse::<Table>().map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// `STRONGROOM_LIMITS__MAX_BODY_BYTES` → `["limits", "max_body_bytes"]`.
fn env_setting_path(name: &str) -> Option<Vec<String>> {
    let rest = name.strip_prefix(ENV_PREFIX)?;
    if rest.is_empty() || ENV_NOT_SETTINGS.contains(&name) {
        return None;
    }
    Some(rest.split("__").map(str::to_ascii_lowercase).collect())
}

/// Environment values are typed by TOML's rules when they parse as a TOML scalar
/// (`8443`, `true`), and are strings otherwise (`127.0.0.1:8443`, `/var/lib/x`).
fn env_value(raw: &str) -> Value {
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => match t.remove("v") {
            Some(v @ (Value::Integer(_) | Value::Float(_) | Value::Boolean(_))) => v,
            _ => Value::String(raw.to_owned()),
        },
        Err(_) => Value::String(raw.to_owned()),
    }
}

fn set(root: &mut Table, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut table = root;
    for key in parents {
        let entry = table
            .entry(key.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        let Value::Table(next) = entry else { return };
        table = next;
    }
    table.insert(last.clone(), value);
}
