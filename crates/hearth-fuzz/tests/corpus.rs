//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through each
//! target on stable: an input that once crashed a target stays a test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a failed step should panic

use std::path::Path;

#[test]
fn every_committed_corpus_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut replayed = 0;
    for (name, target) in hearth_fuzz::TARGETS {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} fails its target", path.display());
            count += 1;
        }
        assert!(count > 0, "{name} has a corpus");
        replayed += count;
    }
    assert!(replayed >= hearth_fuzz::TARGETS.len());
}
