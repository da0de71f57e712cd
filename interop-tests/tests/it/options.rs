//! Options as an operator meets them: several `--listen` addresses, IPv4 and IPv6; log colour
//! only on a terminal; the environment variables named before they followed the options'
//! names still read; the configuration reference (docs/configuration.md) says what the option
//! definitions say.

use interop_tests::{free_port, output_text, ServerProcess};
use std::process::Command;

/// A port nothing listens on at [::1] now.
fn free_v6_port() -> u16 {
    std::net::TcpListener::bind("[::1]:0")
        .and_then(|l| l.local_addr())
        .expect("an IPv6 loopback port")
        .port()
}

fn query(server: &ServerProcess, host: &str, port: u16) -> Result<(), String> {
    let d = server.tls_dir();
    let (ca, cert, key) = (d.join("ca.pem"), d.join("admin.pem"), d.join("admin.key"));
    let mut c = kmip_client::Client::connect(
        host,
        port,
        &kmip_client::Identity {
            ca: &ca,
            cert: Some(&cert),
            key: Some(&key),
        },
    )
    .map_err(|e| e.to_string())?;
    c.call(
        kmip_codec::vocab::enums::operation::QUERY,
        kmip_codec::Ttlv::structure(kmip_codec::vocab::tag::REQUEST_PAYLOAD, vec![]),
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

#[test]
fn several_listen_addresses_ipv4_and_ipv6() {
    let v6 = free_v6_port();
    let server = ServerProcess::start(&["--listen", &format!("[::1]:{v6}")]);
    query(&server, "127.0.0.1", server.port).expect("served on 127.0.0.1");
    query(&server, "::1", v6).expect("served on [::1]");
    // each address is its own family: nothing on the IPv4 side of the IPv6 port
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", v6)).is_err(),
        "127.0.0.1:{v6} is not listened on"
    );
    let log = server.log();
    assert_eq!(log.matches("listening").count(), 2, "{log}");
    // the client instructions name the first address's port
    let clients = std::fs::read_to_string(server.data_dir.path().join("CLIENTS.txt")).unwrap();
    assert!(
        clients.contains(&format!("localhost:{}", server.port)),
        "{clients}"
    );

    // a taken second address stops the start, naming it
    let taken = format!("[::1]:{v6}");
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(ServerProcess::binary())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--listen", &taken])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains(&format!("listen on {taken} (--listen)")),
        "{}",
        output_text(&o)
    );
    assert!(
        !dir.path().join("master.key").exists(),
        "nothing made for a server that never ran"
    );
}

/// A start that logs a line, then fails (TLS files that are not PEM), with standard error on a
/// terminal (`script` gives it one) or a pipe: what it printed.
fn failed_start(on_terminal: bool, env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "no").unwrap();
    let command = format!(
        "{} --data-dir {} --listen 127.0.0.1:0 --tls-cert {b} --tls-key {b} --client-ca {b}",
        ServerProcess::binary().display(),
        dir.path().join("data").display(),
        b = bad.display()
    );
    let mut c = if on_terminal {
        let mut c = Command::new("script");
        c.args(["-q", "-e", "-c", &command, "/dev/null"]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", &command]);
        c
    };
    c.env_remove("NO_COLOR").envs(env.iter().copied());
    let o = c.output().expect("run the server");
    assert!(!o.status.success());
    output_text(&o)
}

#[test]
fn log_colour_only_on_a_terminal() {
    let tty = failed_start(true, &[]);
    assert!(tty.contains("--tls-cert"), "it ran: {tty}");
    assert!(tty.contains("\x1b["), "coloured on a terminal: {tty:?}");
    let piped = failed_start(false, &[]);
    assert!(piped.contains("--tls-cert"), "{piped}");
    assert!(!piped.contains('\x1b'), "{piped:?}");
    let no_colour = failed_start(true, &[("NO_COLOR", "1")]);
    assert!(no_colour.contains("--tls-cert"), "{no_colour}");
    assert!(!no_colour.contains('\x1b'), "{no_colour:?}");
    // and a server's log file
    let server = ServerProcess::start(&[]);
    assert!(!server.log().contains('\x1b'), "{:?}", server.log());
}

#[test]
fn old_environment_variable_names_still_read() {
    let server = ServerProcess::start_with_env(&[], &[("KMIP_ADMINS", "admin,alice")]);
    server.issue_client_cert("alice");
    assert!(
        server.log().contains("KMIP_ADMINS is read as KMIP_ADMIN"),
        "{}",
        server.log()
    );
    let key = interop_tests::kmip::create_aes(&mut server.client("admin"), 256, vec![]);
    // alice is an administrator: she sees the administrator's key
    let listed = server.admin_command(&["list", "--as", "alice"]);
    assert!(listed.starts_with(&key), "{listed}");
}

/// docs/configuration.md: the server's options and the client tools' connection options,
/// from their clap definitions.
fn configuration_reference() -> String {
    use clap::Args;
    let server = kmip_server::config::Config::augment_args(clap::Command::new("kmip-server"));
    let client =
        kmip_client::connection::ConnectionArgs::augment_args(clap::Command::new("kmip-admin"));
    format!(
        "# Configuration reference\n\n\
         Generated from the option definitions, as `--help` shows them: a test \
         (`options::the_configuration_reference_is_current`) fails when this file and they \
         disagree, and rewrites it when run with `KMIP_UPDATE_DOCS=1`.\n\n\
         ## kmip-server\n\n\
         Each option is also its environment variable, and a key of the TOML file `--config` \
         names (the long name: `max-connections = 64`, `admin = [\"alice\", \"bob\"]` for a \
         repeated option). The command line wins over the environment, which wins over the \
         file; a list given on the command line replaces the file's.\n\n{}\n\
         ## kmip-admin, kmip-ca, kmip-bench: reaching a server\n\n\
         The same options in every client tool, each also its environment variable and a key \
         of the `[client]` table of the `--config` file (the server's own file: the server \
         skips that table). The command line wins over the environment, which wins over the \
         file; files named nowhere come from `--data-dir`.\n\n{}",
        cli_docs::options_markdown(&server),
        cli_docs::options_markdown(&client),
    )
}

#[test]
fn the_configuration_reference_is_current() {
    let file = interop_tests::workspace_path("docs/configuration.md");
    cli_docs::check_generated(&file, &configuration_reference()).unwrap_or_else(|e| panic!("{e}"));
}
