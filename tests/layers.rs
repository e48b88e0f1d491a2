//! The layers depend one way: no file of `src/` (through `crate::x`) and no
//! file of `src/http/` (through `super::x`) depends, directly or through
//! others, on itself. Comments are ignored (a doc link is not a dependency).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module of `dir` and the sibling modules its code names as `prefix::x`.
fn graph(dir: &Path, prefix: &str) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "rs").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .filter(|m| m != "lib" && m != "mod")
        .collect();
    let needle = format!("{prefix}::");
    let mut g = BTreeMap::new();
    for m in &modules {
        let src = std::fs::read_to_string(dir.join(format!("{m}.rs"))).unwrap();
        let mut deps = BTreeSet::new();
        for line in src.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices(&needle) {
                let rest = &line[i + needle.len()..];
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if modules.contains(&name) && &name != m {
                    deps.insert(name);
                }
            }
        }
        g.insert(m.clone(), deps);
    }
    g
}

/// A cycle, if the graph has one.
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for d in &g[n] {
            match state.get(d.as_str()) {
                Some(1) => {
                    let start = path.iter().position(|p| p == d).unwrap();
                    let mut c = path[start..].to_vec();
                    c.push(d.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(d, g, state, path) {
                        return Some(c);
                    }
                }
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if !state.contains_key(n.as_str()) {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_crates_modules_depend_one_way() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (dir, prefix) in [("src", "crate"), ("src/http", "super")] {
        let g = graph(&root.join(dir), prefix);
        assert!(g.len() >= 8, "{dir}: only {} modules read", g.len());
        if let Some(c) = cycle(&g) {
            panic!("{dir}: an import cycle: {}", c.join(" -> "));
        }
    }
}

/// The checker finds a cycle when there is one (so the test above can fail).
#[test]
fn the_checker_finds_a_cycle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_string()].into());
    g.insert("b".into(), ["c".to_string()].into());
    g.insert("c".into(), ["a".to_string()].into());
    assert_eq!(cycle(&g), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    g.insert("c".into(), BTreeSet::new());
    assert_eq!(cycle(&g), None);
}
