//! PyKMIP's own integration suite (from the pykmip 0.11.0 sdist) against a freshly started
//! kmip-server with its zero-configuration certificates, run by real PyKMIP client processes.

use interop_tests::{python, workspace_path, ServerProcess};
use std::collections::BTreeSet;

#[test]
fn pykmip_integration_suite() {
    let src = std::env::var("KMIP_PYKMIP_SRC")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace_path("target/pykmip-src/pykmip-0.11.0"));
    assert!(
        src.join("kmip/tests/integration").is_dir(),
        "{} has no PyKMIP integration suite: run scripts/test.sh (it unpacks the pykmip sdist) or set KMIP_PYKMIP_SRC",
        src.display()
    );
    // PyKMIP's derivation tests derive from keys they never activate; its own server allows
    // that, ours only under this policy (see kmip-server --help)
    let server = ServerProcess::start(&["--derive-from-pre-active"]);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".pykmip")).unwrap();
    std::fs::write(
        home.path().join(".pykmip/pykmip.conf"),
        server.pykmip_section("kmip-rs", "admin"),
    )
    .unwrap();
    let out = python()
        .current_dir(&src)
        .env("HOME", home.path())
        .args([
            "-m",
            "pytest",
            "kmip/tests/integration",
            "-m",
            "not ignore",
            "--config",
            "kmip-rs",
        ])
        .args(["-p", "no:cacheprovider", "-rA", "-q"])
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut passed = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for line in stdout.lines() {
        // the short summary: "PASSED kmip/tests/...", "FAILED kmip/tests/... - reason"
        let (set, rest) = if let Some(r) = line.strip_prefix("PASSED kmip/") {
            (&mut passed, r)
        } else if let Some(r) = line
            .strip_prefix("FAILED kmip/")
            .or_else(|| line.strip_prefix("ERROR kmip/"))
        {
            (&mut failed, r)
        } else {
            continue;
        };
        let id = rest.split(" - ").next().unwrap_or(rest).trim();
        let id = id
            .trim_start_matches("tests/integration/services/")
            .to_owned();
        set.insert(id);
    }
    println!(
        "PyKMIP integration suite: {} passed, {} failed",
        passed.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "failures: {failed:#?}\n--- pytest output ---\n{stdout}\n--- server log ---\n{}",
        server.log()
    );
    assert_eq!(passed.len(), 37, "the suite selects 37 tests:\n{stdout}");
}
