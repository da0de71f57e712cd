//! Certificates the generated PKI would never make, for the tests that need a foreign CA, an
//! untrusted client, or a server certificate of their own.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use std::path::Path;

/// A P-256 key.
pub fn new_key() -> PKey<Private> {
    let group = openssl::ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)
        .expect("OpenSSL builds test certificates");
    PKey::from_ec_key(
        openssl::ec::EcKey::generate(&group).expect("OpenSSL builds test certificates"),
    )
    .expect("OpenSSL builds test certificates")
}

/// What a [`certificate`] is for.
pub enum Kind {
    Ca,
    Server,
    Client,
}

/// A certificate for `cn` (30 days), self-signed when `issuer` is None.
pub fn certificate(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    kind: Kind,
) -> X509 {
    let mut name = X509NameBuilder::new().expect("OpenSSL builds test certificates");
    name.append_entry_by_nid(Nid::COMMONNAME, cn)
        .expect("OpenSSL builds test certificates");
    let name = name.build();
    let mut b = X509Builder::new().expect("OpenSSL builds test certificates");
    b.set_version(2).expect("OpenSSL builds test certificates");
    let mut serial = BigNum::new().expect("OpenSSL builds test certificates");
    serial
        .rand(127, MsbOption::MAYBE_ZERO, false)
        .expect("OpenSSL builds test certificates");
    b.set_serial_number(
        &serial
            .to_asn1_integer()
            .expect("OpenSSL builds test certificates"),
    )
    .expect("OpenSSL builds test certificates");
    b.set_subject_name(&name)
        .expect("OpenSSL builds test certificates");
    b.set_issuer_name(issuer.map(|(c, _)| c.subject_name()).unwrap_or(&name))
        .expect("OpenSSL builds test certificates");
    b.set_pubkey(key).expect("OpenSSL builds test certificates");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("OpenSSL builds test certificates"))
        .expect("OpenSSL builds test certificates");
    b.set_not_after(&Asn1Time::days_from_now(30).expect("OpenSSL builds test certificates"))
        .expect("OpenSSL builds test certificates");
    match kind {
        Kind::Ca => {
            b.append_extension(
                BasicConstraints::new()
                    .critical()
                    .ca()
                    .build()
                    .expect("OpenSSL builds test certificates"),
            )
            .expect("OpenSSL builds test certificates");
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .expect("OpenSSL builds test certificates"),
            )
            .expect("OpenSSL builds test certificates");
        }
        Kind::Server => {
            b.append_extension(
                ExtendedKeyUsage::new()
                    .server_auth()
                    .build()
                    .expect("OpenSSL builds test certificates"),
            )
            .expect("OpenSSL builds test certificates");
            let san = SubjectAlternativeName::new()
                .dns("localhost")
                .ip("127.0.0.1")
                .build(&b.x509v3_context(issuer.map(|(c, _)| &**c), None))
                .expect("OpenSSL builds test certificates");
            b.append_extension(san)
                .expect("OpenSSL builds test certificates");
        }
        Kind::Client => {
            b.append_extension(
                ExtendedKeyUsage::new()
                    .client_auth()
                    .build()
                    .expect("OpenSSL builds test certificates"),
            )
            .expect("OpenSSL builds test certificates");
        }
    }
    b.sign(
        issuer.map(|(_, k)| k).unwrap_or(key),
        MessageDigest::sha256(),
    )
    .expect("OpenSSL builds test certificates");
    b.build()
}

/// `DIR/NAME.pem` and `DIR/NAME.key` (PKCS#8).
pub fn write_identity(dir: &Path, name: &str, cert: &X509, key: &PKey<Private>) {
    std::fs::write(
        dir.join(format!("{name}.pem")),
        cert.to_pem().expect("OpenSSL builds test certificates"),
    )
    .expect("OpenSSL builds test certificates");
    std::fs::write(
        dir.join(format!("{name}.key")),
        key.private_key_to_pem_pkcs8()
            .expect("OpenSSL builds test certificates"),
    )
    .expect("OpenSSL builds test certificates");
}
