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
