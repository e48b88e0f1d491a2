//! `docs/walkthrough.md` names functions as `file::function` (in backticks);
//! each must still be a `fn` in that file under `src/`, so the study guide
//! cannot silently drift from the code.

use std::path::Path;

#[test]
fn every_function_the_guide_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/walkthrough.md")).unwrap();
    let mut checked = 0;
    for quoted in guide.split('`').skip(1).step_by(2) {
        let Some((file, function)) = quoted.split_once("::") else {
            continue;
        };
        if !file.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            || !function
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || file == "mio"
        {
            continue;
        }
        let candidates = [format!("src/{file}.rs"), format!("src/http/{file}.rs")];
        let source: String = candidates
            .iter()
            .filter_map(|p| std::fs::read_to_string(root.join(p)).ok())
            .collect();
        assert!(
            !source.is_empty(),
            "docs/walkthrough.md names `{quoted}`, but there is no {file}.rs"
        );
        assert!(
            source.contains(&format!("fn {function}(")) || source.contains(&format!("fn {function}<")),
            "docs/walkthrough.md names `{quoted}`, but {file}.rs has no fn {function}"
        );
        checked += 1;
    }
    assert!(
        checked >= 25,
        "only {checked} names checked: did the guide's format change?"
    );
}

/// The reading-order table gives each file's size; it must stay within 20 %
/// of the file's real line count (a range `a–b` covers its files' smallest
/// and largest).
#[test]
fn the_sizes_the_guide_gives_are_still_true() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/walkthrough.md")).unwrap();
    let lines_of = |f: &str| {
        std::fs::read_to_string(root.join(f))
            .unwrap_or_else(|e| panic!("docs/walkthrough.md lists {f}: {e}"))
            .lines()
            .count()
    };
    let near = |said: usize, real: usize| said * 10 >= real * 8 && said * 10 <= real * 12;
    let mut rows = 0;
    for row in guide.lines().filter(|l| l.starts_with("| ") && l.contains("`src/")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (files, sizes) = (cells[2], cells[3]);
        let files: Vec<&str> = files
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|f| f.starts_with("src/"))
            .collect();
        let real: Vec<usize> = files.iter().map(|f| lines_of(f)).collect();
        if let Some((lo, hi)) = sizes.split_once('–') {
            let (lo, hi): (usize, usize) = (lo.trim().parse().unwrap(), hi.trim().parse().unwrap());
            let (min, max) = (*real.iter().min().unwrap(), *real.iter().max().unwrap());
            assert!(
                near(lo, min) && near(hi, max),
                "{row}: the files have {min}–{max} lines"
            );
        } else {
            let said: Vec<usize> = sizes.split(',').map(|s| s.trim().parse().unwrap()).collect();
            assert_eq!(said.len(), real.len(), "{row}: one size per file");
            for ((f, s), r) in files.iter().zip(&said).zip(&real) {
                assert!(near(*s, *r), "{row}: {f} has {r} lines, the guide says {s}");
            }
        }
        rows += 1;
    }
    assert!(rows >= 15, "only {rows} rows read: did the table's format change?");
}
