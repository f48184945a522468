//! The typed reader over a parsed ini file: strings, integers, booleans,
//! decimals and lists, each error naming section, key and value; and which
//! keys were read, so the rest can be warned about. It knows nothing of
//! Arakoon's keys (`rules.rs` does).

use crate::ini::Ini;
use crate::{ClusterConfig, ConfigError};
use std::collections::BTreeSet;

pub(crate) struct Reader<'a> {
    ini: &'a Ini,
    used: BTreeSet<(String, String)>,
    /// Warnings about keys that were read (accepted without effect, or
    /// weakened), in the order found.
    warnings: Vec<String>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(ini: &'a Ini) -> Reader<'a> {
        Reader {
            ini,
            used: BTreeSet::new(),
            warnings: Vec::new(),
        }
    }

    /// The sections of the file, by name.
    pub(crate) fn section_names(&self) -> impl Iterator<Item = &'a str> {
        self.ini.sections.keys().map(String::as_str)
    }

    /// Whether `[section] key` is given (without marking it read).
    pub(crate) fn is_set(&self, section: &str, key: &str) -> bool {
        self.ini
            .sections
            .get(section)
            .is_some_and(|s| s.contains_key(key))
    }

    /// Records a warning about `[section] key`, if the key is given: with
    /// its line, once.
    pub(crate) fn warn(&mut self, section: &str, key: &str, why: impl std::fmt::Display) {
        let Some(entry) = self.ini.sections.get(section).and_then(|s| s.get(key)) else {
            return;
        };
        self.used.insert((section.to_string(), key.to_string()));
        self.warnings.push(format!(
            "config line {}: [{section}] {key} = '{}': {why}",
            entry.line, entry.value
        ));
    }

    /// The warnings recorded with [`Reader::warn`].
    pub(crate) fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Whether the file has a section `[name]`.
    pub(crate) fn has_section(&self, name: &str) -> bool {
        self.ini.sections.contains_key(name)
    }

    pub(crate) fn raw(&mut self, section: &str, key: &str) -> Option<String> {
        self.used.insert((section.to_string(), key.to_string()));
        self.ini
            .sections
            .get(section)
            .and_then(|s| s.get(key))
            .map(|e| e.value.clone())
    }

    pub(crate) fn required(&mut self, section: &str, key: &str) -> Result<String, ConfigError> {
        match self.raw(section, key) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ConfigError::Missing {
                section: section.into(),
                key: key.into(),
            }),
        }
    }

    pub(crate) fn parsed<T>(
        &mut self,
        section: &str,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.raw(section, key) {
            None => Ok(None),
            Some(value) => parse(&value).map(Some).map_err(|reason| {
                let reason = match value.find(['#', ';']) {
                    // Arakoon's reading, kept: only a whole line is a comment.
                    Some(_) => format!(
                        "{reason} (a '#' or ';' after a value is part of the value, as in \
                         Arakoon; put comments on lines of their own)"
                    ),
                    None => reason,
                };
                ConfigError::Invalid {
                    section: section.into(),
                    key: key.into(),
                    value,
                    reason,
                }
            }),
        }
    }

    pub(crate) fn int(&mut self, section: &str, key: &str) -> Result<Option<u64>, ConfigError> {
        self.parsed(section, key, parse_int)
    }

    pub(crate) fn bool(
        &mut self,
        section: &str,
        key: &str,
        default: bool,
    ) -> Result<bool, ConfigError> {
        Ok(self.parsed(section, key, parse_bool)?.unwrap_or(default))
    }

    pub(crate) fn float(&mut self, section: &str, key: &str) -> Result<Option<f64>, ConfigError> {
        self.parsed(section, key, parse_float)
    }

    pub(crate) fn list(&mut self, section: &str, key: &str) -> Option<Vec<String>> {
        self.raw(section, key).map(|v| parse_list(&v))
    }

    /// Warnings for the keys no rule read, in the sections the config uses.
    pub(crate) fn unknown_keys(&self, config: &ClusterConfig) -> Vec<String> {
        let mut warnings = Vec::new();
        let node_sections: BTreeSet<&str> = config.nodes.iter().map(|n| n.name.as_str()).collect();
        for (section, keys) in &self.ini.sections {
            let known_section = section == "global"
                || node_sections.contains(section.as_str())
                || self.used.iter().any(|(s, _)| s == section);
            if !known_section {
                // Sections of other tools ([nursery], log configs not referenced): leave them be.
                continue;
            }
            for (key, entry) in keys {
                if !self.used.contains(&(section.clone(), key.clone())) {
                    warnings.push(format!(
                        "config line {}: unknown key [{section}] {key} ignored",
                        entry.line
                    ));
                }
            }
        }
        warnings
    }
}

/// A non-negative integer in OCaml's forms, as Arakoon reads them:
/// decimal, `0x`/`0X` hexadecimal, `0o`/`0O` octal, `0b`/`0B` binary, with
/// `_` anywhere after the first digit.
pub(crate) fn parse_int(s: &str) -> Result<u64, String> {
    const WHAT: &str = "not a non-negative integer (decimal, 0x hex, 0o octal or 0b binary)";
    let s = s.strip_prefix('+').unwrap_or(s);
    let (radix, body) = match s.get(..2) {
        Some("0x" | "0X") => (16, &s[2..]),
        Some("0o" | "0O") => (8, &s[2..]),
        Some("0b" | "0B") => (2, &s[2..]),
        _ => (10, s),
    };
    if !body.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(WHAT.to_string());
    }
    let digits: String = body.chars().filter(|c| *c != '_').collect();
    u64::from_str_radix(&digits, radix).map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow => format!("larger than {}", u64::MAX),
        _ => WHAT.to_string(),
    })
}

pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("not a boolean (true or false)".to_string()),
    }
}

pub(crate) fn parse_float(s: &str) -> Result<f64, String> {
    let digits: String = s.chars().filter(|c| *c != '_').collect();
    match digits.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 => Ok(f),
        _ => Err("not a non-negative number".to_string()),
    }
}

/// A list as Arakoon splits one: on commas, spaces and tabs.
pub(crate) fn parse_list(s: &str) -> Vec<String> {
    s.split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

pub(crate) fn invalid(
    section: &str,
    key: &str,
    value: impl ToString,
    reason: impl ToString,
) -> ConfigError {
    ConfigError::Invalid {
        section: section.into(),
        key: key.into(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// `v` if it lies in `[min, max]`, else an error naming both ends.
pub(crate) fn in_bounds(
    section: &str,
    key: &str,
    v: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    if v < min || v > max {
        return Err(invalid(
            section,
            key,
            v,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

pub(crate) fn in_range<T: TryFrom<u64>>(
    section: &str,
    key: &str,
    v: u64,
    min: u64,
) -> Result<T, ConfigError> {
    if v < min {
        return Err(invalid(section, key, v, format!("must be at least {min}")));
    }
    T::try_from(v).map_err(|_| invalid(section, key, v, "too large"))
}
