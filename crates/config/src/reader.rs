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
}

impl<'a> Reader<'a> {
    pub(crate) fn new(ini: &'a Ini) -> Reader<'a> {
        Reader {
            ini,
            used: BTreeSet::new(),
        }
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
            Some(value) => parse(&value)
                .map(Some)
                .map_err(|reason| ConfigError::Invalid {
                    section: section.into(),
                    key: key.into(),
                    value,
                    reason,
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

    /// Warnings for the keys no rule read, in the sections the config uses;
    /// `tolerated` global keys are known to other tools and pass silently.
    pub(crate) fn unknown_keys(&self, config: &ClusterConfig, tolerated: &[&str]) -> Vec<String> {
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
                let used = self.used.contains(&(section.clone(), key.clone()));
                let tolerated = section == "global" && tolerated.contains(&key.as_str());
                if !used && !tolerated {
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

pub(crate) fn parse_int(s: &str) -> Result<u64, String> {
    let digits: String = s.chars().filter(|c| *c != '_').collect();
    digits
        .parse::<u64>()
        .map_err(|_| "not a non-negative integer".to_string())
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

pub(crate) fn parse_list(s: &str) -> Vec<String> {
    s.split(',')
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
