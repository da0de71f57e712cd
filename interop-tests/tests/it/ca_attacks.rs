//! Attacks on the CA rules of kmip-ca's server side, each through a real server process and
//! checked with the openssl command line where a certificate comes out:
//!
//! - a grantee of Certify on a CA's private key cannot make a CA of its own for that key (a
//!   registered copy of the public key linked to it, self-signed or imported, or the real
//!   public key self-signed again), so the CA's path length and name constraints hold;
//! - name constraints bind every name type (IP addresses, e-mail addresses, URIs and the
//!   subject's CN too), in the server and in the NameConstraints extension it writes;
//! - a refused issuance leaves no key pair behind;
//! - a PKCS#12 export needs a password, never from the command line, and is written 0600.

use interop_tests::ca::{id, openssl, openssl_ok, Ca};
use interop_tests::kmip::{get_attributes, item, key_object, mask, register, uid};
use interop_tests::ServerProcess;
use kmip_client::Client;
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    cryptographic_algorithm as alg, cryptographic_usage_mask as um, key_format_type as kft,
    link_type, object_type as ot, operation as op,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};

fn linked(c: &mut Client, id: &str, kind: u32) -> String {
    kmip_codec::attributes::linked(&get_attributes(c, id), kind).expect("a link")
}

fn link(kind: u32, to: &str) -> Ttlv {
    Ttlv::structure(
        tag::LINK,
        vec![
            item(tag::LINK_TYPE, Value::Enumeration(kind)),
            item(tag::LINKED_OBJECT_IDENTIFIER, Value::TextString(to.into())),
        ],
    )
}

fn custom(name: &str, value: &str) -> Ttlv {
    Ttlv::structure(
        tag::ATTRIBUTE,
        vec![
            item(tag::VENDOR_IDENTIFICATION, Value::TextString("x".into())),
            item(tag::ATTRIBUTE_NAME, Value::TextString(name.into())),
            item(tag::ATTRIBUTE_VALUE, Value::TextString(value.into())),
        ],
    )
}

/// Certify stored public key `key` with `x-ca-*` attributes (name, value).
fn certify(c: &mut Client, key: &str, attrs: &[(&str, &str)]) -> Result<String, String> {
    c.op::<_, CertifyResponse>(
        op::CERTIFY,
        &CertifyRequest {
            unique_identifier: uid(key),
            attributes: Some(Ttlv::structure(
                tag::ATTRIBUTES,
                attrs.iter().map(|(n, v)| custom(n, v)).collect(),
            )),
            ..Default::default()
        },
    )
    .map(|r| r.unique_identifier.0)
    .map_err(|e| e.to_string())
}

/// `kmip-server grant` against the running server, as the owner.
fn grant(server: &ServerProcess, id: &str, to: &str, operations: &str) {
    server.admin_command(&["grant", id, "--to", to, "--operations", operations]);
}

/// A root (path length 1) and an intermediate under it (path length 0, `permit`), made by the
/// administrator; root.pem and int.pem in `dir`.
fn pki(ca: &Ca<'_>, permit: &[&str]) -> (String, String) {
    let root = ca.ok(&[
        "init-root",
        "--subject",
        "CN=Test Root CA,O=Example",
        "--path-len",
        "1",
        "--out",
        "root.pem",
    ]);
    let mut args = vec![
        "init-intermediate",
        "--issuer",
        &id(&root),
        "--subject",
        "CN=Test Issuing CA,O=Example",
        "--path-len",
        "0",
        "--out",
        "int.pem",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    for p in permit {
        args.push("--permit".into());
        args.push((*p).into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let int = ca.ok(&args);
    (id(&root), id(&int))
}

/// Finding: a grantee of Certify on a CA's private key registered its own copy of the CA's
/// public key, linked to that private key, self-certified it as a root and named it as the
/// issuer: path length and name constraints then came from that forged record. The server
/// takes a CA's authority only from the CA records it made for a key pair it generated, and
/// only the key's owner makes new ones.
#[test]
fn a_certify_grant_never_makes_a_ca_of_its_own() {
    let server = ServerProcess::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let ca = Ca {
        server: &server,
        dir,
    };
    let (_, int) = pki(&ca, &["example.com"]);
    let mut admin = server.client("admin");
    let int_public = linked(&mut admin, &int, link_type::PUBLIC_KEY_LINK);
    let int_private = linked(&mut admin, &int_public, link_type::PRIVATE_KEY_LINK);
    server.issue_client_cert("mallory");
    // what the owner delegates: issuing under the intermediate
    grant(&server, &int_private, "mallory", "Certify");
    grant(&server, &int, "mallory", "Certify GetAttributes Get");
    let mut mallory = server.client("mallory");

    // the intermediate's public key, from its certificate, registered by mallory and linked
    // to the intermediate's private key
    let pem = std::fs::read(dir.join("int.pem")).unwrap();
    let spki = openssl::x509::X509::from_pem(&pem)
        .unwrap()
        .public_key()
        .unwrap()
        .public_key_to_der()
        .unwrap();
    let copy = register(
        &mut mallory,
        ot::PUBLIC_KEY,
        key_object(tag::PUBLIC_KEY, kft::X_509, alg::EC, 384, spki.clone()),
        vec![
            mask(um::VERIFY),
            link(link_type::PRIVATE_KEY_LINK, &int_private),
        ],
    );

    // (1) the copy self-certified as an unconstrained root under the intermediate's name
    let forged = certify(
        &mut mallory,
        &copy,
        &[
            ("ca-profile", "root"),
            ("ca-subject", "CN=Test Issuing CA,O=Example"),
        ],
    );
    assert!(
        forged.is_err(),
        "a registered copy of a CA's public key became a root signed by the CA's key: {forged:?}"
    );

    // (2) the copy given a CA certificate from mallory's own root, imported as a CA
    let ext_key = openssl::pkey::PKey::ec_gen("prime256v1").unwrap();
    let name = |cn: &str, o: Option<&str>| {
        let mut b = openssl::x509::X509NameBuilder::new().unwrap();
        b.append_entry_by_text("CN", cn).unwrap();
        if let Some(o) = o {
            b.append_entry_by_text("O", o).unwrap();
        }
        b.build()
    };
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name("Test Issuing CA", Some("Example")))
        .unwrap();
    b.set_issuer_name(&name("Mallory Root", None)).unwrap();
    b.set_pubkey(&openssl::pkey::PKey::public_key_from_der(&spki).unwrap())
        .unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.append_extension(
        openssl::x509::extension::BasicConstraints::new()
            .critical()
            .ca()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.sign(&ext_key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    let imported = mallory.call(
        0x8000_0005,
        Ttlv::structure(
            tag::REQUEST_PAYLOAD,
            vec![
                item(tag::UNIQUE_IDENTIFIER, Value::TextString(copy.clone())),
                item(
                    tag::CERTIFICATE_VALUE,
                    Value::ByteString(b.build().to_der().unwrap()),
                ),
            ],
        ),
    );
    assert!(
        imported.is_err(),
        "a CA certificate for a registered copy of a CA's public key was imported: {imported:?}"
    );

    // (3) the real public key, granted too, self-signed again by the grantee
    grant(&server, &int_public, "mallory", "Certify Get GetAttributes");
    let again = certify(
        &mut mallory,
        &int_public,
        &[
            ("ca-profile", "root"),
            ("ca-subject", "CN=Test Issuing CA,O=Example"),
        ],
    );
    assert!(
        again.is_err(),
        "a grantee made a new root of a CA's own key pair: {again:?}"
    );

    // what was delegated still works, inside the intermediate's rules
    ca.ok_as(
        "mallory",
        &[
            "issue",
            "--issuer",
            &int,
            "--profile",
            "server",
            "--subject",
            "CN=m.example.com",
            "--san",
            "dns:m.example.com",
            "--out",
            "m.pem",
        ],
    );
    openssl_ok(
        dir,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "int.pem",
            "m.pem",
        ],
    );
    let why = ca.refused(
        "mallory",
        &[
            "issue",
            "--issuer",
            &int,
            "--profile",
            "server",
            "--subject",
            "CN=m.evil.org",
            "--san",
            "dns:m.evil.org",
        ],
    );
    assert!(why.contains("outside the name constraints"), "{why}");
    let why = ca.refused(
        "mallory",
        &[
            "init-intermediate",
            "--issuer",
            &int,
            "--subject",
            "CN=Mallory CA",
        ],
    );
    assert!(why.contains("path length"), "{why}");
}

/// How many objects of `object_type` the administrator finds.
fn count(c: &mut Client, object_type: u32) -> usize {
    let r: LocateResponse = c
        .op(
            op::LOCATE,
            &LocateRequest {
                attributes: Some(Ttlv::structure(
                    tag::ATTRIBUTES,
                    vec![item(tag::OBJECT_TYPE, Value::Enumeration(object_type))],
                )),
                ..Default::default()
            },
        )
        .unwrap();
    r.unique_identifier.len()
}

/// Finding: `kmip-ca issue` created a key pair, then asked for its certificate; when the
/// server refused the certificate the key pair stayed. Key pair and certificate are now one
/// transaction, for every command that generates a key to certify.
#[test]
fn a_refused_issuance_leaves_no_key_pair() {
    let server = ServerProcess::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let ca = Ca {
        server: &server,
        dir,
    };
    let (root, int) = pki(&ca, &["example.com"]);
    let mut admin = server.client("admin");
    let objects = |c: &mut Client| {
        (
            count(c, ot::PRIVATE_KEY),
            count(c, ot::PUBLIC_KEY),
            count(c, ot::CERTIFICATE),
        )
    };
    let before = objects(&mut admin);
    assert_eq!(before, (2, 2, 2), "the root's and the intermediate's");

    let refusals: [(&[&str], &str); 4] = [
        (
            &[
                "issue",
                "--issuer",
                &int,
                "--profile",
                "server",
                "--subject",
                "CN=www.evil.org",
                "--san",
                "dns:www.evil.org",
            ],
            "outside the name constraints",
        ),
        (
            &[
                "init-intermediate",
                "--issuer",
                &int,
                "--subject",
                "CN=Too Deep",
            ],
            "path length",
        ),
        (
            &[
                "issue",
                "--issuer",
                &root,
                "--profile",
                "server",
                "--subject",
                "CN=www.example.com",
                "--days",
                "100000",
            ],
            "days",
        ),
        (
            &["init-root", "--subject", "XX=not a name"],
            "unknown attribute",
        ),
    ];
    for (args, why) in refusals {
        let said = ca.refused("admin", args);
        assert!(said.contains(why), "{args:?}: {said}");
        assert_eq!(
            objects(&mut admin),
            before,
            "kmip-ca {args:?} was refused and left objects behind"
        );
    }
    // an issuer the caller cannot see: refused, and nothing of the caller's stays either
    server.issue_client_cert("mallory");
    let mut mallory = server.client("mallory");
    ca.refused(
        "mallory",
        &[
            "issue",
            "--issuer",
            &int,
            "--profile",
            "server",
            "--subject",
            "CN=m.example.com",
            "--san",
            "dns:m.example.com",
        ],
    );
    assert_eq!(objects(&mut mallory), (0, 0, 0));

    // a success makes exactly one key pair and one certificate
    ca.ok(&[
        "issue",
        "--issuer",
        &int,
        "--profile",
        "server",
        "--subject",
        "CN=www.example.com",
        "--san",
        "dns:www.example.com",
        "--out",
        "www.pem",
    ]);
    assert_eq!(objects(&mut admin), (3, 3, 3));
    openssl_ok(
        dir,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "int.pem",
            "www.pem",
        ],
    );
    // and an external root's request: one key pair, no certificate yet
    ca.ok(&[
        "init-intermediate",
        "--subject",
        "CN=External Issuing CA",
        "--csr-out",
        "ext.csr",
    ]);
    assert_eq!(objects(&mut admin), (4, 4, 3));
    openssl_ok(dir, &["req", "-in", "ext.csr", "-noout", "-verify"]);
}

/// Finding: `kmip-ca export --format p12` wrote a PKCS#12 with an empty password by default,
/// with mode 0644. A password is now required (from a file or typed at the terminal, never on
/// the command line) and the file is created 0600.
#[test]
fn a_pkcs12_needs_a_password_and_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = ServerProcess::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let ca = Ca {
        server: &server,
        dir,
    };
    let (_, int) = pki(&ca, &["example.com"]);
    let leaf = ca.ok(&[
        "issue",
        "--issuer",
        &int,
        "--profile",
        "client",
        "--subject",
        "CN=alice.example.com",
        "--san",
        "dns:alice.example.com",
        "--out",
        "alice.pem",
    ]);
    let leaf = id(&leaf);
    let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;

    // no password: refused, nothing written (standard input is no terminal here)
    let why = ca.refused(
        "admin",
        &["export", &leaf, "--format", "p12", "--out", "none.p12"],
    );
    assert!(why.contains("password"), "{why}");
    assert!(!dir.join("none.p12").exists());
    // on the command line: refused
    let why = ca.refused(
        "admin",
        &[
            "export",
            &leaf,
            "--format",
            "p12",
            "--password",
            "s3cret-on-argv",
            "--out",
            "argv.p12",
        ],
    );
    assert!(why.contains("--password-file"), "{why}");
    assert!(!dir.join("argv.p12").exists());
    // an empty password file: refused
    std::fs::write(dir.join("empty.txt"), "\n").unwrap();
    ca.refused(
        "admin",
        &[
            "export",
            &leaf,
            "--format",
            "p12",
            "--password-file",
            "empty.txt",
            "--out",
            "empty.p12",
        ],
    );
    assert!(!dir.join("empty.p12").exists());

    // from a file: the PKCS#12 opens with it only, and only its owner may read it, even
    // where a world-readable file stood before
    std::fs::write(dir.join("pw.txt"), "correct horse\n").unwrap();
    std::fs::write(dir.join("alice.p12"), b"old").unwrap();
    std::fs::set_permissions(
        dir.join("alice.p12"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = ca.run_as(
        "admin",
        &[
            "export",
            &leaf,
            "--format",
            "p12",
            "--chain",
            "--password-file",
            "pw.txt",
            "--out",
            "alice.p12",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!said.contains("correct horse"), "{said}");
    assert_eq!(mode("alice.p12"), 0o600);
    let text = openssl_ok(
        dir,
        &[
            "pkcs12",
            "-in",
            "alice.p12",
            "-passin",
            "file:pw.txt",
            "-nodes",
            "-info",
        ],
    );
    assert!(text.contains("PRIVATE KEY"), "{text}");
    let empty = openssl(
        dir,
        &[
            "pkcs12",
            "-in",
            "alice.p12",
            "-passin",
            "pass:",
            "-nodes",
            "-noout",
        ],
    );
    assert!(!empty.status.success(), "an empty password opens it");
    // a new file too
    ca.ok(&[
        "export",
        &leaf,
        "--format",
        "p12",
        "--password-file",
        "pw.txt",
        "--out",
        "new.p12",
    ]);
    assert_eq!(mode("new.p12"), 0o600);
}

/// Finding: a CA made with `--permit example.com` constrained DNS names only. It issued for
/// any IP address, e-mail address and URI, and its NameConstraints extension did not exclude
/// them; a certificate named by its CN alone was not checked, and a server certificate with
/// only a CN had no subject alternative name.
#[test]
fn name_constraints_bind_every_name_type() {
    let server = ServerProcess::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let ca = Ca {
        server: &server,
        dir,
    };
    let (root, int) = pki(&ca, &["example.com"]);
    // the extension closes every name type the operator did not permit
    let text = openssl_ok(dir, &["x509", "-in", "int.pem", "-noout", "-text"]);
    for shown in [
        "DNS:example.com",
        "email:example.com",
        "email:.example.com",
        "URI:example.com",
        "URI:.example.com",
        "Excluded:",
        "IP:0.0.0.0/0.0.0.0",
        "IP:0:0:0:0:0:0:0:0/0:0:0:0:0:0:0:0",
    ] {
        assert!(text.contains(shown), "{shown} in {text}");
    }
    let issue = |profile: &str, subject: &str, sans: &[&str], out: &str| {
        let mut args = vec![
            "issue",
            "--issuer",
            &int,
            "--profile",
            profile,
            "--subject",
            subject,
            "--out",
            out,
        ];
        for s in sans {
            args.push("--san");
            args.push(s);
        }
        ca.run_as("admin", &args)
    };
    let verify = |file: &str| {
        openssl_ok(
            dir,
            &[
                "verify",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "int.pem",
                file,
            ],
        )
    };

    // refused: every name type outside the constraints, and a CN outside them with no SAN
    for (profile, subject, sans) in [
        (
            "server",
            "CN=www",
            &["dns:www.example.com", "ip:10.0.0.1"][..],
        ),
        ("server", "CN=www", &["ip:::1"][..]),
        ("email", "CN=mail", &["email:pki@evil.org"][..]),
        ("client", "CN=app", &["uri:https://evil.org/app"][..]),
        ("client", "CN=app", &["uri:urn:no-host"][..]),
        ("client", "CN=www.evil.org", &[][..]),
        ("server", "CN=www.evil.org", &[][..]),
        ("server", "CN=10.0.0.1", &[][..]),
        ("client", "CN=www.evil.org", &["dns:www.example.com"][..]),
    ] {
        let out = issue(profile, subject, sans, "refused.pem");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && said.contains("outside the name constraints"),
            "{profile} {subject} {sans:?} was issued: {said}"
        );
    }

    // inside them: issued, and openssl agrees
    for (profile, subject, sans, file) in [
        (
            "email",
            "CN=mail",
            &["email:pki@example.com"][..],
            "mail.pem",
        ),
        (
            "client",
            "CN=app",
            &[
                "uri:https://app.example.com:8443/x",
                "email:a@mail.example.com",
            ][..],
            "app.pem",
        ),
        ("client", "CN=db.example.com", &[][..], "db.pem"),
    ] {
        let out = issue(profile, subject, sans, file);
        assert!(out.status.success(), "{profile} {sans:?}: {out:?}");
        verify(file);
    }

    // a server certificate named by its CN alone carries it as its DNS name
    let out = issue("server", "CN=www.example.com", &[], "www.pem");
    assert!(out.status.success(), "{out:?}");
    let text = openssl_ok(
        dir,
        &["x509", "-in", "www.pem", "-noout", "-ext", "subjectAltName"],
    );
    assert!(text.contains("DNS:www.example.com"), "{text}");
    verify("www.pem");
    // and one whose CN is no host name is refused, for it would name no server
    let out = issue("server", "CN=Web Server", &[], "none.pem");
    assert!(!out.status.success(), "{out:?}");

    // a CA permitted an address range: those addresses only, and only DNS names of its domain
    let ranged = ca.ok(&[
        "init-intermediate",
        "--issuer",
        &root,
        "--subject",
        "CN=Ranged CA",
        "--permit",
        "example.com",
        "--permit",
        "ip:10.0.0.0/8",
        "--path-len",
        "0",
        "--out",
        "ranged.pem",
    ]);
    let text = openssl_ok(dir, &["x509", "-in", "ranged.pem", "-noout", "-text"]);
    assert!(text.contains("IP:10.0.0.0/255.0.0.0"), "{text}");
    assert!(!text.contains("Excluded:"), "{text}");
    ca.ok(&[
        "issue",
        "--issuer",
        &id(&ranged),
        "--profile",
        "server",
        "--subject",
        "CN=Device",
        "--san",
        "ip:10.1.2.3",
        "--out",
        "ip.pem",
    ]);
    openssl_ok(
        dir,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "ranged.pem",
            "ip.pem",
        ],
    );
    let why = ca.refused(
        "admin",
        &[
            "issue",
            "--issuer",
            &id(&ranged),
            "--profile",
            "server",
            "--subject",
            "CN=www",
            "--san",
            "ip:192.168.1.1",
        ],
    );
    assert!(why.contains("outside the name constraints"), "{why}");

    // a renewed CA keeps its own path length and constraints
    ca.ok(&["renew", &int, "--out", "int2.pem"]);
    let text = openssl_ok(dir, &["x509", "-in", "int2.pem", "-noout", "-text"]);
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(
        text.contains("DNS:example.com") && text.contains("IP:0.0.0.0/0.0.0.0"),
        "{text}"
    );

    // a sub-CA's constraints lie inside its issuer's, type by type
    let constrained_root = ca.ok(&[
        "init-root",
        "--subject",
        "CN=Constrained Root",
        "--permit",
        "example.com",
        "--path-len",
        "1",
        "--out",
        "croot.pem",
    ]);
    for permit in ["evil.org", "ip:10.0.0.0/8", "email:pki@evil.org"] {
        let why = ca.refused(
            "admin",
            &[
                "init-intermediate",
                "--issuer",
                &id(&constrained_root),
                "--subject",
                "CN=Sub",
                "--permit",
                permit,
            ],
        );
        assert!(
            why.contains("outside the name constraints"),
            "{permit}: {why}"
        );
    }
    ca.ok(&[
        "init-intermediate",
        "--issuer",
        &id(&constrained_root),
        "--subject",
        "CN=Sub",
        "--permit",
        "www.example.com",
        "--out",
        "sub.pem",
    ]);
    openssl_ok(dir, &["verify", "-CAfile", "croot.pem", "sub.pem"]);
}

/// Finding: the owner of a CA key pair the server had made an intermediate of imported a
/// certificate made outside (CA:TRUE, any names) for the same key, and the server then issued
/// under that record, with the constrained intermediate's key, names outside the root's
/// constraints and sub-CAs below a path length of 0. A key pair that is a CA of this server
/// takes no certificate from outside.
#[test]
fn a_ca_of_this_server_takes_no_certificate_from_outside() {
    let server = ServerProcess::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let ca = Ca {
        server: &server,
        dir,
    };
    let (_, int) = pki(&ca, &["example.com"]);
    let mut admin = server.client("admin");
    let int_public = linked(&mut admin, &int, link_type::PUBLIC_KEY_LINK);
    // a CA:TRUE certificate for the intermediate's public key, signed by a key of our own
    openssl_ok(
        dir,
        &[
            "x509", "-in", "int.pem", "-pubkey", "-noout", "-out", "pub.pem",
        ],
    );
    openssl_ok(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "other.key",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    openssl_ok(
        dir,
        &[
            "x509",
            "-new",
            "-subj",
            "/CN=Test Issuing CA/O=Example",
            "-force_pubkey",
            "pub.pem",
            "-key",
            "other.key",
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
            "-out",
            "outside.pem",
        ],
    );
    let refused = ca.refused(
        "admin",
        &[
            "init-intermediate",
            "--import",
            "outside.pem",
            "--public-key",
            &int_public,
            "--out",
            "imported.pem",
        ],
    );
    assert!(refused.contains("CA of this server"), "{refused}");
    // issuing still follows the root's constraints
    ca.refused(
        "admin",
        &[
            "issue",
            "--issuer",
            &int,
            "--profile",
            "server",
            "--subject",
            "CN=www.evil.org",
            "--out",
            "evil.pem",
        ],
    );
}

/// Finding: a self-signed Certify follows the public key's Private Key Link, which its owner
/// points anywhere, and answered Permission Denied for another identity's key but Object Not
/// Found for an identifier that does not exist. Both are now not found, as everywhere.
#[test]
fn a_self_signed_certify_does_not_tell_foreign_keys_from_absent_ones() {
    let server = ServerProcess::start(&[]);
    server.issue_client_cert("alice");
    server.issue_client_cert("bob");
    let bobs = interop_tests::kmip::create_aes(&mut server.client("bob"), 128, vec![]);
    let mut alice = server.client("alice");
    let spki = openssl::pkey::PKey::ec_gen("prime256v1")
        .unwrap()
        .public_key_to_der()
        .unwrap();
    let mut answer = |private: &str| {
        let public = register(
            &mut alice,
            ot::PUBLIC_KEY,
            key_object(tag::PUBLIC_KEY, kft::X_509, alg::EC, 256, spki.clone()),
            vec![mask(um::VERIFY), link(link_type::PRIVATE_KEY_LINK, private)],
        );
        certify(
            &mut alice,
            &public,
            &[("ca-profile", "root"), ("ca-subject", "CN=probe")],
        )
        .expect_err("self-signed with a key alice does not hold")
    };
    let (foreign, absent) = (answer(&bobs), answer("999999"));
    assert!(foreign.to_lowercase().contains("not found"), "{foreign}");
    assert_eq!(foreign, absent, "bob's key told from no key");
}

/// Finding: the owner of an intermediate's key pair self-signed a new root on it (or had
/// another of its own roots certify it): the server then signed, with the intermediate's key,
/// names outside the root's constraints and sub-CAs past its path length. A key pair the
/// server made a CA of takes new CA certificates only from its own issuer, even once its
/// record is destroyed.
#[test]
fn an_intermediate_key_pair_is_never_made_a_ca_again_elsewhere() {
    let server = ServerProcess::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let ca = Ca {
        server: &server,
        dir: work.path(),
    };
    let (_, int) = pki(&ca, &["example.com"]);
    let mut admin = server.client("admin");
    let int_public = linked(&mut admin, &int, link_type::PUBLIC_KEY_LINK);
    let as_root = |c: &mut Client| {
        certify(
            c,
            &int_public,
            &[
                ("ca-profile", "root"),
                ("ca-subject", "CN=Test Issuing CA,O=Example"),
            ],
        )
    };
    let refused = as_root(&mut admin).expect_err("the intermediate's key pair became a root");
    assert!(refused.contains("a CA of this server already"), "{refused}");
    // another root of the same owner certifying the intermediate's key pair
    let other = id(&ca.ok(&[
        "init-root",
        "--subject",
        "CN=Other Root",
        "--out",
        "other.pem",
    ]));
    let by_other = admin.op::<_, CertifyResponse>(
        op::CERTIFY,
        &CertifyRequest {
            unique_identifier: uid(&int_public),
            attributes: Some(Ttlv::structure(
                tag::ATTRIBUTES,
                vec![
                    custom("ca-profile", "intermediate"),
                    custom("ca-subject", "CN=Test Issuing CA,O=Example"),
                    custom("ca-issuer", &other),
                ],
            )),
            ..Default::default()
        },
    );
    assert!(
        by_other.is_err(),
        "certified again by another root: {by_other:?}"
    );
    // the intermediate's record destroyed: its key pair is still bound
    ca.ok(&["revoke", &int, "--reason", "superseded"]);
    let _: DestroyResponse = admin
        .op(
            op::DESTROY,
            &DestroyRequest {
                unique_identifier: uid(&int),
            },
        )
        .unwrap();
    let again = as_root(&mut admin).expect_err("a destroyed record freed its key pair");
    assert!(again.contains("a CA of this server already"), "{again}");
    // a root still renews itself, an intermediate through its issuer
    let renewed = ca.ok(&["renew", &other, "--out", "other-renewed.pem"]);
    assert_ne!(id(&renewed), other);
}

/// Finding: the signatures a CA key makes did not count against its Usage Limits; a key
/// limited to one object signed any number of certificates.
#[test]
fn ca_signatures_count_against_usage_limits() {
    let server = ServerProcess::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let ca = Ca {
        server: &server,
        dir: work.path(),
    };
    let root = id(&ca.ok(&[
        "init-root",
        "--subject",
        "CN=Limited Root",
        "--out",
        "r.pem",
    ]));
    let mut admin = server.client("admin");
    let public = linked(&mut admin, &root, link_type::PUBLIC_KEY_LINK);
    let private = linked(&mut admin, &public, link_type::PRIVATE_KEY_LINK);
    let _: AddAttributeResponse = admin
        .op(
            op::ADD_ATTRIBUTE,
            &AddAttributeRequest {
                unique_identifier: uid(&private),
                new_attribute: Some(Ttlv::structure(
                    tag::NEW_ATTRIBUTE,
                    vec![Ttlv::structure(
                        tag::USAGE_LIMITS,
                        vec![
                            item(tag::USAGE_LIMITS_TOTAL, Value::LongInteger(1)),
                            item(tag::USAGE_LIMITS_UNIT, Value::Enumeration(2)),
                        ],
                    )],
                )),
                ..Default::default()
            },
        )
        .unwrap();
    let issue = |n: &str| {
        ca.run_as(
            "admin",
            &[
                "issue",
                "--issuer",
                &root,
                "--profile",
                "client",
                "--subject",
                n,
                "--out",
                "leaf.pem",
            ],
        )
    };
    assert!(issue("CN=first").status.success(), "the one use");
    let second = issue("CN=second");
    assert!(
        !second.status.success(),
        "a second signature past the limit"
    );
}

/// Finding: a CN with an underscore (`a_b.evil.org`) was not read as a host name, so the name
/// constraints never saw it, while OpenSSL reads it as one.
#[test]
fn a_cn_with_an_underscore_is_bound_by_the_name_constraints() {
    let server = ServerProcess::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let ca = Ca {
        server: &server,
        dir: work.path(),
    };
    let (_, int) = pki(&ca, &["example.com"]);
    for cn in ["CN=a_b.evil.org", "CN=x.evil.org"] {
        let why = ca.refused(
            "admin",
            &[
                "issue",
                "--issuer",
                &int,
                "--profile",
                "client",
                "--subject",
                cn,
                "--out",
                "leaf.pem",
            ],
        );
        assert!(why.contains("outside the name constraints"), "{cn}: {why}");
    }
    ca.ok(&[
        "issue",
        "--issuer",
        &int,
        "--profile",
        "client",
        "--subject",
        "CN=a_b.example.com",
        "--out",
        "leaf.pem",
    ]);
}
