//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) through the same checks
//! the fuzz targets run, on stable, so `cargo test` keeps every input the
//! fuzzer found interesting passing. Run the fuzzer itself with
//! `cargo +nightly fuzz run <target>` from `fuzz/` (see docs/http.md).
#![cfg(feature = "http-server")]

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
            panic!("{} fails: {:?}", path.display(), e.downcast_ref::<String>());
        }
        n += 1;
    }
    assert!(n >= 10, "{target}: only {n} corpus entries in {}", dir.display());
}

#[test]
fn head_corpus() {
    replay("head", checks::head);
}

#[test]
fn chunked_corpus() {
    replay("chunked", checks::chunked);
}

#[test]
fn connection_corpus() {
    replay("connection", checks::connection);
}

#[test]
fn ws_frame_corpus() {
    replay("ws_frame", checks::ws_frame);
}

/// The reference decoder agrees with the grammar's own examples, so the
/// differential target compares against something right.
#[test]
fn reference_decoder_knows_the_grammar() {
    use checks::{reference_chunked, Reference};
    assert_eq!(
        reference_chunked(b"5;a=\"x\"\r\nhello\r\n0\r\nT: v\r\n\r\nNEXT"),
        Reference::Done(b"hello".to_vec(), 27)
    );
    assert_eq!(reference_chunked(b"5\r\nhel"), Reference::Incomplete);
    assert_eq!(reference_chunked(b"0\r\n\n"), Reference::Invalid);
    assert_eq!(reference_chunked(b"5;\r\nhello\r\n0\r\n\r\n"), Reference::Invalid);
    assert_eq!(reference_chunked(b"5\r\nhelloX"), Reference::Invalid);
}
