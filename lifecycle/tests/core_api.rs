//! The key wall, checked: the public surface of `lifecycle::core` is the checked-in listing
//! `core_api.txt`, and nothing in it hands out plaintext key material or a parsed key.
//!
//! The listing is every `pub` declaration under `src/core` (not `pub(crate)` or narrower,
//! not test code), one per line with its file. The submodules are private, so a `pub` item
//! in one is reachable only when `core/mod.rs` re-exports it or it is a method or field of a
//! type that is: the listing is a superset of the surface, and any change to it is a change
//! someone has to look at. Run with `KMIP_UPDATE_CORE_API=1` to rewrite it after a change
//! that was meant, and commit the new listing with the change.
//!
//! The `compile_fail` examples in `core/mod.rs` (run by `cargo test --doc -p lifecycle`)
//! show the compiler refusing the paths that would reach plaintext.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The `pub` declarations of one file, each joined onto one line up to its body or end.
fn declarations(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    let mut pending_cfg_test = false;
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t == "#[cfg(test)]" {
            pending_cfg_test = true;
            continue;
        }
        if pending_cfg_test && t.starts_with("mod ") {
            // the unit tests close every file that has them
            break;
        }
        if pending_cfg_test && t.starts_with("impl ") {
            // a test-only impl: skip to its closing brace at the same indent
            let indent = &line[..line.len() - line.trim_start().len()];
            for l in lines.by_ref() {
                if l.starts_with(indent) && l[indent.len()..].starts_with('}') {
                    break;
                }
            }
            pending_cfg_test = false;
            continue;
        }
        pending_cfg_test = false;
        if !t.starts_with("pub ") {
            continue;
        }
        // a `use` runs to its `;`, a function to its body (or `;`), anything else (a type, a
        // field, a constant) to its body, `;` or `,`
        let is_use = t.starts_with("pub use ");
        let is_fn = t.starts_with("pub fn ") || t.starts_with("pub const fn ");
        let done = |d: &str| {
            if is_use {
                d.ends_with(';')
            } else if is_fn {
                d.contains('{') || d.ends_with(';')
            } else {
                d.contains('{') || d.ends_with(';') || d.ends_with(',')
            }
        };
        let mut decl = t.to_owned();
        while !done(&decl) {
            match lines.next() {
                Some(l) => {
                    decl.push(' ');
                    decl.push_str(l.trim());
                }
                None => break,
            }
        }
        let decl = if is_use {
            decl.as_str()
        } else {
            decl.split('{').next().unwrap_or("")
        };
        let decl = decl
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace("( ", "(")
            .replace("{ ", "{")
            .replace(", )", ")")
            .replace(", }", "}")
            .replace(" )", ")")
            .replace(" }", "}");
        out.push(decl.trim_end_matches(',').trim().to_owned());
    }
    out
}

fn listing() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut out = String::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap().display().to_string();
        for d in declarations(&std::fs::read_to_string(&f).unwrap()) {
            out.push_str(&format!("{rel}: {d}\n"));
        }
    }
    out
}

#[test]
fn the_core_api_is_the_checked_in_listing() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/core_api.txt");
    let generated = listing();
    if std::env::var_os("KMIP_UPDATE_CORE_API").is_some() {
        std::fs::write(&file, &generated).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&file).unwrap_or_default();
    if current != generated {
        let old: Vec<&str> = current.lines().collect();
        let new: Vec<&str> = generated.lines().collect();
        let gone: Vec<_> = old.iter().filter(|l| !new.contains(l)).collect();
        let added: Vec<_> = new.iter().filter(|l| !old.contains(l)).collect();
        panic!(
            "the public surface of lifecycle::core changed.\nno longer public: {gone:#?}\n\
             newly public: {added:#?}\nIf nothing in it hands out plaintext key material, run \
             the test again with KMIP_UPDATE_CORE_API=1 and commit tests/core_api.txt"
        );
    }
}

/// Whatever the listing says, these never appear in it: the core's modules stay private,
/// and no public item names the types that hold plaintext keys or parsed keys.
#[test]
fn no_public_item_reaches_plaintext_keys() {
    let api = listing();
    for line in api.lines() {
        let (file, decl) = line.split_once(": ").unwrap();
        assert!(
            !decl.starts_with("pub mod "),
            "{file}: the core's modules are private: {decl}"
        );
        for banned in [
            "KeyMaterial",
            "PKey<Private>",
            "key_material",
            "fn unseal",
            "fn derive_purpose_key",
            "convert(",
            "CipherStream",
            "StreamState",
        ] {
            assert!(
                !decl.contains(banned),
                "{file}: `{banned}` in the public surface: {decl}"
            );
        }
    }
    // what the object layer and the server may hold of a key
    for expected in [
        "keys.rs: pub struct Sealed",
        "keys.rs: pub struct Material(pub(in crate::core) Secret);",
        "keys.rs: pub fn forget(&self, id: &str)",
    ] {
        assert!(api.contains(expected), "{expected} missing from\n{api}");
    }
}
