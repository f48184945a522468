//! Named fields (`llio.ml`'s `namedValue`), the encoding of the `statistics`
//! answer: `int32 type, string name, value` with type 1 int32, 2 int64,
//! 3 float, 4 string, 5 list (`int32 count`, then named fields, in order).
//!
//! The answer to `statistics` is one field named `arakoon_stats` whose list
//! holds, as Arakoon's `Statistics.to_buffer` writes them: floats `start`,
//! `last`, `avg_set_size`, `avg_get_size`, `avg_range_size`,
//! `avg_range_entries_size`, `avg_rev_range_entries_size`, `avg_prefix_size`,
//! `avg_del_prefix_size`; lists `harvest_stats`, `set_info`, `get_info`,
//! `del_info`, `seq_info`, `mget_info`, `mget_option_info`, `tas_info`,
//! `replace_info`, `range_info`, `range_entries_info`,
//! `rev_range_entries_info`, `prefix_info`, `delete_prefix_info`, `op_info`
//! (each: int `n`, floats `min`, `max`, `m2`, `avg`, `var`); float
//! `mem_allocated`; ints `mem_maxrss`, `mem_minor_collections`,
//! `mem_major_collections`, `mem_compactions`; list `node_is` (an int64 per
//! node name: its tlog position). [`NamedField::timing`] builds one of the
//! `*_info` lists.

use crate::error::ProtocolError;
use crate::wire::{self, ReadResult, Reader};
use crate::{decode_payload, Limits};

/// A named value.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedField {
    /// The name (ASCII in practice; other bytes are decoded lossily).
    pub name: String,
    pub value: NamedValue,
}

/// The value of a named field.
#[derive(Debug, Clone, PartialEq)]
pub enum NamedValue {
    /// Type 1.
    Int32(i32),
    /// Type 2.
    Int64(i64),
    /// Type 3: the IEEE 754 bits as an int64.
    Float(f64),
    /// Type 4 (decoded lossily if not UTF-8).
    String(String),
    /// Type 5: fields in order.
    List(Vec<NamedField>),
}

/// Smallest named field: type and an empty name, then the smallest value
/// (an int32).
const MIN_NAMED_FIELD_SIZE: usize = 12;

impl NamedField {
    pub fn new(name: impl Into<String>, value: NamedValue) -> Self {
        NamedField {
            name: name.into(),
            value,
        }
    }

    /// One of Arakoon's timing lists (`set_info`, …): `n`, `min`, `max`,
    /// `m2`, `avg`, `var`.
    pub fn timing(name: &str, n: i32, min: f64, max: f64, m2: f64, avg: f64, var: f64) -> Self {
        NamedField::new(
            name,
            NamedValue::List(vec![
                NamedField::new("n", NamedValue::Int32(n)),
                NamedField::new("min", NamedValue::Float(min)),
                NamedField::new("max", NamedValue::Float(max)),
                NamedField::new("m2", NamedValue::Float(m2)),
                NamedField::new("avg", NamedValue::Float(avg)),
                NamedField::new("var", NamedValue::Float(var)),
            ]),
        )
    }

    /// The field's wire type (1–5).
    pub fn kind(&self) -> i32 {
        match self.value {
            NamedValue::Int32(_) => 1,
            NamedValue::Int64(_) => 2,
            NamedValue::Float(_) => 3,
            NamedValue::String(_) => 4,
            NamedValue::List(_) => 5,
        }
    }

    /// The field of a list with this name, if any.
    pub fn get(&self, name: &str) -> Option<&NamedField> {
        match &self.value {
            NamedValue::List(fields) => fields.iter().find(|f| f.name == name),
            _ => None,
        }
    }

    /// Appends the encoding of this field.
    pub fn encode(&self, out: &mut Vec<u8>) {
        wire::put_i32(out, self.kind());
        wire::put_bytes(out, self.name.as_bytes());
        match &self.value {
            NamedValue::Int32(i) => wire::put_i32(out, *i),
            NamedValue::Int64(i) => wire::put_i64(out, *i),
            NamedValue::Float(f) => wire::put_f64(out, *f),
            NamedValue::String(s) => wire::put_bytes(out, s.as_bytes()),
            NamedValue::List(fields) => {
                wire::put_len(out, fields.len());
                for field in fields {
                    field.encode(out);
                }
            }
        }
    }

    /// Decodes one field that fills all of `bytes`. Lists nest at most
    /// `limits.max_nesting_depth` levels.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<NamedField, ProtocolError> {
        decode_payload(bytes, limits, "statistics", |r| {
            read_named_field(r, 0, limits)
        })
    }
}

pub(crate) fn read_named_field(
    r: &mut Reader<'_>,
    depth: usize,
    limits: &Limits,
) -> ReadResult<NamedField> {
    let kind = r.i32("statistics.type")?;
    let name = String::from_utf8_lossy(&r.bytes("statistics.name")?).into_owned();
    let value = match kind {
        1 => NamedValue::Int32(r.i32("statistics.int")?),
        2 => NamedValue::Int64(r.i64("statistics.int64")?),
        3 => NamedValue::Float(r.f64("statistics.float")?),
        4 => {
            NamedValue::String(String::from_utf8_lossy(&r.bytes("statistics.string")?).into_owned())
        }
        5 => {
            if depth >= limits.max_nesting_depth {
                return Err(ProtocolError::NestingTooDeep {
                    limit: limits.max_nesting_depth,
                }
                .into());
            }
            NamedValue::List(r.list("statistics.list", MIN_NAMED_FIELD_SIZE, |r| {
                read_named_field(r, depth + 1, limits)
            })?)
        }
        kind => return Err(ProtocolError::UnknownNamedFieldType { name, kind }.into()),
    };
    Ok(NamedField { name, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layout from llio.ml's `named_field_to`, written out by hand.
    #[test]
    fn golden_named_fields() {
        let field = NamedField::new(
            "s",
            NamedValue::List(vec![
                NamedField::new("i", NamedValue::Int32(7)),
                NamedField::new("f", NamedValue::Float(0.5)),
            ]),
        );
        let mut out = Vec::new();
        field.encode(&mut out);
        #[rustfmt::skip]
        let expected = [
            5, 0, 0, 0, 1, 0, 0, 0, b's', 2, 0, 0, 0,
            1, 0, 0, 0, 1, 0, 0, 0, b'i', 7, 0, 0, 0,
            3, 0, 0, 0, 1, 0, 0, 0, b'f', 0, 0, 0, 0, 0, 0, 0xe0, 0x3f,
        ];
        assert_eq!(out, expected);
        assert_eq!(NamedField::decode(&out, &Limits::default()), Ok(field));
    }

    #[test]
    fn unknown_type_names_the_field() {
        let mut out = Vec::new();
        wire::put_i32(&mut out, 9);
        wire::put_bytes(&mut out, b"x");
        assert_eq!(
            NamedField::decode(&out, &Limits::default()),
            Err(ProtocolError::UnknownNamedFieldType {
                name: "x".into(),
                kind: 9
            })
        );
    }
}
