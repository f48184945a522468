//! Shared by the store's integration tests: an independent model of
//! Arakoon's update and read semantics over a `BTreeMap`, and small helpers.
#![allow(dead_code)]

use protocol::{KeyRange, RangeAssertion, Update};
use std::collections::BTreeMap;
use std::path::Path;
use store::{Order, UpdateFailure, UpdateOk, UpdateResult};

pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Applies `update` to `model` the obvious way: a sequence works on a copy
/// that replaces the model only if every update in it succeeded.
pub fn model_apply(model: &mut Model, update: &Update) -> UpdateResult {
    match update {
        Update::Set { key, value } => {
            model.insert(key.clone(), value.clone());
            Ok(UpdateOk::Done)
        }
        Update::Delete { key } => match model.remove(key) {
            Some(_) => Ok(UpdateOk::Done),
            None => Err(UpdateFailure::NotFound { key: key.clone() }),
        },
        Update::TestAndSet {
            key,
            expected,
            wanted,
        } => {
            let found = model.get(key).cloned();
            if found == *expected {
                put(model, key, wanted);
            }
            Ok(UpdateOk::Previous(found))
        }
        Update::Replace { key, wanted } => {
            let found = model.get(key).cloned();
            put(model, key, wanted);
            Ok(UpdateOk::Previous(found))
        }
        Update::DeletePrefix { prefix } => {
            let before = model.len();
            model.retain(|k, _| !k.starts_with(prefix));
            Ok(UpdateOk::Count((before - model.len()) as u64))
        }
        Update::Assert { key, value } => {
            if model.get(key) == value.as_ref() {
                Ok(UpdateOk::Done)
            } else {
                Err(UpdateFailure::AssertionFailed { key: key.clone() })
            }
        }
        Update::AssertExists { key } => {
            if model.contains_key(key) {
                Ok(UpdateOk::Done)
            } else {
                Err(UpdateFailure::AssertionFailed { key: key.clone() })
            }
        }
        Update::Nop => Ok(UpdateOk::Done),
        Update::UserFunction { name, .. } => {
            Err(UpdateFailure::UserFunctionNotFound { name: name.clone() })
        }
        Update::AssertRange {
            prefix,
            assertion: RangeAssertion::ContainsExactly(keys),
        } => {
            let found: Vec<&Vec<u8>> = model.keys().filter(|k| k.starts_with(prefix)).collect();
            let mut asserted: Vec<&Vec<u8>> = keys.iter().collect();
            asserted.sort();
            if found == asserted {
                return Ok(UpdateOk::Done);
            }
            let at = found
                .iter()
                .zip(&asserted)
                .take_while(|(f, a)| f == a)
                .count();
            Err(UpdateFailure::RangeAssertionFailed {
                prefix: prefix.clone(),
                expected: asserted.get(at).map(|k| k.to_vec()),
                found: found.get(at).map(|k| k.to_vec()),
            })
        }
        Update::Sequence(updates) | Update::SyncedSequence(updates) => {
            let mut copy = model.clone();
            for inner in updates {
                model_apply(&mut copy, inner)?;
            }
            *model = copy;
            Ok(UpdateOk::Done)
        }
    }
}

fn put(model: &mut Model, key: &[u8], value: &Option<Vec<u8>>) {
    match value {
        Some(value) => {
            model.insert(key.to_vec(), value.clone());
        }
        None => {
            model.remove(key);
        }
    }
}

pub fn limit(max: i64) -> usize {
    usize::try_from(max).unwrap_or(usize::MAX)
}

fn above(key: &[u8], low: Option<&[u8]>, inclusive: bool) -> bool {
    match low {
        None => true,
        Some(low) => key > low || (inclusive && key == low),
    }
}

fn below(key: &[u8], high: Option<&[u8]>, inclusive: bool) -> bool {
    match high {
        None => true,
        Some(high) => key < high || (inclusive && key == high),
    }
}

pub fn model_range_entries(
    model: &Model,
    first: Option<&[u8]>,
    first_inclusive: bool,
    last: Option<&[u8]>,
    last_inclusive: bool,
    max: i64,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    model
        .iter()
        .filter(|(k, _)| above(k, first, first_inclusive) && below(k, last, last_inclusive))
        .take(limit(max))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Arakoon's reverse range: `first` is the high end, `last` the low end.
pub fn model_rev_range_entries(
    model: &Model,
    first: Option<&[u8]>,
    first_inclusive: bool,
    last: Option<&[u8]>,
    last_inclusive: bool,
    max: i64,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    model
        .iter()
        .rev()
        .filter(|(k, _)| below(k, first, first_inclusive) && above(k, last, last_inclusive))
        .take(limit(max))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub fn model_prefix_keys(model: &Model, prefix: &[u8], max: i64) -> Vec<Vec<u8>> {
    model
        .keys()
        .filter(|k| k.starts_with(prefix))
        .take(limit(max))
        .cloned()
        .collect()
}

/// Everything in the store, ascending.
pub fn contents(store: &store::Store) -> Model {
    store
        .read()
        .and_then(|view| view.range_entries(&KeyRange::all(), Order::Ascending, usize::MAX))
        .expect("full range of the store")
        .into_iter()
        .collect()
}

/// A small deterministic generator for crash choices.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub fn sim_path() -> &'static Path {
    Path::new("/node/store/arakoon.db")
}

pub fn options() -> store::StoreOptions {
    store::StoreOptions {
        cache_size_bytes: 4 << 20,
        verify_on_open: true,
    }
}

pub fn set(key: &str, value: &str) -> Update {
    Update::Set {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }
}
