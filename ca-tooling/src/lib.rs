//! kmip-ca: certificate authorities whose private keys are generated in a KMIP server and
//! never leave it. The server builds and signs every certificate and CRL (KMIP Certify and our
//! CRL operation) under the profile it enforces; this crate only asks, and reads the results.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod commands;

use der::Decode;
use kmip_client::Client;
use kmip_codec::message::{Enum, FieldValue, Req};
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    cryptographic_algorithm as alg, cryptographic_usage_mask as um, link_type, object_type as ot,
    operation as op, recommended_curve as rc, revocation_reason_code as rrc,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};

/// Our vendor operations (kmip-codec's `vendor`).
pub use kmip_codec::vendor::operation::{
    CERTIFICATE_REQUEST as CERTIFICATE_REQUEST_OPERATION, CRL as CRL_OPERATION,
    IMPORT_CA as IMPORT_CA_OPERATION,
};

/// What went wrong, said for a PKI administrator.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<kmip_client::ClientError> for Error {
    fn from(e: kmip_client::ClientError) -> Error {
        Error(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error(e.to_string())
    }
}

impl From<openssl::error::ErrorStack> for Error {
    fn from(e: openssl::error::ErrorStack) -> Error {
        Error(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub fn fail<T>(why: impl Into<String>) -> Result<T> {
    Err(Error(why.into()))
}

/// How to reach the KMIP server and as whom: the options every tool shares (kmip-client's
/// `connection`: --server, --client-cert, --client-key, --server-ca, --data-dir, --identity,
/// and --config's `[client]` table).
#[derive(clap::Args, Debug, Clone)]
pub struct Connection {
    #[command(flatten)]
    pub args: kmip_client::connection::ConnectionArgs,
}

impl Connection {
    pub fn connect(&self) -> Result<Kmip> {
        let e = self.args.resolve().map_err(|e| Error(e.to_string()))?;
        let client = e
            .connect()
            .map_err(|err| Error(format!("connect to {}: {err}", e.server)))?;
        Ok(Kmip(client))
    }
}

/// A key type for generated keys: `rsa:2048`, `rsa:3072`, `rsa:4096`, `ec:p256`, `ec:p384`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Rsa(i32),
    Ec(u32, i32),
}

impl std::str::FromStr for KeyType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<KeyType, String> {
        Ok(match s {
            "rsa:2048" => KeyType::Rsa(2048),
            "rsa:3072" => KeyType::Rsa(3072),
            "rsa:4096" => KeyType::Rsa(4096),
            "ec:p256" => KeyType::Ec(rc::P_256, 256),
            "ec:p384" => KeyType::Ec(rc::P_384, 384),
            _ => return Err(format!("{s}: rsa:2048|rsa:3072|rsa:4096|ec:p256|ec:p384")),
        })
    }
}

fn item(t: kmip_codec::Tag, v: Value) -> Ttlv {
    Ttlv::new(t, v)
}

fn text(t: kmip_codec::Tag, s: &str) -> Ttlv {
    item(t, Value::TextString(s.into()))
}

/// A client-side custom attribute `x-NAME` in the 2.x form.
pub fn custom(name: &str, value: Value) -> Ttlv {
    Ttlv::structure(
        tag::ATTRIBUTE,
        vec![
            text(tag::VENDOR_IDENTIFICATION, "x"),
            text(tag::ATTRIBUTE_NAME, name),
            item(tag::ATTRIBUTE_VALUE, value),
        ],
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What a Certify asks for; the server checks it against the profile.
#[derive(Default, Debug, Clone)]
pub struct CertRequest {
    pub profile: String,
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub sans: Vec<String>,
    pub days: Option<i64>,
    pub path_len: Option<i64>,
    pub permitted: Vec<String>,
}

impl CertRequest {
    fn attributes(&self) -> Vec<Ttlv> {
        let mut a = vec![custom(
            "ca-profile",
            Value::TextString(self.profile.clone()),
        )];
        if let Some(i) = &self.issuer {
            a.push(custom("ca-issuer", Value::TextString(i.clone())));
        }
        if let Some(s) = &self.subject {
            a.push(custom("ca-subject", Value::TextString(s.clone())));
        }
        for s in &self.sans {
            a.push(custom("ca-san", Value::TextString(s.clone())));
        }
        if let Some(d) = self.days {
            a.push(custom("ca-days", Value::LongInteger(d)));
        }
        if let Some(n) = self.path_len {
            a.push(custom("ca-path-len", Value::LongInteger(n)));
        }
        for p in &self.permitted {
            a.push(custom("ca-permitted", Value::TextString(p.clone())));
        }
        a
    }
}

/// One certificate as the server holds it.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub id: String,
    pub der: Vec<u8>,
    pub state: String,
    pub issuer_id: Option<String>,
    pub profile: Option<String>,
    pub public_key_id: Option<String>,
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    /// A CA's path length as the server recorded it (-1: none).
    pub path_len: Option<i64>,
    /// A CA's permitted subtrees as the server recorded them.
    pub permitted: Vec<String>,
}

impl CertInfo {
    pub fn pem(&self) -> Result<String> {
        let x = openssl::x509::X509::from_der(&self.der)?;
        Ok(String::from_utf8_lossy(&x.to_pem()?).into_owned())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "serial": self.serial,
            "subject": self.subject,
            "issuer": self.issuer,
            "issuer_id": self.issuer_id,
            "profile": self.profile,
            "sans": self.sans,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "state": self.state,
        })
    }
}

fn unix_of(t: &x509_cert::time::Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

/// Parse a DER certificate with x509-cert: serial, names, SANs, validity.
pub fn describe(der: &[u8]) -> Result<(String, String, String, Vec<String>, i64, i64)> {
    let c =
        x509_cert::Certificate::from_der(der).map_err(|e| Error(format!("certificate: {e}")))?;
    let tbs = &c.tbs_certificate();
    let serial = kmip_codec::text::hex(tbs.serial_number().as_bytes());
    let names = |n: &x509_cert::name::Name| {
        n.iter()
            .map(|atv| atv.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut sans = Vec::new();
    if let Ok(Some((_, san))) = tbs.get_extension::<x509_cert::ext::pkix::SubjectAltName>() {
        use x509_cert::ext::pkix::name::GeneralName as G;
        for n in san.0 {
            match n {
                G::DnsName(d) => sans.push(format!("dns:{}", d.as_str())),
                G::Rfc822Name(d) => sans.push(format!("email:{}", d.as_str())),
                G::UniformResourceIdentifier(d) => sans.push(format!("uri:{}", d.as_str())),
                G::IpAddress(ip) => {
                    let b = ip.as_bytes();
                    let a: Option<std::net::IpAddr> = match b.len() {
                        4 => <[u8; 4]>::try_from(b).ok().map(Into::into),
                        16 => <[u8; 16]>::try_from(b).ok().map(Into::into),
                        _ => None,
                    };
                    if let Some(a) = a {
                        sans.push(format!("ip:{a}"));
                    }
                }
                _ => {}
            }
        }
    }
    let v = tbs.validity();
    Ok((
        serial,
        names(tbs.subject()),
        names(tbs.issuer()),
        sans,
        unix_of(&v.not_before),
        unix_of(&v.not_after),
    ))
}

/// The KMIP calls kmip-ca makes.
pub struct Kmip(pub Client);

impl Kmip {
    /// Generate a key pair in the server. A CA key is Sensitive and not Extractable, and may
    /// only sign certificates and CRLs; a leaf key signs (and, for RSA, decrypts).
    pub fn create_key_pair(
        &mut self,
        key: KeyType,
        name: &str,
        ca: bool,
    ) -> Result<(String, String)> {
        let r: CreateKeyPairResponse = self
            .0
            .op(op::CREATE_KEY_PAIR, &key_pair_request(key, name, ca))?;
        Ok(key_pair_ids(&r))
    }

    /// Generate a key pair in the server and, in the same message, certify it (or ask for a
    /// certificate request for it): one transaction (Batch Error Continuation Option Undo), so
    /// a refused certificate leaves no key pair behind. The second operation names the key
    /// pair by the ID Placeholder (its private key). The key pair's identifiers (private,
    /// public) and the second operation's response payload.
    pub fn with_new_key_pair(
        &mut self,
        key: KeyType,
        name: &str,
        ca: bool,
        then: (u32, Ttlv),
    ) -> Result<(String, String, Ttlv)> {
        let create = key_pair_request(key, name, ca).encode(tag::REQUEST_PAYLOAD);
        let mut req = self
            .0
            .batch_request(vec![(op::CREATE_KEY_PAIR, create), then]);
        req.header.0.batch_error_continuation_option = Some(Enum(
            kmip_codec::vocab::enums::batch_error_continuation_option::UNDO,
        ));
        let resp = self.0.send(&req)?;
        let ok = kmip_codec::vocab::enums::result_status::SUCCESS;
        if let Some(bad) = resp
            .batch_item
            .iter()
            .find(|b| {
                b.result_status.0 .0 == kmip_codec::vocab::enums::result_status::OPERATION_FAILED
            })
            .or_else(|| resp.batch_item.iter().find(|b| b.result_status.0 .0 != ok))
        {
            return Err(kmip_client::ClientError::Failed {
                reason: bad.result_reason.map(|r| r.0).unwrap_or(0),
                message: bad.result_message.clone().unwrap_or_default(),
            }
            .into());
        }
        let mut items = resp.batch_item.into_iter();
        let (Some(first), Some(second), None) = (items.next(), items.next(), items.next()) else {
            return fail("the server did not answer both operations");
        };
        let empty = || Ttlv::structure(tag::RESPONSE_PAYLOAD, Vec::new());
        let pair = CreateKeyPairResponse::decode(&first.response_payload.unwrap_or_else(empty))
            .map_err(|e| Error(format!("Create Key Pair response: {e}")))?;
        let (private, public) = key_pair_ids(&pair);
        Ok((
            private,
            public,
            second.response_payload.unwrap_or_else(empty),
        ))
    }

    /// [`Kmip::with_new_key_pair`] for a certificate: the key pair's identifiers and the
    /// certificate's.
    pub fn certify_new_key_pair(
        &mut self,
        key: KeyType,
        name: &str,
        ca: bool,
        req: &CertRequest,
    ) -> Result<(String, String, String)> {
        let certify = CertifyRequest {
            attributes: Some(Ttlv::structure(tag::ATTRIBUTES, req.attributes())),
            ..Default::default()
        }
        .encode(tag::REQUEST_PAYLOAD);
        let (private, public, payload) =
            self.with_new_key_pair(key, name, ca, (op::CERTIFY, certify))?;
        let r = CertifyResponse::decode(&payload)
            .map_err(|e| Error(format!("Certify response: {e}")))?;
        Ok((private, public, r.unique_identifier.0))
    }
}

/// The Create Key Pair request for a key of `key` type named `name`. A CA key is Sensitive and
/// not Extractable, and may only sign certificates and CRLs; a leaf key signs (and, for RSA,
/// decrypts).
fn key_pair_request(key: KeyType, name: &str, ca: bool) -> CreateKeyPairRequest {
    let mut common = vec![item(tag::ACTIVATION_DATE, Value::DateTime(now()))];
    match key {
        KeyType::Rsa(bits) => {
            common.push(item(
                tag::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(alg::RSA),
            ));
            common.push(item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(bits)));
        }
        KeyType::Ec(curve, bits) => {
            common.push(item(
                tag::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(alg::EC),
            ));
            common.push(item(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(bits)));
            common.push(Ttlv::structure(
                tag::CRYPTOGRAPHIC_DOMAIN_PARAMETERS,
                vec![item(tag::RECOMMENDED_CURVE, Value::Enumeration(curve))],
            ));
        }
    }
    let named = |suffix: &str| {
        Ttlv::structure(
            tag::NAME,
            vec![
                text(tag::NAME_VALUE, &format!("{name} {suffix}")),
                item(tag::NAME_TYPE, Value::Enumeration(1)),
            ],
        )
    };
    let mask = |m: u32| item(tag::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(m as i32));
    let private = if ca {
        vec![
            named("private key"),
            mask(um::CERTIFICATE_SIGN | um::CRL_SIGN),
            item(tag::SENSITIVE, Value::Boolean(true)),
            item(tag::EXTRACTABLE, Value::Boolean(false)),
        ]
    } else {
        let m = match key {
            KeyType::Rsa(_) => um::SIGN | um::DECRYPT | um::UNWRAP_KEY,
            KeyType::Ec(..) => um::SIGN,
        };
        vec![named("private key"), mask(m)]
    };
    let attrs = |v: Vec<Ttlv>| Some(Ttlv::structure(tag::ATTRIBUTES, v));
    CreateKeyPairRequest {
        common_attributes: attrs(common),
        private_key_attributes: attrs(private),
        public_key_attributes: attrs(vec![named("public key"), mask(um::VERIFY)]),
        ..Default::default()
    }
}

fn key_pair_ids(r: &CreateKeyPairResponse) -> (String, String) {
    let id = |t: &Ttlv| t.as_text().map(str::to_owned).unwrap_or_default();
    (
        id(&r.private_key_unique_identifier),
        id(&r.public_key_unique_identifier),
    )
}

impl Kmip {
    /// Certify a stored public key, or a PKCS#10 request (DER); the new certificate's id.
    pub fn certify(
        &mut self,
        public_key: Option<&str>,
        csr: Option<&[u8]>,
        req: &CertRequest,
    ) -> Result<String> {
        let r: CertifyResponse = self.0.op(
            op::CERTIFY,
            &CertifyRequest {
                unique_identifier: public_key.map(str::to_owned),
                certificate_request_type: csr
                    .map(|_| Enum(kmip_codec::vocab::enums::certificate_request_type::PKCS_10)),
                certificate_request_value: csr.map(|c| kmip_codec::message::Bytes(c.to_vec())),
                attributes: Some(Ttlv::structure(tag::ATTRIBUTES, req.attributes())),
                ..Default::default()
            },
        )?;
        Ok(r.unique_identifier.0)
    }

    pub fn attributes(&mut self, id: &str) -> Result<Vec<Ttlv>> {
        let r: GetAttributesResponse = self.0.op(
            op::GET_ATTRIBUTES,
            &GetAttributesRequest {
                unique_identifier: Some(id.to_owned()),
                ..Default::default()
            },
        )?;
        Ok(r.attributes
            .map(|a| a.children().to_vec())
            .unwrap_or(r.attribute))
    }

    /// A certificate and what the server and the certificate say of it.
    pub fn certificate(&mut self, id: &str) -> Result<CertInfo> {
        let g: GetResponse = self.0.op(
            op::GET,
            &GetRequest {
                unique_identifier: Some(id.to_owned()),
                ..Default::default()
            },
        )?;
        let der = g
            .certificate
            .as_ref()
            .and_then(|c| c.child(tag::CERTIFICATE_VALUE))
            .and_then(Ttlv::as_bytes)
            .ok_or_else(|| Error(format!("{id} is not a certificate")))?
            .to_vec();
        let attrs = self.attributes(id)?;
        let server = |name: &str| {
            attrs.iter().find_map(|a| {
                (kmip_codec::attributes::attribute_name(a).ok().as_deref() == Some(name))
                    .then(|| {
                        a.child(tag::ATTRIBUTE_VALUE)
                            .and_then(Ttlv::as_text)
                            .map(str::to_owned)
                    })
                    .flatten()
            })
        };
        let state = attrs
            .iter()
            .find(|a| a.tag == tag::STATE)
            .and_then(Ttlv::as_enum)
            .and_then(|s| {
                kmip_codec::vocab::enum_def("State")?
                    .by_value(s)
                    .map(|e| e.xml.to_owned())
            })
            .unwrap_or_default();
        let named = |name: &'static str| {
            attrs.iter().filter(move |a| {
                kmip_codec::attributes::attribute_name(a).ok().as_deref() == Some(name)
            })
        };
        let path_len = named("y-ca-path-len")
            .find_map(|a| a.child(tag::ATTRIBUTE_VALUE).and_then(Ttlv::as_i32))
            .map(i64::from);
        let permitted = named("y-ca-permitted")
            .filter_map(|a| a.child(tag::ATTRIBUTE_VALUE).and_then(Ttlv::as_text))
            .map(str::to_owned)
            .collect();
        let (serial, subject, issuer, sans, not_before, not_after) = describe(&der)?;
        Ok(CertInfo {
            id: id.to_owned(),
            der,
            state,
            issuer_id: server("y-ca-issuer"),
            profile: server("y-ca-profile"),
            public_key_id: kmip_codec::attributes::linked(&attrs, link_type::PUBLIC_KEY_LINK),
            serial,
            subject,
            issuer,
            sans,
            not_before,
            not_after,
            path_len,
            permitted,
        })
    }

    /// The certificates the caller can see, newest first.
    pub fn certificates(&mut self) -> Result<Vec<String>> {
        let r: LocateResponse = self.0.op(
            op::LOCATE,
            &LocateRequest {
                attributes: Some(Ttlv::structure(
                    tag::ATTRIBUTES,
                    vec![item(tag::OBJECT_TYPE, Value::Enumeration(ot::CERTIFICATE))],
                )),
                ..Default::default()
            },
        )?;
        Ok(r.unique_identifier)
    }

    pub fn revoke(&mut self, id: &str, reason: u32) -> Result<()> {
        let compromise = matches!(reason, rrc::KEY_COMPROMISE | rrc::CA_COMPROMISE);
        let _: RevokeResponse = self.0.op(
            op::REVOKE,
            &RevokeRequest {
                unique_identifier: Some(id.to_owned()),
                revocation_reason: Req(Ttlv::structure(
                    tag::REVOCATION_REASON,
                    vec![item(
                        tag::REVOCATION_REASON_CODE,
                        Value::Enumeration(reason),
                    )],
                )),
                compromise_occurrence_date: compromise
                    .then(|| kmip_codec::message::DateTime(now())),
            },
        )?;
        Ok(())
    }

    /// A new CRL of CA certificate `issuer`, DER.
    pub fn crl(&mut self, issuer: &str) -> Result<Vec<u8>> {
        let r = self.0.call(
            CRL_OPERATION,
            Ttlv::structure(
                tag::REQUEST_PAYLOAD,
                vec![text(tag::UNIQUE_IDENTIFIER, issuer)],
            ),
        )?;
        Ok(r.child(tag::DATA)
            .and_then(Ttlv::as_bytes)
            .ok_or_else(|| Error("the server sent no CRL".into()))?
            .to_vec())
    }

    /// A new CA key pair and a PKCS#10 request for it, signed in the server (DER), in one
    /// transaction: the key pair's identifiers (private, public) and the request.
    pub fn request_for_new_key_pair(
        &mut self,
        key: KeyType,
        subject: &str,
    ) -> Result<(String, String, Vec<u8>)> {
        let (private, public, r) = self.with_new_key_pair(
            key,
            subject,
            true,
            (
                CERTIFICATE_REQUEST_OPERATION,
                Ttlv::structure(
                    tag::REQUEST_PAYLOAD,
                    vec![Ttlv::structure(
                        tag::ATTRIBUTES,
                        vec![custom("ca-subject", Value::TextString(subject.into()))],
                    )],
                ),
            ),
        )?;
        let der = r
            .child(tag::DATA)
            .and_then(Ttlv::as_bytes)
            .ok_or_else(|| Error("the server sent no request".into()))?
            .to_vec();
        Ok((private, public, der))
    }

    /// A PKCS#10 request for a stored CA key, signed in the server, DER.
    pub fn certificate_request(&mut self, public_key: &str, subject: &str) -> Result<Vec<u8>> {
        let r = self.0.call(
            CERTIFICATE_REQUEST_OPERATION,
            Ttlv::structure(
                tag::REQUEST_PAYLOAD,
                vec![
                    text(tag::UNIQUE_IDENTIFIER, public_key),
                    Ttlv::structure(
                        tag::ATTRIBUTES,
                        vec![custom("ca-subject", Value::TextString(subject.into()))],
                    ),
                ],
            ),
        )?;
        Ok(r.child(tag::DATA)
            .and_then(Ttlv::as_bytes)
            .ok_or_else(|| Error("the server sent no request".into()))?
            .to_vec())
    }

    /// Hand the server the certificate an external root issued for its CA key; the new
    /// certificate's identifier.
    pub fn import_ca(&mut self, public_key: &str, der: &[u8]) -> Result<String> {
        let r = self.0.call(
            IMPORT_CA_OPERATION,
            Ttlv::structure(
                tag::REQUEST_PAYLOAD,
                vec![
                    text(tag::UNIQUE_IDENTIFIER, public_key),
                    item(tag::CERTIFICATE_VALUE, Value::ByteString(der.to_vec())),
                ],
            ),
        )?;
        r.child(tag::UNIQUE_IDENTIFIER)
            .and_then(Ttlv::as_text)
            .map(str::to_owned)
            .ok_or_else(|| Error("no identifier".into()))
    }

    /// The private key of a stored public key, as PKCS#8 DER, when the server lets it out.
    pub fn private_key(&mut self, public_key: &str) -> Result<Vec<u8>> {
        let attrs = self.attributes(public_key)?;
        let private = kmip_codec::attributes::linked(&attrs, link_type::PRIVATE_KEY_LINK)
            .ok_or_else(|| Error("the public key has no private key here".into()))?;
        let g: GetResponse = self.0.op(
            op::GET,
            &GetRequest {
                unique_identifier: Some(private),
                key_format_type: Some(Enum(kmip_codec::vocab::enums::key_format_type::PKCS_8)),
                ..Default::default()
            },
        )?;
        g.private_key
            .as_ref()
            .and_then(|k| k.child(tag::KEY_BLOCK))
            .and_then(|kb| kb.child(tag::KEY_VALUE))
            .and_then(|kv| kv.child(tag::KEY_MATERIAL))
            .and_then(Ttlv::as_bytes)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error("no key material".into()))
    }
}

/// `30d`, `12h` or a number of days, in seconds.
pub fn parse_window(s: &str) -> std::result::Result<i64, String> {
    let (n, unit) = match s.char_indices().last() {
        Some((i, 'd')) => (&s[..i], 86_400),
        Some((i, 'h')) => (&s[..i], 3_600),
        _ => (s, 86_400),
    };
    n.parse::<i64>()
        .map(|n| n * unit)
        .map_err(|_| format!("{s}: a window like 30d or 12h"))
}

/// Write `text` to `path`, or print it when there is no path.
pub fn output(path: Option<&std::path::Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(p) => std::fs::write(p, bytes).map_err(|e| Error(format!("{}: {e}", p.display()))),
        None => {
            use std::io::Write;
            std::io::stdout().write_all(bytes)?;
            Ok(())
        }
    }
}

/// Write `bytes` to `path` readable and writable by its owner only: a new file created with
/// mode 0600 in the same directory, then renamed over `path` (an existing file's mode never
/// lets anyone read the new content).
pub fn output_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| Error(format!("{}: {e}", path.display()));
    let name = path
        .file_name()
        .ok_or_else(|| Error(format!("{}: not a file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(err)
}

/// Ask for a secret at the terminal without echoing it (`stty -echo` around the read).
pub fn prompt_hidden(prompt: &str) -> Result<String> {
    use std::io::Write;
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    if !stty("-echo") {
        return fail("cannot turn off the terminal's echo to read a password");
    }
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    stty("echo");
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

pub fn now_unix() -> i64 {
    now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_key_types() {
        assert_eq!(parse_window("30d"), Ok(30 * 86_400));
        assert_eq!(parse_window("12h"), Ok(12 * 3_600));
        assert_eq!(parse_window("7"), Ok(7 * 86_400));
        assert!(parse_window("soon").is_err());
        assert_eq!(
            "ec:p256".parse::<KeyType>(),
            Ok(KeyType::Ec(rc::P_256, 256))
        );
        assert!("dsa:1024".parse::<KeyType>().is_err());
    }
}
