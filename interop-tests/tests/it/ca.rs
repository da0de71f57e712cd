//! kmip-ca against a real server, checked by the openssl command line: a root and an
//! intermediate whose keys stay in the server, leaves of every profile that `openssl verify`
//! accepts, a CRL that names a revoked leaf, refusals (CA:TRUE requests, names outside the
//! constraints, a CA key asked for or used to sign arbitrary data), and `list --expiring`.

use interop_tests::ca::{id, openssl, openssl_ok, Ca};
use interop_tests::kmip::uid;
use interop_tests::ServerProcess;
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{link_type, operation as op, result_reason as rr};
use kmip_codec::Ttlv;

#[test]
fn a_pki_whose_keys_never_leave_the_server() {
    let server = ServerProcess::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let ca = Ca {
        server: &server,
        dir,
    };

    let root = ca.ok(&[
        "init-root",
        "--subject",
        "CN=Test Root CA,O=Example,C=GB",
        "--key",
        "rsa:2048",
        "--path-len",
        "1",
        "--out",
        "root.pem",
    ]);
    let int = ca.ok(&[
        "init-intermediate",
        "--issuer",
        &id(&root),
        "--subject",
        "CN=Test Issuing CA,O=Example",
        "--permit",
        "example.com",
        "--path-len",
        "0",
        "--out",
        "int.pem",
    ]);
    let text = openssl_ok(dir, &["x509", "-in", "int.pem", "-noout", "-text"]);
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(
        text.contains("Permitted:") && text.contains("DNS:example.com"),
        "{text}"
    );
    openssl_ok(dir, &["verify", "-CAfile", "root.pem", "int.pem"]);

    // a leaf of every profile verifies, and shows that profile's extended key usage
    for (profile, eku, san) in [
        (
            "server",
            "TLS Web Server Authentication",
            "dns:www.example.com",
        ),
        (
            "client",
            "TLS Web Client Authentication",
            "dns:client.example.com",
        ),
        ("code-signing", "Code Signing", "dns:build.example.com"),
        ("email", "E-mail Protection", "email:pki@example.com"),
    ] {
        let file = format!("{profile}.pem");
        ca.ok(&[
            "issue",
            "--issuer",
            &id(&int),
            "--profile",
            profile,
            "--subject",
            &format!("CN={profile} leaf"),
            "--san",
            san,
            "--out",
            &file,
        ]);
        openssl_ok(
            dir,
            &[
                "verify",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "int.pem",
                &file,
            ],
        );
        let text = openssl_ok(dir, &["x509", "-in", &file, "-noout", "-text"]);
        assert!(text.contains(eku), "{profile}: {text}");
        assert!(text.contains("CA:FALSE"), "{profile}: {text}");
    }

    // a PKCS#10 request: made by openssl, signed by the server
    openssl_ok(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "csr.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=csr.example.com",
            "-addext",
            "subjectAltName=DNS:csr.example.com",
        ],
    );
    let signed = ca.ok(&[
        "sign",
        "leaf.csr",
        "--issuer",
        &id(&int),
        "--profile",
        "server",
        "--out",
        "csr.pem",
    ]);
    assert_eq!(signed["sans"][0], "dns:csr.example.com");
    openssl_ok(
        dir,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "int.pem",
            "csr.pem",
        ],
    );

    // refusals: a request for CA:TRUE, a name outside the constraints, a CA below pathlen 0
    openssl_ok(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.csr",
            "-subj",
            "/CN=sneaky.example.com",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ],
    );
    let why = ca.refused(
        "admin",
        &[
            "sign",
            "ca.csr",
            "--issuer",
            &id(&int),
            "--profile",
            "server",
        ],
    );
    assert!(why.contains("CA:TRUE"), "{why}");
    let why = ca.refused(
        "admin",
        &[
            "issue",
            "--issuer",
            &id(&int),
            "--profile",
            "server",
            "--subject",
            "CN=evil",
            "--san",
            "dns:www.evil.org",
        ],
    );
    assert!(why.contains("outside the name constraints"), "{why}");
    let why = ca.refused(
        "admin",
        &[
            "init-intermediate",
            "--issuer",
            &id(&int),
            "--subject",
            "CN=Too Deep",
        ],
    );
    assert!(why.contains("path length"), "{why}");

    // revocation: the next CRL names the leaf, openssl accepts the CRL and rejects the leaf
    let victim = ca.ok(&[
        "issue",
        "--issuer",
        &id(&int),
        "--profile",
        "server",
        "--subject",
        "CN=victim",
        "--san",
        "dns:victim.example.com",
        "--out",
        "victim.pem",
    ]);
    ca.ok(&["revoke", &id(&victim), "--reason", "key-compromise"]);
    ca.ok(&["crl", "--issuer", &id(&int), "--out", "crl1.pem"]);
    ca.ok(&["crl", "--issuer", &id(&int), "--out", "crl.pem"]);
    let text = openssl_ok(
        dir,
        &[
            "crl", "-in", "crl.pem", "-CAfile", "int.pem", "-noout", "-verify", "-text",
        ],
    );
    assert!(text.contains("verify OK"), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    let serial = victim["serial"].as_str().unwrap().to_uppercase();
    assert!(
        text.to_uppercase().contains(&serial),
        "serial {serial} in {text}"
    );
    let number = |f: &str| {
        openssl_ok(dir, &["crl", "-in", f, "-noout", "-crlnumber"])
            .trim()
            .trim_start_matches("crlNumber=")
            .trim_start_matches("0x")
            .to_owned()
    };
    let (n1, n2) = (number("crl1.pem"), number("crl.pem"));
    assert!(
        u64::from_str_radix(&n2, 16).unwrap() > u64::from_str_radix(&n1, 16).unwrap(),
        "CRL numbers increase: {n1} then {n2}"
    );
    let rejected = openssl(
        dir,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "int.pem",
            "-CRLfile",
            "crl.pem",
            "victim.pem",
        ],
    );
    let text = String::from_utf8_lossy(&rejected.stdout).to_string()
        + &String::from_utf8_lossy(&rejected.stderr);
    assert!(
        !rejected.status.success() && text.contains("revoked"),
        "{text}"
    );
    openssl_ok(
        dir,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "int.pem",
            "-CRLfile",
            "crl.pem",
            "server.pem",
        ],
    );

    // list --expiring finds the short-lived certificate only
    let short = ca.ok(&[
        "issue",
        "--issuer",
        &id(&int),
        "--profile",
        "client",
        "--subject",
        "CN=short",
        "--days",
        "10",
        "--out",
        "short.pem",
    ]);
    let long = ca.ok(&[
        "issue",
        "--issuer",
        &id(&int),
        "--profile",
        "client",
        "--subject",
        "CN=long",
        "--days",
        "200",
        "--out",
        "long.pem",
    ]);
    let listed = ca.ok(&["list", "--expiring", "30d"]);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert!(ids.contains(&id(&short).as_str()), "{listed}");
    assert!(!ids.contains(&id(&long).as_str()), "{listed}");

    // renew: a new serial for the same key and names
    let renewed = ca.ok(&["renew", &id(&long), "--out", "renewed.pem"]);
    assert_ne!(renewed["serial"], long["serial"]);
    assert_eq!(renewed["subject"], long["subject"]);
    openssl_ok(
        dir,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "int.pem",
            "renewed.pem",
        ],
    );

    // a leaf's PKCS#12 carries its key; a CA's never does, for the administrator either
    std::fs::write(dir.join("pw.txt"), "pw\n").unwrap();
    let p12 = ca.ok(&[
        "export",
        &id(&short),
        "--format",
        "p12",
        "--chain",
        "--password-file",
        "pw.txt",
        "--out",
        "short.p12",
    ]);
    assert_eq!(p12["private_key"], true, "{p12}");
    let p12 = ca.ok(&[
        "export",
        &id(&int),
        "--format",
        "p12",
        "--password-file",
        "pw.txt",
        "--out",
        "int.p12",
    ]);
    assert_eq!(p12["private_key"], false, "{p12}");
    let refused = p12["private_key_refused"].as_str().unwrap_or_default();
    assert!(
        refused.contains(&format!("reason 0x{:X}", rr::NOT_EXTRACTABLE)),
        "{p12}"
    );

    // over KMIP: the CA private key is Not Extractable for the administrator, and it signs
    // nothing but certificates and CRLs
    let mut admin = server.client("admin");
    let attrs = |c: &mut kmip_client::Client, id: &str| -> Vec<Ttlv> {
        let r: GetAttributesResponse = c
            .op(
                op::GET_ATTRIBUTES,
                &GetAttributesRequest {
                    unique_identifier: uid(id),
                    ..Default::default()
                },
            )
            .unwrap();
        r.attributes
            .map(|a| a.children().to_vec())
            .unwrap_or(r.attribute)
    };
    let link = |a: &[Ttlv], kind: u32| kmip_codec::attributes::linked(a, kind).unwrap();
    let public = link(&attrs(&mut admin, &id(&root)), link_type::PUBLIC_KEY_LINK);
    let private = link(&attrs(&mut admin, &public), link_type::PRIVATE_KEY_LINK);
    let get = admin.op::<_, GetResponse>(
        op::GET,
        &GetRequest {
            unique_identifier: uid(&private),
            ..Default::default()
        },
    );
    assert_eq!(get.unwrap_err().reason(), Some(rr::NOT_EXTRACTABLE));
    let sign = admin.op::<_, SignResponse>(
        op::SIGN,
        &SignRequest {
            unique_identifier: uid(&private),
            data: Some(kmip_codec::message::Bytes(b"arbitrary bytes".to_vec())),
            ..Default::default()
        },
    );
    assert_eq!(
        sign.unwrap_err().reason(),
        Some(rr::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK)
    );

    // another identity cannot issue from this CA: it does not even see it
    server.issue_client_cert("mallory");
    let why = ca.refused(
        "mallory",
        &[
            "issue",
            "--issuer",
            &id(&int),
            "--profile",
            "server",
            "--subject",
            "CN=mallory",
            "--san",
            "dns:m.example.com",
        ],
    );
    assert!(
        why.contains(&format!("reason 0x{:X}", rr::OBJECT_NOT_FOUND)),
        "{why}"
    );
}

/// An intermediate whose key is in the server, issued by a root outside it (openssl here):
/// the server writes the request, takes the certificate back, and issues under it.
#[test]
fn an_intermediate_under_an_external_root() {
    let server = ServerProcess::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let ca = Ca {
        server: &server,
        dir,
    };
    openssl_ok(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ext.key",
            "-out",
            "ext.pem",
            "-subj",
            "/CN=External Root",
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    let req = ca.ok(&[
        "init-intermediate",
        "--subject",
        "CN=Issuing CA under an external root,O=Example",
        "--csr-out",
        "int.csr",
    ]);
    let public = req["public_key"].as_str().unwrap().to_owned();
    openssl_ok(dir, &["req", "-in", "int.csr", "-noout", "-verify"]);
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
         nameConstraints=critical,permitted;DNS:example.com\n",
    )
    .unwrap();
    openssl_ok(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "ext.pem",
            "-CAkey",
            "ext.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-extfile",
            "ext.cnf",
            "-out",
            "int-signed.pem",
        ],
    );
    let int = ca.ok(&[
        "init-intermediate",
        "--import",
        "int-signed.pem",
        "--public-key",
        &public,
        "--out",
        "int.pem",
    ]);
    ca.ok(&[
        "issue",
        "--issuer",
        &id(&int),
        "--profile",
        "server",
        "--subject",
        "CN=www",
        "--san",
        "dns:www.example.com",
        "--out",
        "leaf.pem",
    ]);
    openssl_ok(
        dir,
        &[
            "verify",
            "-CAfile",
            "ext.pem",
            "-untrusted",
            "int.pem",
            "leaf.pem",
        ],
    );
    // the root's constraints hold here too
    let why = ca.refused(
        "admin",
        &[
            "issue",
            "--issuer",
            &id(&int),
            "--profile",
            "server",
            "--subject",
            "CN=x",
            "--san",
            "dns:www.example.net",
        ],
    );
    assert!(why.contains("outside the name constraints"), "{why}");
    // a certificate for some other key is not taken
    let other = ca.ok(&[
        "init-intermediate",
        "--subject",
        "CN=Other",
        "--csr-out",
        "other.csr",
    ]);
    let why = ca.refused(
        "admin",
        &[
            "init-intermediate",
            "--import",
            "int-signed.pem",
            "--public-key",
            other["public_key"].as_str().unwrap(),
        ],
    );
    assert!(why.contains("another key"), "{why}");
}
