//! The OASIS KMIP test cases (interop-tests/testcases), replayed against kmip-server: each
//! file on a freshly started server, after the files it continues (the tape-library and
//! self-encrypting-drive sequences find objects their first file made). Prints PASS or FAIL per file with the first difference and
//! a summary line; fails if a file listed in `oasis/passing.txt` no longer passes (and says
//! which newly pass, to be added there).

use interop_tests::testcases::test_case_files;
use interop_tests::{replay, workspace_path, ServerProcess};
use std::collections::{BTreeMap, BTreeSet};

/// Files that continue others: they run after these, on the same server.
const CONTINUES: &[(&str, &[&str])] = &[
    ("SASED-M-3", &["SASED-M-2"]),
    ("TL-M-2", &["TL-M-1"]),
    ("TL-M-3", &["TL-M-1", "TL-M-2"]),
];

/// A list in interop-tests/oasis: one file name per line, then an optional `# reason`.
fn list(file: &str) -> BTreeMap<String, String> {
    std::fs::read_to_string(workspace_path(&format!("interop-tests/oasis/{file}")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (name, why) = l.split_once('#').unwrap_or((l, ""));
            let name = name.trim();
            (!name.is_empty()).then(|| (name.to_owned(), why.trim().to_owned()))
        })
        .collect()
}

#[test]
fn oasis_test_cases() {
    let baseline: BTreeSet<String> = list("passing.txt").into_keys().collect();
    let excused = list("excused.txt");
    let mut passing = BTreeSet::new();
    let mut failed = 0;
    let mut excused_failing = 0;
    for path in test_case_files() {
        let name = format!(
            "{}/{}",
            path.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy(),
            path.file_name().unwrap().to_string_lossy()
        );
        let version = path
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let name = format!("{version}/{name}");
        // every file starts from an empty store: a fresh data directory on the same binary
        let fresh = ServerProcess::start(&["--interop"]);
        let mut client = fresh.client("admin");
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let before: Vec<std::path::PathBuf> = CONTINUES
            .iter()
            .filter(|(f, _)| file.starts_with(&format!("{f}-")))
            .flat_map(|(_, earlier)| earlier.iter())
            .map(|e| {
                path.with_file_name(
                    file.replacen(
                        file.split('-')
                            .take(3)
                            .collect::<Vec<_>>()
                            .join("-")
                            .as_str(),
                        e,
                        1,
                    ),
                )
            })
            .collect();
        // keys the earlier files made stay random output in this one
        let mut random_keys = std::collections::HashSet::new();
        let earlier: Result<(), String> = before.iter().try_for_each(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| e.to_string())?;
            replay::replay_continuing(&mut client, &text, &mut random_keys)
                .map(|_| ())
                .map_err(|e| format!("(in {}) {e}", p.display()))
        });
        let outcome = earlier.and_then(|_| {
            let text = std::fs::read_to_string(&path).unwrap();
            replay::replay_continuing(&mut client, &text, &mut random_keys)
        });
        match outcome {
            Ok(n) => {
                println!("PASS {name} ({n} exchanges)");
                passing.insert(name);
            }
            Err(e) => match excused.get(&name) {
                Some(why) => {
                    println!("EXCUSED {name} ({why}): {e}");
                    excused_failing += 1;
                }
                None => {
                    println!("FAIL {name}: {e}");
                    failed += 1;
                }
            },
        }
    }
    let mandatory =
        |set: &BTreeSet<String>| set.iter().filter(|n| n.contains("/mandatory/")).count();
    println!(
        "OASIS test cases: {} passed, {failed} failed, {excused_failing} excused \
         (mandatory: {} passed)",
        passing.len(),
        mandatory(&passing),
    );
    for name in excused.keys().filter(|n| passing.contains(*n)) {
        println!("{name} passes: take it off interop-tests/oasis/excused.txt");
    }
    let lost: Vec<_> = baseline.difference(&passing).collect();
    let gained: Vec<_> = passing.difference(&baseline).collect();
    if !gained.is_empty() {
        println!(
            "newly passing (add to interop-tests/oasis/passing.txt):\n{}",
            gained
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert!(
        lost.is_empty(),
        "test cases that passed before now fail: {lost:#?}"
    );
}
