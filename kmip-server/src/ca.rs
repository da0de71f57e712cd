//! Certificate profiles, and turning a Certify request into what the certificate will say.
//!
//! A profile fixes what a client cannot choose: whether the certificate is a CA, its key
//! usages and extended key usages, how long it may live, and whether the names in a PKCS#10
//! request are taken. Built in: `root`, `intermediate-ca`, `server`, `client`, `code-signing`,
//! `email`; a TOML file (`--ca-profiles`) changes them or adds others:
//!
//! ```toml
//! [server]
//! key-usage = ["digitalSignature", "keyEncipherment"]
//! extended-key-usage = ["serverAuth"]
//! default-days = 90
//! max-days = 397
//! csr-names = true
//! ```
//!
//! A request names its profile and the rest with attributes: `x-ca-profile`, `x-ca-issuer`
//! (the issuing CA certificate's identifier), `x-ca-subject` (`CN=...,O=...`), `x-ca-san`
//! (`dns:`, `ip:`, `email:` or `uri:` and a value; repeated), `x-ca-days`, `x-ca-path-len`
//! and `x-ca-permitted` (a permitted subtree of a CA, repeated: `example.com` for DNS names,
//! e-mail addresses and URIs in that domain, `ip:10.0.0.0/8` for addresses; every name type
//! not permitted is closed, see `lifecycle::object::certify::Permit`). A server certificate
//! named by its CN only gets that CN as its subject alternative name.

use crate::error::OpError;
use der::{Decode, Encode};
use kmip_codec::{Ttlv, Value};
use lifecycle::object::certify::{parse_dn, CertificateSpec, Permit};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose as Eku, IsCa,
    KeyUsagePurpose as Ku, SanType,
};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub ca: bool,
    /// Only for a self-signed root.
    pub self_signed: bool,
    pub key_usage: Vec<Ku>,
    pub extended_key_usage: Vec<Eku>,
    pub default_days: i64,
    pub max_days: i64,
    /// Take the subject alternative names of a PKCS#10 request when the client names none.
    pub csr_names: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profiles(pub BTreeMap<String, Profile>);

impl Default for Profiles {
    fn default() -> Self {
        let ca = |self_signed, days| Profile {
            ca: true,
            self_signed,
            key_usage: vec![Ku::KeyCertSign, Ku::CrlSign],
            extended_key_usage: vec![],
            default_days: days,
            max_days: 2 * days,
            csr_names: false,
        };
        let leaf = |ku: Vec<Ku>, eku: Vec<Eku>| Profile {
            ca: false,
            self_signed: false,
            key_usage: ku,
            extended_key_usage: eku,
            default_days: 365,
            max_days: 397,
            csr_names: true,
        };
        let mut m = BTreeMap::new();
        m.insert("root".into(), ca(true, 3650));
        m.insert("intermediate-ca".into(), ca(false, 1825));
        m.insert(
            "server".into(),
            leaf(
                vec![Ku::DigitalSignature, Ku::KeyEncipherment],
                vec![Eku::ServerAuth],
            ),
        );
        m.insert(
            "client".into(),
            leaf(vec![Ku::DigitalSignature], vec![Eku::ClientAuth]),
        );
        m.insert(
            "code-signing".into(),
            leaf(vec![Ku::DigitalSignature], vec![Eku::CodeSigning]),
        );
        m.insert(
            "email".into(),
            leaf(
                vec![Ku::DigitalSignature, Ku::KeyEncipherment],
                vec![Eku::EmailProtection],
            ),
        );
        Profiles(m)
    }
}

fn key_usage(name: &str) -> Option<Ku> {
    Some(match name {
        "digitalSignature" => Ku::DigitalSignature,
        "contentCommitment" | "nonRepudiation" => Ku::ContentCommitment,
        "keyEncipherment" => Ku::KeyEncipherment,
        "dataEncipherment" => Ku::DataEncipherment,
        "keyAgreement" => Ku::KeyAgreement,
        "keyCertSign" => Ku::KeyCertSign,
        "cRLSign" => Ku::CrlSign,
        _ => return None,
    })
}

fn extended_key_usage(name: &str) -> Option<Eku> {
    Some(match name {
        "serverAuth" => Eku::ServerAuth,
        "clientAuth" => Eku::ClientAuth,
        "codeSigning" => Eku::CodeSigning,
        "emailProtection" => Eku::EmailProtection,
        "timeStamping" => Eku::TimeStamping,
        "OCSPSigning" => Eku::OcspSigning,
        _ => return None,
    })
}

impl Profiles {
    /// The built-in profiles, changed and extended by a TOML file's tables.
    pub fn load(path: &std::path::Path) -> Result<Profiles, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Profiles, String> {
        let table: toml::Table = text.parse().map_err(|e| format!("{e}"))?;
        let mut out = Profiles::default();
        for (name, v) in table {
            let t = v
                .as_table()
                .ok_or_else(|| format!("[{name}] must be a table"))?;
            let base = out.0.get(&name).cloned().unwrap_or(Profile {
                ca: false,
                self_signed: false,
                key_usage: vec![Ku::DigitalSignature],
                extended_key_usage: vec![],
                default_days: 365,
                max_days: 397,
                csr_names: false,
            });
            let list = |key: &str| -> Result<Option<Vec<String>>, String> {
                match t.get(key) {
                    None => Ok(None),
                    Some(v) => v
                        .as_array()
                        .ok_or_else(|| format!("[{name}] {key} must be a list"))?
                        .iter()
                        .map(|s| {
                            s.as_str()
                                .map(str::to_owned)
                                .ok_or_else(|| format!("[{name}] {key}: strings"))
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(Some),
                }
            };
            let mut p = base;
            for (key, _) in t.iter() {
                if !matches!(
                    key.as_str(),
                    "ca" | "self-signed"
                        | "key-usage"
                        | "extended-key-usage"
                        | "default-days"
                        | "max-days"
                        | "csr-names"
                ) {
                    return Err(format!("[{name}] unknown key {key}"));
                }
            }
            if let Some(b) = t.get("ca").and_then(toml::Value::as_bool) {
                p.ca = b;
            }
            if let Some(b) = t.get("self-signed").and_then(toml::Value::as_bool) {
                p.self_signed = b;
            }
            if let Some(b) = t.get("csr-names").and_then(toml::Value::as_bool) {
                p.csr_names = b;
            }
            if let Some(n) = t.get("default-days").and_then(toml::Value::as_integer) {
                p.default_days = n;
            }
            if let Some(n) = t.get("max-days").and_then(toml::Value::as_integer) {
                p.max_days = n;
            }
            if let Some(ku) = list("key-usage")? {
                p.key_usage = ku
                    .iter()
                    .map(|k| key_usage(k).ok_or_else(|| format!("[{name}] key usage {k}")))
                    .collect::<Result<_, _>>()?;
            }
            if let Some(eku) = list("extended-key-usage")? {
                p.extended_key_usage = eku
                    .iter()
                    .map(|k| {
                        extended_key_usage(k)
                            .ok_or_else(|| format!("[{name}] extended key usage {k}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            if p.default_days <= 0 || p.max_days < p.default_days {
                return Err(format!("[{name}] needs 0 < default-days <= max-days"));
            }
            out.0.insert(name, p);
        }
        Ok(out)
    }
}

/// The `x-ca-NAME` attributes of a request, in order.
fn values<'a>(attrs: &'a [Ttlv], name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    attrs
        .iter()
        .filter(move |a| {
            a.tag == kmip_codec::vocab::tag::ATTRIBUTE
                && kmip_codec::attributes::attribute_name(a).ok().as_deref()
                    == Some(&format!("x-{name}"))
        })
        .filter_map(|a| {
            a.child(kmip_codec::vocab::tag::ATTRIBUTE_VALUE)
                .map(|v| &v.value)
        })
}

fn text_values(attrs: &[Ttlv], name: &str) -> Vec<String> {
    values(attrs, name)
        .filter_map(|v| match v {
            Value::TextString(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn int_value(attrs: &[Ttlv], name: &str) -> Option<i64> {
    values(attrs, name).find_map(|v| match v {
        Value::Integer(n) => Some(i64::from(*n)),
        Value::LongInteger(n) => Some(*n),
        _ => None,
    })
}

fn invalid(why: impl Into<String>) -> OpError {
    OpError::InvalidField(why.into())
}

fn san(s: &str) -> Result<SanType, OpError> {
    let (kind, value) = s
        .split_once(':')
        .ok_or_else(|| invalid(format!("subject alternative name {s:?}: KIND:VALUE")))?;
    let ia5 = |v: &str| {
        rcgen::string::Ia5String::try_from(v.to_owned())
            .map_err(|_| invalid(format!("{v:?} is not IA5")))
    };
    Ok(match kind {
        "dns" => SanType::DnsName(ia5(value)?),
        "email" => SanType::Rfc822Name(ia5(value)?),
        "uri" => SanType::URI(ia5(value)?),
        "ip" => SanType::IpAddress(
            value
                .parse()
                .map_err(|_| invalid(format!("{value:?} is not an IP address")))?,
        ),
        _ => return Err(invalid(format!("subject alternative name kind {kind}"))),
    })
}

/// A checked PKCS#10 request: its subject (as `CN=...,O=...`), public key and requested names.
pub struct Csr {
    pub subject: String,
    pub spki: Vec<u8>,
    pub names: Vec<String>,
}

/// Check a PKCS#10 request: its signature, and that it does not ask to be a CA (refused
/// whatever the profile).
pub fn parse_csr(der: &[u8]) -> Result<Csr, OpError> {
    let bad = |why: &str| OpError::InvalidCsr(format!("certificate request: {why}"));
    let req = openssl::x509::X509Req::from_der(der).map_err(|_| bad("not PKCS#10 DER"))?;
    let key = req.public_key().map_err(|_| bad("no public key"))?;
    if !req.verify(&key).unwrap_or(false) {
        return Err(bad("its signature does not verify"));
    }
    let parsed = x509_cert::request::CertReq::from_der(der).map_err(|_| bad("malformed"))?;
    let subject = parsed
        .info
        .subject
        .iter()
        .map(|atv| atv.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut names = Vec::new();
    for attr in parsed.info.attributes.iter() {
        if attr.oid != const_oid_extension_req() {
            continue;
        }
        for v in attr.values.iter() {
            let exts: Vec<x509_cert::ext::Extension> = v
                .decode_as()
                .map_err(|_| bad("malformed extension request"))?;
            for e in exts {
                let body = e.extn_value.as_bytes();
                if e.extn_id == oid_basic_constraints() {
                    let bc = x509_cert::ext::pkix::BasicConstraints::from_der(body)
                        .map_err(|_| bad("malformed basic constraints"))?;
                    if bc.ca {
                        return Err(OpError::PermissionDenied(
                            "a certificate request can never make a CA (it asks for CA:TRUE)"
                                .into(),
                        ));
                    }
                }
                if e.extn_id == oid_san() {
                    let sans = x509_cert::ext::pkix::SubjectAltName::from_der(body)
                        .map_err(|_| bad("malformed subject alternative names"))?;
                    for n in sans.0 {
                        use x509_cert::ext::pkix::name::GeneralName as G;
                        match n {
                            G::DnsName(d) => names.push(format!("dns:{}", d.as_str())),
                            G::Rfc822Name(d) => names.push(format!("email:{}", d.as_str())),
                            G::UniformResourceIdentifier(d) => {
                                names.push(format!("uri:{}", d.as_str()))
                            }
                            G::IpAddress(ip) => {
                                let b = ip.as_bytes();
                                let addr: Option<std::net::IpAddr> = match b.len() {
                                    4 => <[u8; 4]>::try_from(b).ok().map(Into::into),
                                    16 => <[u8; 16]>::try_from(b).ok().map(Into::into),
                                    _ => None,
                                };
                                if let Some(a) = addr {
                                    names.push(format!("ip:{a}"));
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    let spki = parsed
        .info
        .public_key
        .to_der()
        .map_err(|_| bad("public key"))?;
    Ok(Csr {
        subject,
        spki,
        names,
    })
}

/// Read a CA certificate issued elsewhere, for import: it must say CA:TRUE.
pub fn parse_ca_certificate(der: &[u8]) -> Result<lifecycle::object::certify::ImportedCa, OpError> {
    let bad = |why: &str| invalid(format!("CA certificate: {why}"));
    let c = x509_cert::Certificate::from_der(der).map_err(|_| bad("not an X.509 certificate"))?;
    let tbs = c.tbs_certificate();
    let bc = tbs
        .get_extension::<x509_cert::ext::pkix::BasicConstraints>()
        .map_err(|_| bad("malformed basic constraints"))?
        .map(|(_, bc)| bc);
    let Some(bc) = bc.filter(|b| b.ca) else {
        return Err(bad("it is not a CA (no CA:TRUE)"));
    };
    // its permitted subtrees, type by type; the server then permits no name of a type it
    // lists none of
    let mut permitted = Vec::new();
    if let Ok(Some((_, nc))) = tbs.get_extension::<x509_cert::ext::pkix::NameConstraints>() {
        use x509_cert::ext::pkix::name::GeneralName as G;
        for sub in nc.permitted_subtrees.unwrap_or_default() {
            let p = match sub.base {
                G::DnsName(d) => format!("dns:{}", d.as_str()),
                G::Rfc822Name(d) => format!("email:{}", d.as_str()),
                G::UniformResourceIdentifier(d) => format!("uri:{}", d.as_str()),
                G::IpAddress(ip) => {
                    let b = ip.as_bytes();
                    let (addr, mask): (std::net::IpAddr, &[u8]) = match b.len() {
                        8 => (
                            <[u8; 4]>::try_from(&b[..4]).map_err(|_| bad("IP"))?.into(),
                            &b[4..],
                        ),
                        32 => (
                            <[u8; 16]>::try_from(&b[..16])
                                .map_err(|_| bad("IP"))?
                                .into(),
                            &b[16..],
                        ),
                        _ => return Err(bad("malformed IP address constraint")),
                    };
                    let len: u32 = mask.iter().map(|m| m.count_ones()).sum();
                    format!("ip:{addr}/{len}")
                }
                _ => {
                    return Err(bad(
                        "a name constraint of a type this server does not check",
                    ))
                }
            };
            Permit::parse(&p)?;
            permitted.push(p);
        }
    }
    let subject = tbs
        .subject()
        .iter()
        .map(|atv| atv.to_string())
        .collect::<Vec<_>>()
        .join(",");
    Ok(lifecycle::object::certify::ImportedCa {
        der: der.to_vec(),
        subject,
        not_after: tbs.validity().not_after.to_unix_duration().as_secs() as i64,
        path_len: bc.path_len_constraint.map(i64::from).unwrap_or(-1),
        permitted,
    })
}

/// The subject (`x-ca-subject`) a request names.
pub fn subject_of(attrs: &[Ttlv]) -> Option<String> {
    text_values(attrs, "ca-subject").into_iter().next()
}

fn const_oid_extension_req() -> der::asn1::ObjectIdentifier {
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14")
}

fn oid_basic_constraints() -> der::asn1::ObjectIdentifier {
    der::asn1::ObjectIdentifier::new_unwrap("2.5.29.19")
}

fn oid_san() -> der::asn1::ObjectIdentifier {
    der::asn1::ObjectIdentifier::new_unwrap("2.5.29.17")
}

/// The subject alternative name a server certificate's CN stands for: `ip:` for an IP
/// address, `dns:` for a host name (a leading `*.` allowed); `None` for anything else.
fn cn_as_san(subject: &str) -> Option<String> {
    let cn = subject.split(',').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        k.trim().eq_ignore_ascii_case("CN").then(|| v.trim())
    })?;
    if let Ok(a) = cn.parse::<std::net::IpAddr>() {
        return Some(format!("ip:{a}"));
    }
    let host = cn.strip_prefix("*.").unwrap_or(cn);
    let ok = !host.is_empty()
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    ok.then(|| format!("dns:{cn}"))
}

/// What a Certify request asks for, checked against its profile.
pub struct Request {
    pub issuer: Option<String>,
    pub spec: CertificateSpec,
}

pub fn request(
    profiles: &Profiles,
    attrs: &[Ttlv],
    csr: Option<&Csr>,
    now: i64,
) -> Result<Request, OpError> {
    let name = text_values(attrs, "ca-profile")
        .into_iter()
        .next()
        .ok_or_else(|| invalid("Certify needs an x-ca-profile attribute"))?;
    let profile = profiles
        .0
        .get(&name)
        .ok_or_else(|| invalid(format!("no certificate profile named {name}")))?;
    let issuer = text_values(attrs, "ca-issuer").into_iter().next();
    match (&issuer, profile.self_signed) {
        (Some(_), true) => return Err(invalid(format!("profile {name} is self-signed"))),
        (None, false) => return Err(invalid(format!("profile {name} needs an x-ca-issuer"))),
        _ => {}
    }
    if profile.self_signed && csr.is_some() {
        return Err(invalid(
            "a self-signed certificate is made for a stored key",
        ));
    }
    let subject = text_values(attrs, "ca-subject")
        .into_iter()
        .next()
        .or_else(|| csr.map(|c| c.subject.clone()))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("the certificate needs a subject (x-ca-subject)"))?;
    let mut names = text_values(attrs, "ca-san");
    if names.is_empty() && profile.csr_names {
        names = csr.map(|c| c.names.clone()).unwrap_or_default();
    }
    // a TLS server is found by its subject alternative names: with none given, the CN is one
    if names.is_empty() && profile.extended_key_usage.contains(&Eku::ServerAuth) {
        names.push(cn_as_san(&subject).ok_or_else(|| {
            invalid(format!(
                "a {name} certificate needs a DNS name or an IP address: give x-ca-san \
                 (--san), or a subject CN that is one"
            ))
        })?);
    }
    let days = int_value(attrs, "ca-days").unwrap_or(profile.default_days);
    if days <= 0 || days > profile.max_days {
        return Err(invalid(format!(
            "profile {name} allows 1 to {} days",
            profile.max_days
        )));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = parse_dn(&subject)?;
    params.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
    let at = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t).map_err(|_| invalid("date out of range"))
    };
    // a minute of slack for clocks that run behind
    params.not_before = at(now - 60)?;
    params.not_after = at(now + days * 86_400)?;
    params.key_usages = profile.key_usage.clone();
    params.extended_key_usages = profile.extended_key_usage.clone();
    let permitted = text_values(attrs, "ca-permitted");
    if profile.ca {
        params.is_ca = IsCa::Ca(match int_value(attrs, "ca-path-len") {
            Some(n) if (0..=255).contains(&n) => BasicConstraints::Constrained(n as u8),
            Some(_) => return Err(invalid("x-ca-path-len is 0 to 255")),
            None => BasicConstraints::Unconstrained,
        });
        for p in &permitted {
            Permit::parse(p)?;
        }
    } else {
        if !permitted.is_empty() || int_value(attrs, "ca-path-len").is_some() {
            return Err(invalid(format!("profile {name} is not a CA")));
        }
        params.is_ca = IsCa::ExplicitNoCa;
    }
    Ok(Request {
        issuer,
        spec: CertificateSpec {
            params,
            profile: name,
            subject,
            permitted,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmip_codec::vocab::enums::result_reason as rr;

    #[test]
    fn profiles_load_over_the_built_ins() {
        let p = Profiles::parse(
            "[server]\nmax-days = 90\ndefault-days = 30\n[vpn]\nextended-key-usage = [\"clientAuth\", \"serverAuth\"]\n",
        )
        .unwrap();
        assert_eq!(p.0["server"].max_days, 90);
        assert_eq!(p.0["server"].extended_key_usage, vec![Eku::ServerAuth]);
        assert_eq!(p.0["vpn"].extended_key_usage.len(), 2);
        assert!(p.0.contains_key("root"));
        assert!(Profiles::parse("[x]\nkey-usage = [\"everything\"]\n").is_err());
        assert!(Profiles::parse("[x]\ncolour = \"blue\"\n").is_err());
    }

    #[test]
    fn a_server_cn_as_its_name() {
        assert_eq!(
            cn_as_san("CN=www.example.com,O=Example").as_deref(),
            Some("dns:www.example.com")
        );
        assert_eq!(
            cn_as_san("O=Example, cn=*.example.com").as_deref(),
            Some("dns:*.example.com")
        );
        assert_eq!(cn_as_san("CN=10.0.0.1").as_deref(), Some("ip:10.0.0.1"));
        assert_eq!(cn_as_san("CN=Web Server"), None);
        assert_eq!(cn_as_san("O=Example"), None);
    }

    #[test]
    fn csrs_are_checked() {
        use openssl::x509::extension::{BasicConstraints as Bc, SubjectAlternativeName};
        let key = openssl::pkey::PKey::from_ec_key(
            openssl::ec::EcKey::generate(
                &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                    .unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let make = |ca: bool| {
            let mut b = openssl::x509::X509ReqBuilder::new().unwrap();
            let mut n = openssl::x509::X509NameBuilder::new().unwrap();
            n.append_entry_by_text("CN", "www.example.com").unwrap();
            n.append_entry_by_text("O", "Example").unwrap();
            b.set_subject_name(&n.build()).unwrap();
            b.set_pubkey(&key).unwrap();
            let mut exts = openssl::stack::Stack::new().unwrap();
            let ctx = b.x509v3_context(None);
            exts.push(
                SubjectAlternativeName::new()
                    .dns("www.example.com")
                    .ip("10.0.0.1")
                    .build(&ctx)
                    .unwrap(),
            )
            .unwrap();
            if ca {
                exts.push(Bc::new().ca().build().unwrap()).unwrap();
            }
            b.add_extensions(&exts).unwrap();
            b.sign(&key, openssl::hash::MessageDigest::sha256())
                .unwrap();
            b.build().to_der().unwrap()
        };
        let csr = parse_csr(&make(false)).unwrap();
        assert_eq!(csr.subject, "CN=www.example.com,O=Example");
        assert_eq!(csr.names, vec!["dns:www.example.com", "ip:10.0.0.1"]);
        let e = parse_csr(&make(true)).err().unwrap();
        assert_eq!(e.reason(), rr::PERMISSION_DENIED);
        let mut tampered = make(false);
        let n = tampered.len();
        tampered[n - 5] ^= 1;
        assert!(parse_csr(&tampered).is_err());
    }
}
