//! `kmip-admin` against a real server: the inventory (list with filters, show, as text and
//! JSON), revoke and destroy, grants, a backup while the server serves, and the connection
//! options read from the `[client]` table of the file kmip-server reads.

use interop_tests::kmip::{activate, create_aes, item, name};
use interop_tests::{output_text, ServerProcess};
use kmip_codec::vocab::tag;
use kmip_codec::Value;
use serde_json::Value as J;
use std::process::{Command, Output};

fn json(o: &Output) -> J {
    assert!(o.status.success(), "{}", output_text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", output_text(o)))
}

fn ids(listed: &J) -> Vec<String> {
    let mut v: Vec<String> = listed
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|o| o["id"].as_str().expect("an id").to_owned())
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn list_show_revoke_destroy() {
    let server = ServerProcess::start(&[]);
    server.issue_client_cert("alice");
    let mut c = server.client("admin");
    let group = item(tag::OBJECT_GROUP, Value::TextString("finance".into()));
    let payroll = create_aes(&mut c, 256, vec![name("payroll"), group]);
    let logs = create_aes(&mut c, 128, vec![name("logs")]);
    activate(&mut c, &payroll);

    let all = json(&server.admin(&["list", "--json"]));
    assert_eq!(ids(&all), sorted(vec![payroll.clone(), logs.clone()]));
    let p = all
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == payroll.as_str())
        .unwrap();
    assert_eq!(p["object_type"], "SymmetricKey");
    assert_eq!(p["state"], "Active");
    assert_eq!(p["names"], serde_json::json!(["payroll"]));
    assert_eq!(p["groups"], serde_json::json!(["finance"]));
    assert_eq!(p["algorithm"], "AES");
    assert_eq!(p["length"], 256);
    // each filter narrows, in the spellings an operator types
    for (filter, expected) in [
        (vec!["--state", "active"], vec![payroll.clone()]),
        (vec!["--state", "pre-active"], vec![logs.clone()]),
        (vec!["--name", "logs"], vec![logs.clone()]),
        (vec!["--group", "finance"], vec![payroll.clone()]),
        (
            vec!["--type", "symmetric-key", "--name", "payroll"],
            vec![payroll.clone()],
        ),
        (vec!["--type", "PrivateKey"], vec![]),
    ] {
        let mut args = vec!["list", "--json"];
        args.extend(&filter);
        assert_eq!(ids(&json(&server.admin(&args))), expected, "{filter:?}");
    }
    let text = server.admin_command(&["list", "--name", "payroll"]);
    assert_eq!(
        text,
        format!("{payroll}\tSymmetricKey\tActive\tpayroll\tfinance\n")
    );
    let bad = server.admin(&["list", "--state", "gone"]);
    assert!(!bad.status.success());
    assert!(
        output_text(&bad).contains("Deactivated"),
        "{}",
        output_text(&bad)
    );
    // another identity sees its own objects only
    assert_eq!(
        ids(&json(&server.admin(&["list", "--json", "--as", "alice"]))),
        Vec::<String>::new()
    );

    let shown = json(&server.admin(&["show", &payroll, "--json"]));
    assert_eq!(shown["id"], payroll.as_str());
    let a = &shown["attributes"];
    assert_eq!(a["CryptographicAlgorithm"], "AES");
    assert_eq!(a["CryptographicLength"], 256);
    assert_eq!(a["Name"]["NameValue"], "payroll");
    assert_eq!(a["State"], "Active");
    let text = server.admin_command(&["show", &payroll]);
    assert!(text.contains("Cryptographic Algorithm: AES\n"), "{text}");
    assert!(text.contains("Name: NameValue=payroll"), "{text}");

    // an active key is revoked before it is destroyed
    let refused = server.admin(&["destroy", &payroll]);
    assert!(!refused.status.success(), "{}", output_text(&refused));
    assert!(output_text(&refused).contains(&format!("Destroy {payroll}")));
    server.admin_command(&[
        "revoke",
        &payroll,
        "--reason",
        "superseded",
        "--message",
        "rotated",
    ]);
    let shown = json(&server.admin(&["show", &payroll, "--json"]));
    assert_eq!(shown["attributes"]["State"], "Deactivated");
    assert_eq!(
        shown["attributes"]["RevocationReason"]["RevocationReasonCode"],
        "Superseded"
    );
    assert_eq!(
        server.admin_command(&["destroy", &payroll]).trim(),
        format!("destroyed {payroll}")
    );
    assert_eq!(
        ids(&json(&server.admin(&["list", "--json"]))),
        vec![logs.clone()]
    );
    let with_destroyed = json(&server.admin(&["list", "--json", "--all", "--name", "payroll"]));
    assert_eq!(with_destroyed[0]["state"], "Destroyed");
    // a compromise is dated
    server.admin_command(&["revoke", &logs, "--reason", "key-compromise"]);
    let shown = json(&server.admin(&["show", &logs, "--json"]));
    assert_eq!(shown["attributes"]["State"], "Compromised");
    assert!(shown["attributes"]["CompromiseOccurrenceDate"].is_string());
}

fn gets(server: &ServerProcess, who: &str, id: &str) -> bool {
    interop_tests::kmip::get_object(&mut server.client(who), id, None).is_ok()
}

#[test]
fn grants_as_text_and_json() {
    let server = ServerProcess::start(&[]);
    server.issue_client_cert("bob");
    let key = create_aes(&mut server.client("admin"), 256, vec![]);
    assert!(!gets(&server, "bob", &key));
    server.admin_command(&[
        "grant",
        &key,
        "--to",
        "bob",
        "--operations",
        "Get GetAttributes",
    ]);
    assert!(gets(&server, "bob", &key), "the grant works");
    let listed = json(&server.admin(&["grants", &key, "--json"]));
    assert_eq!(
        listed,
        serde_json::json!([{"grantee": "bob", "operations": ["Get", "GetAttributes"]}])
    );
    assert_eq!(
        server.admin_command(&["grants", &key]),
        "bob: Get GetAttributes\n"
    );
    let bad = server.admin(&["grant", &key, "--to", "bob", "--operations", "Get Steal"]);
    assert!(!bad.status.success());
    assert!(
        output_text(&bad).contains("\"Steal\""),
        "{}",
        output_text(&bad)
    );
    server.admin_command(&["revoke-grant", &key, "--from", "bob"]);
    assert_eq!(
        json(&server.admin(&["grants", &key, "--json"])),
        serde_json::json!([])
    );
    assert!(!gets(&server, "bob", &key), "withdrawn");
}

#[test]
fn backup_while_serving() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    for i in 0..5 {
        create_aes(&mut c, 256, vec![name(&format!("k{i}"))]);
    }
    let out_dir = tempfile::tempdir().unwrap();
    // a path a shell splits, to see the printed command quoted
    let out = out_dir.path().join("my backup.kmipbak");
    let o = interop_tests::kmip_server_command(
        server.data_dir.path(),
        &["backup", "--out", out.to_str().unwrap()],
    );
    assert!(!o.status.success());
    let said = output_text(&o);
    let expected = format!(
        "kmip-admin --data-dir {} backup --out '{}'",
        server.data_dir.path().display(),
        out.display()
    );
    assert!(said.contains(&expected), "{said}\nlacks: {expected}");
    assert!(!out.exists());

    // without --out the file stays where the server wrote it
    let b = json(&server.admin(&["backup", "--json"]));
    let file = b["file"].as_str().unwrap();
    let name = file
        .strip_prefix("backups/")
        .and_then(|f| f.strip_suffix(" in the server's data directory"))
        .unwrap_or_else(|| panic!("{file}"));
    assert!(server.data_dir.path().join("backups").join(name).exists());
    assert_eq!(b["manifest"]["objects"], "5");
    assert!(
        b["manifest"]["sha256"]
            .as_str()
            .is_some_and(|d| d.len() == 64),
        "{b}"
    );

    let moved = server.admin(&["backup", "--out", out.to_str().unwrap()]);
    assert!(moved.status.success(), "{}", output_text(&moved));
    assert!(String::from_utf8_lossy(&moved.stdout).contains("objects=5"));
    assert!(out.exists());
    let again = server.admin(&["backup", "--out", out.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(
        output_text(&again).contains("never overwrites"),
        "{}",
        output_text(&again)
    );
    // what kmip-admin moved restores
    let restored = tempfile::tempdir().unwrap();
    let r =
        interop_tests::kmip_server_command(restored.path(), &["restore", out.to_str().unwrap()]);
    assert!(r.status.success(), "{}", output_text(&r));
    assert!(
        output_text(&r).contains("restored 5 objects"),
        "{}",
        output_text(&r)
    );
}

/// `kmip-admin` with nothing from the test's environment.
fn bare_admin() -> Command {
    let mut c = Command::new(interop_tests::kmip_admin());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("KMIP_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn connection_from_the_servers_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kmip.toml");
    let config = |server: &str, data_dir: &std::path::Path| {
        let tls = data_dir.join("tls");
        format!(
            "max-batch-items = 500\n\n[client]\nserver = \"{server}\"\nclient-cert = \"{}\"\n\
             client-key = \"{}\"\nserver-ca = \"{}\"\n",
            tls.join("admin.pem").display(),
            tls.join("admin.key").display(),
            tls.join("ca.pem").display(),
        )
    };
    // the server reads the same file, and leaves the [client] table to the tools
    std::fs::write(
        &file,
        config("localhost:1", std::path::Path::new("/nowhere")),
    )
    .unwrap();
    let server = ServerProcess::start(&["--config", file.to_str().unwrap()]);
    let address = format!("localhost:{}", server.port);
    std::fs::write(&file, config(&address, server.data_dir.path())).unwrap();
    let key = create_aes(&mut server.client("admin"), 256, vec![]);

    let o = bare_admin()
        .args(["--config", file.to_str().unwrap(), "list", "--json"])
        .output()
        .unwrap();
    assert_eq!(ids(&json(&o)), vec![key.clone()]);
    // KMIP_CONFIG names it too; the environment wins over the file, the command line over both
    let o = bare_admin()
        .env("KMIP_CONFIG", &file)
        .env("KMIP_SERVER", "localhost:1")
        .args(["list", "--json"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("connect to localhost:1"),
        "{}",
        output_text(&o)
    );
    let o = bare_admin()
        .env("KMIP_CONFIG", &file)
        .env("KMIP_SERVER", "localhost:1")
        .args(["--server", &address, "list", "--json"])
        .output()
        .unwrap();
    assert_eq!(ids(&json(&o)), vec![key]);

    // a mistake in the table names the key and the file
    std::fs::write(&file, "[client]\nport = \"5696\"\n").unwrap();
    let o = bare_admin()
        .args(["--config", file.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let said = output_text(&o);
    assert!(
        said.contains("\"port\"") && said.contains("kmip.toml"),
        "{said}"
    );
    // a file that names no identity: the error says what gives one
    let o = bare_admin()
        .args(["--server", &address, "list"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("KMIP_SERVER_CA"),
        "{}",
        output_text(&o)
    );
}
