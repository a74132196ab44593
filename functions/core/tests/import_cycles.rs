//! No import circles between the core's files: every `crate::…` and `super::…` path (in `use`
//! or inline) is an edge to the file that defines the module it names, and those edges must not
//! loop. A circle means two files can only be understood together; break it by moving what both
//! need into a third file. Unit-test modules (`#[cfg(test)] mod tests { … }`) are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["handlers", "ingest"]`) → file (`handlers/ingest.rs`), for every file under `src`.
fn modules(src: &Path) -> BTreeMap<Vec<String>, String> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path: PathBuf = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(src).unwrap().to_string_lossy().replace('\\', "/");
                let mut segments: Vec<String> = relative.trim_end_matches(".rs").split('/').map(str::to_string).collect();
                if matches!(segments.last().map(String::as_str), Some("mod" | "lib")) {
                    segments.pop();
                }
                found.insert(segments, relative);
            }
        }
    }
    found
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Every path that starts at `crate::` or `super::`, as (root, segments); `use` groups
/// (`use crate::{a, b::c}`) are expanded.
fn paths(source: &str) -> Vec<(&'static str, Vec<String>)> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    for root in ["crate", "super"] {
        let needle = format!("{root}::");
        let mut from = 0;
        while let Some(at) = source[from..].find(&needle) {
            let start = from + at;
            from = start + needle.len();
            if start > 0 && is_ident(bytes[start - 1]) {
                continue; // e.g. `instapipe_core::`
            }
            tree(bytes, from, Vec::new(), &mut |segments| out.push((root, segments)));
        }
    }
    out
}

/// Reads one use-tree (`a::b`, `a::{b, c::d}`, `{a, b}`) starting at `i`; returns where it ends.
fn tree(bytes: &[u8], mut i: usize, prefix: Vec<String>, found: &mut dyn FnMut(Vec<String>)) -> usize {
    let mut segments = prefix;
    loop {
        if bytes.get(i) == Some(&b'{') {
            i += 1;
            loop {
                while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == b'}' {
                    return i + 1;
                }
                i = tree(bytes, i, segments.clone(), found);
            }
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        if i == start {
            found(segments);
            return i;
        }
        segments.push(String::from_utf8_lossy(&bytes[start..i]).into_owned());
        if bytes[i..].starts_with(b"::") {
            i += 2;
            continue;
        }
        found(segments);
        return i;
    }
}

fn without_unit_tests(source: &str) -> &str {
    source.find("#[cfg(test)]\nmod tests {").map_or(source, |at| &source[..at])
}

/// Names the crate root re-exports (`pub use error::{Error, Result}`) → their module path.
fn root_reexports(lib: &str) -> BTreeMap<String, Vec<String>> {
    let mut names = BTreeMap::new();
    for line in lib.lines().filter_map(|l| l.trim().strip_prefix("pub use ")) {
        tree(line.as_bytes(), 0, Vec::new(), &mut |mut segments| {
            if let Some(name) = segments.pop() {
                names.insert(name, segments);
            }
        });
    }
    names
}

/// File → files it imports.
fn edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let reexports = root_reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let resolve = |segments: &[String]| {
        // `crate::Error` is error.rs's, not lib.rs's.
        let segments = match segments.first().and_then(|name| reexports.get(name)) {
            Some(module) => module.as_slice(),
            None => segments,
        };
        (1..=segments.len()).rev().find_map(|n| modules.get(&segments[..n]).cloned())
    };
    let mut edges = BTreeMap::new();
    for (module, file) in &modules {
        let source = std::fs::read_to_string(src.join(file)).unwrap();
        let mut targets = BTreeSet::new();
        for (root, segments) in paths(without_unit_tests(&source)) {
            let mut full: Vec<String> = match root {
                "crate" => Vec::new(),
                _ => module[..module.len().saturating_sub(1)].to_vec(),
            };
            full.extend(segments);
            if let Some(target) = resolve(&full).filter(|t| t != file) {
                targets.insert(target);
            }
        }
        edges.insert(file.clone(), targets);
    }
    edges
}

/// One circle, as the files along it, if there is any.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        file: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(file.to_string(), Mark::Open);
        stack.push(file.to_string());
        for next in edges.get(file).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let from = stack.iter().position(|f| f == next).unwrap();
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, edges, marks, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        marks.insert(file.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for file in edges.keys() {
        if !marks.contains_key(file)
            && let Some(cycle) = visit(file, edges, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_core_has_no_import_circles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = edges(&src);
    assert!(edges.len() > 50, "the walk found the core's files ({})", edges.len());
    assert!(edges["handlers/ingest.rs"].contains("intake.rs"), "{:?}", edges["handlers/ingest.rs"]);
    assert!(edges["graph/client.rs"].contains("error.rs"), "crate::Error is error.rs's: {:?}", edges["graph/client.rs"]);
    if let Some(cycle) = find_cycle(&edges) {
        panic!("import circle: {}", cycle.join(" → "));
    }
}

#[test]
fn a_circle_is_found_and_shown() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.insert("error.rs".into(), ["graph/mod.rs".to_string()].into());
    edges.insert("graph/mod.rs".into(), ["post.rs".to_string()].into());
    edges.insert("post.rs".into(), ["error.rs".to_string()].into());
    edges.insert("lib.rs".into(), ["error.rs".to_string()].into());
    let cycle = find_cycle(&edges).unwrap();
    assert_eq!(cycle.join(" → "), "error.rs → graph/mod.rs → post.rs → error.rs");
    edges.insert("post.rs".into(), BTreeSet::new());
    assert_eq!(find_cycle(&edges), None);
}

#[test]
fn use_groups_and_inline_paths_are_read() {
    let source = "use crate::post::{Post, overall_state};\nuse super::{edge, intake::{Intake, Refusal}};\nfn f() -> crate::Result<()> { instapipe_core::x::y(); Ok(()) }";
    let found: Vec<String> = paths(source).into_iter().map(|(root, s)| format!("{root}::{}", s.join("::"))).collect();
    assert_eq!(
        found,
        [
            "crate::post::Post",
            "crate::post::overall_state",
            "crate::Result",
            "super::edge",
            "super::intake::Intake",
            "super::intake::Refusal",
        ]
    );
}
