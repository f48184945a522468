//! The `.ini` syntax Arakoon reads: `[section]` headers, `key = value`
//! lines, values trimmed. A comment is a whole line whose first non-blank
//! character is `#` or `;`; as in Arakoon, a `#` or `;` after a value is
//! part of the value (the typed readers point that out when such a value
//! does not parse). Parsing keeps line numbers so that errors can point at
//! them.

use crate::ConfigError;
use std::collections::BTreeMap;

/// One `key = value` with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    pub line: usize,
}

/// Sections in file order of first appearance, each a map of keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ini {
    pub sections: BTreeMap<String, BTreeMap<String, Entry>>,
}

fn is_comment(line: &str) -> bool {
    line.starts_with('#') || line.starts_with(';')
}

impl Ini {
    /// Parses `text`. A key outside any section, a line that is neither a
    /// header nor `key = value`, and a key given twice in one section are errors.
    pub fn parse(text: &str) -> Result<Ini, ConfigError> {
        let mut ini = Ini::default();
        let mut current: Option<String> = None;
        for (n, raw) in text.lines().enumerate() {
            let line_no = n + 1;
            let line = raw.trim();
            if line.is_empty() || is_comment(line) {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']') else {
                    return Err(ConfigError::Syntax {
                        line: line_no,
                        reason: format!("section header '{line}' has no closing ']'"),
                    });
                };
                let name = name.trim().to_string();
                if name.is_empty() {
                    return Err(ConfigError::Syntax {
                        line: line_no,
                        reason: "empty section name".into(),
                    });
                }
                ini.sections.entry(name.clone()).or_default();
                current = Some(name);
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(ConfigError::Syntax {
                    line: line_no,
                    reason: format!("expected 'key = value' or '[section]', found '{line}'"),
                });
            };
            let Some(section) = &current else {
                return Err(ConfigError::Syntax {
                    line: line_no,
                    reason: format!("'{}' appears before any [section]", key.trim()),
                });
            };
            let key = key.trim().to_string();
            let keys = ini.sections.entry(section.clone()).or_default();
            if let Some(first) = keys.get(&key) {
                return Err(ConfigError::Syntax {
                    line: line_no,
                    reason: format!(
                        "[{section}] {key} given twice (first on line {})",
                        first.line
                    ),
                });
            }
            keys.insert(
                key,
                Entry {
                    value: value.trim().to_string(),
                    line: line_no,
                },
            );
        }
        Ok(ini)
    }
}
