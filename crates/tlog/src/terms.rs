//! The in-memory term index: the log's terms, run-length encoded.
//!
//! Terms change rarely (once per election that changes the master), so a
//! million entries of a healthy cluster cost a few runs of 16 bytes each.

/// Runs of equal terms over `(base_index, last_index]`, plus the base term.
#[derive(Debug, Clone)]
pub struct TermRuns {
    base_index: u64,
    base_term: u64,
    last_index: u64,
    /// `(first index of the run, term)`, indices ascending, terms strictly
    /// ascending, every start within `(base_index, last_index]`.
    runs: Vec<(u64, u64)>,
}

impl TermRuns {
    pub fn new(base_index: u64, base_term: u64) -> Self {
        Self {
            base_index,
            base_term,
            last_index: base_index,
            runs: Vec::new(),
        }
    }

    pub fn base_index(&self) -> u64 {
        self.base_index
    }

    pub fn base_term(&self) -> u64 {
        self.base_term
    }

    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    pub fn last_term(&self) -> u64 {
        self.runs.last().map_or(self.base_term, |&(_, term)| term)
    }

    /// Records that entry `index` (the next one) has `term`.
    pub fn push(&mut self, index: u64, term: u64) {
        assert_eq!(
            index,
            self.last_index + 1,
            "terms are pushed in index order"
        );
        assert!(
            term >= self.last_term(),
            "terms never decrease along the log"
        );
        if term != self.last_term() {
            self.runs.push((index, term));
        }
        self.last_index = index;
    }

    /// The term of `index`, if `base_index <= index <= last_index`.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index < self.base_index || index > self.last_index {
            return None;
        }
        let after = self.runs.partition_point(|&(start, _)| start <= index);
        if after == 0 {
            return Some(self.base_term);
        }
        Some(self.runs[after - 1].1)
    }

    /// Forgets every entry with index >= `from`.
    pub fn truncate(&mut self, from: u64) {
        assert!(from > self.base_index);
        if from > self.last_index {
            return;
        }
        let keep = self.runs.partition_point(|&(start, _)| start < from);
        self.runs.truncate(keep);
        self.last_index = from - 1;
    }

    /// Moves the base forward to `index` (entries up to it are collapsed).
    pub fn collapse(&mut self, index: u64) {
        assert!(index >= self.base_index && index <= self.last_index);
        let Some(term) = self.term(index) else {
            unreachable!("index checked within range above");
        };
        let drop = self.runs.partition_point(|&(start, _)| start <= index);
        self.runs.drain(..drop);
        self.base_index = index;
        self.base_term = term;
    }

    /// Bytes of memory this index holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.runs.capacity() * std::mem::size_of::<(u64, u64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::TermRuns;

    #[test]
    fn runs_answer_terms_through_truncate_and_collapse() {
        let mut runs = TermRuns::new(10, 2);
        for (index, term) in [(11, 2), (12, 3), (13, 3), (14, 5), (15, 5)] {
            runs.push(index, term);
        }
        assert_eq!(runs.term(9), None);
        assert_eq!(runs.term(10), Some(2));
        assert_eq!(runs.term(11), Some(2));
        assert_eq!(runs.term(13), Some(3));
        assert_eq!(runs.term(15), Some(5));
        assert_eq!(runs.term(16), None);
        runs.truncate(14);
        assert_eq!(runs.last_term(), 3);
        assert_eq!(runs.term(14), None);
        runs.push(14, 4);
        runs.collapse(12);
        assert_eq!(runs.term(11), None);
        assert_eq!(runs.term(12), Some(3));
        assert_eq!(runs.term(13), Some(3));
        assert_eq!(runs.term(14), Some(4));
    }
}
