//! The fuzz targets in CI: every file of the committed corpora (`fuzz/corpus/
//! TARGET/`, seeds and whatever long runs added), then random and mutated
//! bytes (proptest). The coverage-guided runs are `fuzz/README.md`'s.

use proptest::prelude::*;
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a corpus entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

#[test]
fn every_corpus_file_passes_its_target() {
    for (name, target) in fuzzing::TARGETS {
        let files = corpus(name);
        assert!(!files.is_empty(), "no corpus for {name}");
        for data in &files {
            target(data);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        for (_, target) in fuzzing::TARGETS {
            target(&data);
        }
    }

    /// Corpus files with a few bytes changed, cut or grown.
    #[test]
    fn mutated_corpus(
        target in 0..fuzzing::TARGETS.len(),
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let (name, run) = fuzzing::TARGETS[target];
        let files = corpus(name);
        let mut data = files[pick.index(files.len())].clone();
        for (at, byte) in edits {
            if data.is_empty() {
                data.push(byte);
            } else {
                let i = at.index(data.len());
                data[i] = byte;
            }
        }
        let keep = cut.index(data.len() + 1);
        data.truncate(keep.max(data.len() * 3 / 4));
        run(&data);
    }
}
