//! The tlog as the consensus core's log: [`consensus::LogRead`] for
//! [`Tlog`], and conversions between the two crates' entry types. One
//! adapter, used by the node and the simulator alike.
//!
//! Reads fail with `Compacted` below the log's base (collapsed or reset
//! away), `Unavailable` past its end, and `Storage` for anything the tlog
//! itself reports (a corrupt frame, an IO error): the node stops on those.

use crate::{Entry, Tlog};
use consensus::{LogError, LogRead};

impl From<&consensus::Entry> for Entry {
    fn from(e: &consensus::Entry) -> Entry {
        Entry {
            index: e.index,
            term: e.term,
            payload: e.payload.to_vec(),
        }
    }
}

impl From<Entry> for consensus::Entry {
    fn from(e: Entry) -> consensus::Entry {
        consensus::Entry {
            index: e.index,
            term: e.term,
            payload: e.payload.into(),
        }
    }
}

impl LogRead for Tlog {
    fn first_index(&self) -> u64 {
        Tlog::first_index(self)
    }

    fn last_index(&self) -> u64 {
        Tlog::last_index(self)
    }

    fn term(&self, index: u64) -> Result<u64, LogError> {
        if index + 1 < Tlog::first_index(self) {
            return Err(LogError::Compacted { index });
        }
        if index > Tlog::last_index(self) {
            return Err(LogError::Unavailable { index });
        }
        Tlog::term(self, index).ok_or_else(|| LogError::Storage {
            message: format!("{}: no term for index {index}", self.dir().display()),
        })
    }

    fn entries(
        &self,
        from: u64,
        to: u64,
        max_bytes: u64,
    ) -> Result<Vec<consensus::Entry>, LogError> {
        if from < Tlog::first_index(self) {
            return Err(LogError::Compacted { index: from });
        }
        if to > Tlog::last_index(self) {
            return Err(LogError::Unavailable { index: to });
        }
        let entries = self
            .read(from, to + 1, max_bytes)
            .map_err(|e| LogError::Storage {
                message: e.to_string(),
            })?;
        Ok(entries.into_iter().map(consensus::Entry::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TlogOptions;
    use disk::SimDisk;
    use std::path::PathBuf;

    fn tlog_with(entries: u64) -> Tlog {
        let disk = SimDisk::new();
        let mut tlog =
            Tlog::open(disk.shared(), PathBuf::from("/t"), TlogOptions::default()).unwrap();
        let batch: Vec<Entry> = (1..=entries)
            .map(|i| Entry {
                index: i,
                term: 1 + i / 3,
                payload: vec![i as u8; 10],
            })
            .collect();
        tlog.append(&batch).unwrap();
        tlog
    }

    #[test]
    fn terms_and_bounds_as_the_core_expects() {
        let tlog = tlog_with(5);
        let log: &dyn LogRead = &tlog;
        assert_eq!((log.first_index(), log.last_index()), (1, 5));
        assert_eq!(log.term(0), Ok(0), "the base of a fresh log is (0, 0)");
        assert_eq!(log.term(3), Ok(2));
        assert_eq!(log.term(6), Err(LogError::Unavailable { index: 6 }));
        assert_eq!(
            log.entries(1, 6, u64::MAX),
            Err(LogError::Unavailable { index: 6 })
        );
    }

    #[test]
    fn entries_are_inclusive_and_byte_bounded_but_never_empty() {
        let tlog = tlog_with(5);
        let log: &dyn LogRead = &tlog;
        let all = log.entries(2, 4, u64::MAX).unwrap();
        assert_eq!(all.iter().map(|e| e.index).collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(all[0].payload.as_ref(), &[2u8; 10]);
        let one = log.entries(2, 4, 1).unwrap();
        assert_eq!(one.len(), 1, "at least one entry even over the byte limit");
    }

    #[test]
    fn collapsed_indexes_are_compacted() {
        let mut tlog = tlog_with(3);
        tlog.reset(10, 4).unwrap();
        let log: &dyn LogRead = &tlog;
        assert_eq!(log.first_index(), 11);
        assert_eq!(log.term(10), Ok(4), "the base keeps its term");
        assert_eq!(log.term(9), Err(LogError::Compacted { index: 9 }));
        assert_eq!(
            log.entries(5, 10, u64::MAX),
            Err(LogError::Compacted { index: 5 })
        );
    }

    #[test]
    fn entry_conversions_round_trip() {
        let e = Entry {
            index: 7,
            term: 3,
            payload: b"abc".to_vec(),
        };
        let c = consensus::Entry::from(e.clone());
        assert_eq!(Entry::from(&c), e);
    }
}
