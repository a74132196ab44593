//! The repository stands alone: a clone with nothing beside it builds and tests. Nothing may
//! point at the sibling `shared` directory some checkouts have beside them (its samples were
//! replaced by `samples/`). Citing `shared/reference` in a comment as the source of a fact is
//! fine: nothing reads it. `.ci/run` also runs the tests in a lone clone, which catches any
//! other path outside the repository.

use std::path::{Path, PathBuf};

/// Directories that are not the repository's own files.
const SKIPPED: &[&str] = &[".git", "target", "node_modules", ".venv", ".venv-checkov", ".local", ".aws-sam"];

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name();
        if entry.file_type().unwrap().is_dir() {
            if !SKIPPED.iter().any(|s| name == *s) {
                files(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

#[test]
fn no_file_points_at_the_shared_directory_beside_the_repository() {
    let root = repository_root();
    assert!(root.join("Cargo.toml").is_file() && root.join("Makefile").is_file(), "{} is not the repository root", root.display());
    // Spelled in two parts so this file does not match itself.
    let needles = [concat!("..", "/shared"), concat!("shared", "/fixtures")];
    let mut all = Vec::new();
    files(&root, &mut all);
    assert!(all.len() > 50, "found only {} files under {}", all.len(), root.display());
    let mut found = Vec::new();
    for path in &all {
        let Ok(text) = std::fs::read_to_string(path) else { continue }; // not text
        for (n, line) in text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle)) {
                found.push(format!("{}:{}: {}", path.strip_prefix(&root).unwrap().display(), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "these lines point outside the repository:\n{}", found.join("\n"));
}
