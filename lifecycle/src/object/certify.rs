//! A certificate authority whose keys never leave the core: Certify issues a certificate for a
//! stored public key (or a PKCS#10 request) signed by a CA certificate's private key, and the
//! CRL of a CA lists the certificates it issued that were revoked.
//!
//! The rules that hold whatever the profile: the issuer is an Active CA certificate whose
//! private key has the Certificate Sign usage; a CA below a path length of 0 is refused and a
//! sub-CA's path length is below its issuer's; every DNS name (and the permitted names of a
//! sub-CA) lies inside the name constraints of every CA above it; a certificate never outlives
//! its issuer; serial numbers are 127 random bits, unique per CA. What the server records for
//! this (issuer, serial, subject, expiry, path length, permitted names, the private key) is
//! kept in server-only `y-ca-*` attributes, so no client can forge them.
//!
//! A CA's authority comes only from those records, made here for a key pair the server
//! generated: a CA certificate (self-signed, issued or imported) is made only for a public key
//! generated together with its private key (both linked to each other), never from a request
//! or a registered copy of a public key; it names the private key it is bound to
//! (`y-ca-key`), which then signs for it whatever links a client adds. Only the owner of a
//! private key self-signs with it or imports a CA certificate for it: a grant of Certify
//! issues under the owner's CA records, under their rules.

use super::*;

/// Who would issue a new CA certificate for a key pair ([`Txn::keeps_its_issuer`]).
#[derive(Clone, Copy)]
enum NewIssuer<'a> {
    /// The key pair itself: a root.
    SelfSigned,
    /// The CA with this certificate here.
    By(&'a str),
    /// A CA outside this server (Import CA).
    Outside,
}
use crate::core::{Sealed, SubjectKey};
use kmip_codec::vocab::enums::{cryptographic_usage_mask as um, revocation_reason_code};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyIdMethod, SanType,
    SerialNumber,
};

/// What to certify: a public key the server holds, or a PKCS#10 request (DER) whose
/// signature has been checked.
pub enum ToCertify<'a> {
    /// A public key the server holds, by its Unique Identifier.
    PublicKey(&'a str),
    /// The request's SubjectPublicKeyInfo.
    Request {
        /// The DER SubjectPublicKeyInfo.
        spki: &'a [u8],
    },
}

/// The certificate as the server's profile decided it: subject, names, usages, CA-ness and
/// validity are in `params`; `profile` is recorded.
pub struct CertificateSpec {
    /// Subject, extensions and validity of the certificate.
    pub params: CertificateParams,
    /// The certificate profile it is issued under, recorded with it.
    pub profile: String,
    /// The subject as the client wrote it (`CN=...,O=...`), recorded to rebuild the
    /// certificate's name identically when it issues.
    pub subject: String,
    /// A new CA's name constraints, as [`Permit`] reads them (`example.com`,
    /// `ip:10.0.0.0/8`, ...); empty for none. They become the certificate's NameConstraints
    /// extension (every name type not permitted is excluded) and bind every certificate
    /// below it.
    pub permitted: Vec<String>,
}

fn ca_attr(name: &str, value: Value) -> Ttlv {
    Ttlv::structure(
        tag::ATTRIBUTE,
        vec![
            text(tag::VENDOR_IDENTIFICATION, "y"),
            text(tag::ATTRIBUTE_NAME, name),
            Ttlv::new(tag::ATTRIBUTE_VALUE, value),
        ],
    )
}

/// The values of server attribute `y-NAME` on `r`.
pub fn ca_values<'a>(r: &'a Record, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    r.attributes
        .iter()
        .filter(move |a| {
            a.tag == tag::ATTRIBUTE
                && a.child(tag::VENDOR_IDENTIFICATION).and_then(Ttlv::as_text) == Some("y")
                && a.child(tag::ATTRIBUTE_NAME).and_then(Ttlv::as_text) == Some(name)
        })
        .filter_map(|a| a.child(tag::ATTRIBUTE_VALUE).map(|v| &v.value))
}

fn ca_text(r: &Record, name: &str) -> Option<String> {
    ca_values(r, name).find_map(|v| match v {
        Value::TextString(s) => Some(s.clone()),
        _ => None,
    })
}

/// `CN=Example Root,O=Example,C=GB` as a distinguished name, in the order written.
pub fn parse_dn(s: &str) -> Result<DistinguishedName, LifecycleError> {
    let bad = |why: &str| LifecycleError::InvalidField(format!("subject {s:?}: {why}"));
    if s.contains('\\') || s.contains('+') {
        return Err(bad("escapes and multi-valued names are not supported"));
    }
    let mut dn = DistinguishedName::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE"))?;
        let t = match k.trim().to_ascii_uppercase().as_str() {
            "CN" => DnType::CommonName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "C" => DnType::CountryName,
            "L" => DnType::LocalityName,
            "ST" => DnType::StateOrProvinceName,
            other => return Err(bad(&format!("unknown attribute {other}"))),
        };
        dn.push(t, v.trim());
    }
    if dn.iter().next().is_none() {
        return Err(bad("empty"));
    }
    Ok(dn)
}

/// Whether DNS name `name` lies inside subtree `base` (RFC 5280: the base itself and any name
/// below it; a leading dot means below only).
fn dns_within(name: &str, base: &str) -> bool {
    let (name, base) = (name.to_ascii_lowercase(), base.to_ascii_lowercase());
    match base.strip_prefix('.') {
        Some(suffix) => name.ends_with(&format!(".{suffix}")),
        None => name == base || name.ends_with(&format!(".{base}")),
    }
}

/// One permitted subtree of a CA's name constraints, as an operator writes it (and the server
/// records it in `y-ca-permitted`): `example.com` permits DNS names, e-mail addresses and URI
/// hosts at or below that domain (only below it with a leading dot); `dns:`, `email:` and
/// `uri:` permit names of one type (as a CA certificate from elsewhere says them); `ip:` a
/// range of addresses (`ip:10.0.0.0/8`, `ip:2001:db8::/32`, or one address). A type with no
/// permitted subtree is not permitted at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Permit {
    /// DNS names, e-mail addresses and URI hosts at or below a domain.
    Domain(String),
    /// DNS names at or below a domain.
    Dns(String),
    /// E-mail addresses at a host or domain.
    Email(String),
    /// URI hosts at or below a domain.
    Uri(String),
    /// An address range: the address and its prefix length.
    Ip(std::net::IpAddr, u8),
}

/// `example.com`, `.example.com` or `*.example.com`-free host names: letters, digits and
/// hyphens in non-empty labels.
fn host_name(h: &str) -> bool {
    !h.is_empty()
        && h.split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
}

impl Permit {
    /// One subtree from an operator's text (see [`Permit`]).
    pub fn parse(s: &str) -> Result<Permit, LifecycleError> {
        let bad = |why: &str| LifecycleError::InvalidField(format!("permitted name {s:?}: {why}"));
        let domain = |v: &str| {
            let v = v.to_ascii_lowercase();
            if host_name(v.strip_prefix('.').unwrap_or(&v)) {
                Ok(v)
            } else {
                Err(bad("not a domain name"))
            }
        };
        Ok(match s.split_once(':') {
            None => Permit::Domain(domain(s)?),
            Some(("dns", v)) => Permit::Dns(domain(v)?),
            Some(("uri", v)) => Permit::Uri(domain(v)?),
            Some(("email", v)) => match v.rsplit_once('@') {
                Some((local, host)) if !local.is_empty() && host_name(host) => {
                    Permit::Email(format!("{local}@{}", host.to_ascii_lowercase()))
                }
                Some(_) => return Err(bad("not an e-mail address")),
                None => Permit::Email(domain(v)?),
            },
            Some(("ip", v)) => {
                let (addr, len) = match v.split_once('/') {
                    Some((a, l)) => (a, Some(l)),
                    None => (v, None),
                };
                let addr: std::net::IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let len = match len {
                    None => max,
                    Some(l) => l
                        .parse::<u8>()
                        .ok()
                        .filter(|l| *l <= max)
                        .ok_or_else(|| bad("prefix length out of range"))?,
                };
                Permit::Ip(mask_ip(addr, len), len)
            }
            Some((kind, _)) => {
                return Err(bad(&format!("unknown kind {kind}: dns, email, uri, ip")))
            }
        })
    }

    /// The form recorded (and parsed back).
    pub fn stored(&self) -> String {
        match self {
            Permit::Domain(d) => d.clone(),
            Permit::Dns(d) => format!("dns:{d}"),
            Permit::Email(d) => format!("email:{d}"),
            Permit::Uri(d) => format!("uri:{d}"),
            Permit::Ip(a, l) => format!("ip:{a}/{l}"),
        }
    }

    /// Whether this subtree of a new CA lies inside `bases`, its issuer's.
    fn within(&self, bases: &[Permit]) -> bool {
        let bare = |d: &str| d.trim_start_matches('.').to_owned();
        match self {
            Permit::Domain(d) | Permit::Dns(d) => Name::Dns(bare(d)).within(bases),
            Permit::Email(e) if e.contains('@') => Name::Email(e.clone()).within(bases),
            Permit::Email(d) => Name::Email(format!("x@{}", bare(d))).within(bases),
            Permit::Uri(d) => Name::Uri(format!("https://{}/", bare(d))).within(bases),
            Permit::Ip(a, l) => bases.iter().any(|b| match b {
                Permit::Ip(n, bl) => l >= bl && ip_within(*a, *n, *bl),
                _ => false,
            }),
        }
    }
}

/// `addr` with the bits past `len` cleared.
fn mask_ip(addr: std::net::IpAddr, len: u8) -> std::net::IpAddr {
    use std::net::IpAddr;
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

fn ip_within(addr: std::net::IpAddr, net: std::net::IpAddr, len: u8) -> bool {
    addr.is_ipv4() == net.is_ipv4() && mask_ip(addr, len) == net
}

/// A name a certificate binds: a subject alternative name, or its subject's CN when that
/// reads as a host name or an IP address (as verifiers take it).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Name {
    Dns(String),
    Email(String),
    Uri(String),
    Ip(std::net::IpAddr),
}

/// The host of a URI (`scheme://[user@]host[:port]/...`), lowercase; `None` when it has none
/// a name constraint can judge.
fn uri_host(u: &str) -> Option<String> {
    let (_, rest) = u.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split(':').next()?;
    host_name(host).then(|| host.to_ascii_lowercase())
}

impl Name {
    fn within(&self, bases: &[Permit]) -> bool {
        bases.iter().any(|b| match (self, b) {
            (Name::Dns(n), Permit::Domain(d) | Permit::Dns(d)) => dns_within(n, d),
            (Name::Email(a), Permit::Domain(d)) => a
                .rsplit_once('@')
                .is_some_and(|(_, h)| host_name(h) && dns_within(h, d)),
            (Name::Email(a), Permit::Email(e)) => match (a.rsplit_once('@'), e.rsplit_once('@')) {
                (Some((al, ah)), Some((el, eh))) => al == el && ah.eq_ignore_ascii_case(eh),
                (Some((_, ah)), None) => match e.strip_prefix('.') {
                    Some(_) => dns_within(ah, e),
                    None => ah.eq_ignore_ascii_case(e),
                },
                _ => false,
            },
            (Name::Uri(u), Permit::Domain(d)) => uri_host(u).is_some_and(|h| dns_within(&h, d)),
            (Name::Uri(u), Permit::Uri(e)) => {
                uri_host(u).is_some_and(|h| match e.strip_prefix('.') {
                    Some(_) => dns_within(&h, e),
                    None => h == *e,
                })
            }
            (Name::Ip(a), Permit::Ip(n, l)) => ip_within(*a, *n, *l),
            _ => false,
        })
    }
}

/// Every name certificate `params` binds, with how it was written: its subject alternative
/// names, and its CN when that is a host name (with a dot, as verifiers check it; an IPv4
/// address reads as one too) or an IPv6 address.
fn names_of(params: &CertificateParams) -> Result<Vec<(String, Name)>, LifecycleError> {
    let mut out = Vec::new();
    for san in &params.subject_alt_names {
        out.push(match san {
            SanType::DnsName(d) => (
                format!("dns:{}", d.as_str()),
                Name::Dns(d.as_str().to_ascii_lowercase()),
            ),
            SanType::Rfc822Name(e) => (
                format!("email:{}", e.as_str()),
                Name::Email(e.as_str().into()),
            ),
            SanType::URI(u) => (format!("uri:{}", u.as_str()), Name::Uri(u.as_str().into())),
            SanType::IpAddress(a) => (format!("ip:{a}"), Name::Ip(*a)),
            _ => {
                return Err(LifecycleError::InvalidField(
                    "a subject alternative name of an unsupported type".into(),
                ))
            }
        });
    }
    for (t, v) in params.distinguished_name.iter() {
        if *t != DnType::CommonName {
            continue;
        }
        let cn = match v {
            rcgen::DnValue::Utf8String(s) => s.as_str(),
            rcgen::DnValue::PrintableString(s) => s.as_str(),
            rcgen::DnValue::Ia5String(s) => s.as_str(),
            _ => continue,
        };
        // as openssl reads a CN (cn2dnsid): anything of letters, digits, hyphens, underscores
        // and dots (an IPv4 address too) is a DNS name, which the constraints then bind
        let openssl_dns = |h: &str| {
            !h.is_empty()
                && h.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        };
        if cn.contains('.') && openssl_dns(cn.strip_prefix("*.").unwrap_or(cn)) {
            out.push((format!("CN={cn}"), Name::Dns(cn.to_ascii_lowercase())));
        } else if let Ok(a) = cn.parse::<std::net::IpAddr>() {
            out.push((format!("CN={cn}"), Name::Ip(a)));
        }
    }
    Ok(out)
}

/// DER: tag, length, content.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - first) as u8);
        out.extend_from_slice(&bytes[first..]);
    }
    out.extend_from_slice(content);
    out
}

/// The NameConstraints extension (critical) of a CA permitted `permits`: each permitted
/// subtree in the form verifiers read it, and every name type the CA was not permitted
/// closed: IP addresses excluded (0.0.0.0/0 and ::/0) unless a range is permitted, DNS names,
/// e-mail addresses and URIs permitted only under the reserved `invalid` domain when no
/// subtree of their type is.
fn name_constraints_extension(permits: &[Permit]) -> rcgen::CustomExtension {
    const EMAIL: u8 = 0x81;
    const DNS: u8 = 0x82;
    const URI: u8 = 0x86;
    const IP: u8 = 0x87;
    let mut permitted: Vec<(u8, Vec<u8>)> = Vec::new();
    let text = |t: u8, s: &str| (t, s.as_bytes().to_vec());
    for p in permits {
        match p {
            Permit::Domain(d) => {
                permitted.push(text(DNS, d));
                for t in [EMAIL, URI] {
                    permitted.push(text(t, d));
                    if !d.starts_with('.') {
                        permitted.push(text(t, &format!(".{d}")));
                    }
                }
            }
            Permit::Dns(d) => permitted.push(text(DNS, d)),
            Permit::Email(e) => permitted.push(text(EMAIL, e)),
            Permit::Uri(u) => permitted.push(text(URI, u)),
            Permit::Ip(a, l) => {
                let (addr, width) = match a {
                    std::net::IpAddr::V4(v) => (v.octets().to_vec(), 32u32),
                    std::net::IpAddr::V6(v) => (v.octets().to_vec(), 128u32),
                };
                let mask: Vec<u8> = (0..width / 8)
                    .map(|i| {
                        let bits = u32::from(*l).saturating_sub(i * 8).min(8);
                        (0xFF00u16 >> bits) as u8
                    })
                    .collect();
                permitted.push((IP, [addr, mask].concat()));
            }
        }
    }
    for t in [DNS, EMAIL, URI] {
        if !permitted.iter().any(|(k, _)| *k == t) {
            permitted.push(text(t, "invalid"));
        }
    }
    let mut excluded = Vec::new();
    if !permitted.iter().any(|(k, _)| *k == IP) {
        excluded.push((IP, vec![0u8; 8]));
        excluded.push((IP, vec![0u8; 32]));
    }
    let subtrees = |names: &[(u8, Vec<u8>)]| -> Vec<u8> {
        names
            .iter()
            .flat_map(|(t, v)| der_tlv(0x30, &der_tlv(*t, v)))
            .collect()
    };
    let mut body = der_tlv(0xA0, &subtrees(&permitted));
    if !excluded.is_empty() {
        body.extend(der_tlv(0xA1, &subtrees(&excluded)));
    }
    let mut ext = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 30], der_tlv(0x30, &body));
    ext.set_criticality(true);
    ext
}

fn unix(t: i64) -> Result<time::OffsetDateTime, LifecycleError> {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map_err(|_| LifecycleError::InvalidField("date out of range".into()))
}

/// The issuing CA: its certificate record, and the chain of CA records above it (itself
/// first), each checked to be an Active CA.
struct Ca {
    cert: Record,
    chain: Vec<Record>,
    path_len: i64,
}

impl Txn {
    /// The DER SubjectPublicKeyInfo of stored public key `id`, and its record.
    fn spki(&self, id: &str, now: i64) -> Result<(Record, Vec<u8>), LifecycleError> {
        let (r, obj) = self.export_as(
            id,
            Some(kmip_codec::vocab::enums::key_format_type::X_509),
            now,
        )?;
        if r.object_type != ot::PUBLIC_KEY {
            return Err(LifecycleError::InvalidField(format!(
                "{id} is not a public key"
            )));
        }
        let der = obj
            .child(tag::KEY_BLOCK)
            .and_then(|kb| kb.child(tag::KEY_VALUE))
            .and_then(|kv| kv.child(tag::KEY_MATERIAL))
            .and_then(Ttlv::as_bytes)
            .ok_or_else(|| LifecycleError::InvalidField("public key".into()))?
            .to_vec();
        Ok((r, der))
    }

    /// The public key to certify when a request names key `id`: `id` itself, or the public
    /// half of private key `id`. The ID Placeholder after Create Key Pair names the private
    /// key, so a batch (Create Key Pair, then Certify of the placeholder) issues in one
    /// transaction: with Batch Error Continuation Option Undo a refused Certify leaves no key
    /// pair behind.
    fn public_half(&self, id: &str, now: i64) -> Result<String, LifecycleError> {
        let r = self.get(id, now)?;
        if r.object_type == ot::PRIVATE_KEY {
            return linked(&r, link_type::PUBLIC_KEY_LINK).ok_or_else(|| {
                LifecycleError::InvalidField(format!("private key {id} has no public key"))
            });
        }
        Ok(r.id)
    }

    /// A CA certificate as an issuer: its name, rebuilt from the subject it was issued with
    /// (so the encoding is identical), and its key identifier.
    fn issuer_params(&self, cert: &Record, now: i64) -> Result<CertificateParams, LifecycleError> {
        let mut p = CertificateParams::default();
        p.distinguished_name = parse_dn(&ca_text(cert, "ca-subject").unwrap_or_default())?;
        // the key of the certificate itself, not of whatever its links name
        let der = certificate_der(self, cert, now)?;
        let spki = openssl::x509::X509::from_der(&der)
            .and_then(|x| x.public_key())
            .and_then(|k| k.public_key_to_der())
            .map_err(crate::core::CoreError::from)?;
        p.key_identifier_method =
            KeyIdMethod::PreSpecified(SubjectKey::from_spki(&spki)?.key_id()?);
        Ok(p)
    }

    fn ca(&self, id: &str, now: i64) -> Result<Ca, LifecycleError> {
        let mut chain = Vec::new();
        let mut next = Some(id.to_owned());
        while let Some(id) = next.take() {
            if chain.len() > 16 {
                return Err(LifecycleError::InvalidField(
                    "certificate chain too long".into(),
                ));
            }
            // the caller must be allowed to use the issuing CA; the CAs above it are read by
            // the server for their rules, whoever may see them
            let r = if chain.is_empty() {
                self.get(&id, now)?
            } else {
                let mut r = self.store.get(&id)?.ok_or(LifecycleError::NotFound)?;
                r.state = Self::due_state(&r, now);
                r
            };
            if r.object_type != ot::CERTIFICATE || ca_values(&r, "ca-path-len").next().is_none() {
                return Err(LifecycleError::InvalidField(format!(
                    "{id} is not a CA certificate of this server"
                )));
            }
            if r.state != State::Active {
                return Err(LifecycleError::NotUsable(r.state));
            }
            let up = ca_text(&r, "ca-issuer").filter(|i| *i != r.id);
            chain.push(r);
            next = up;
        }
        let cert = chain[0].clone();
        let path_len = ca_values(&cert, "ca-path-len")
            .find_map(|v| match v {
                Value::Integer(n) => Some(i64::from(*n)),
                _ => None,
            })
            .unwrap_or(0);
        Ok(Ca {
            cert,
            chain,
            path_len,
        })
    }

    /// The private key behind CA certificate `cert`, for one certificate or CRL signature:
    /// the key the server bound the record to when it made it (`y-ca-key`). A record made
    /// before that binding existed falls back to its links, and only when they name a key
    /// pair the server generated.
    fn ca_key(&self, cert: &Record, mask_bit: u32, now: i64) -> Result<Sealed, LifecycleError> {
        let private = match ca_text(cert, "ca-key") {
            Some(k) => k,
            None => {
                let public = linked(cert, link_type::PUBLIC_KEY_LINK).ok_or_else(|| {
                    LifecycleError::InvalidField("the CA has no public key link".into())
                })?;
                let public = self.store.get(&public)?.ok_or(LifecycleError::NotFound)?;
                let private = self.generated_pair(&public)?;
                // and only a record its key's owner made: a grantee's own record for someone
                // else's key was never a CA
                let key = self.store.get(&private)?.ok_or(LifecycleError::NotFound)?;
                if cert.owner.is_some() && cert.owner != key.owner {
                    return Err(LifecycleError::PermissionDenied(format!(
                        "CA certificate {} was not made by its key's owner",
                        cert.id
                    )));
                }
                private
            }
        };
        // a signature is a use of the key: counted against its Usage Limits
        Ok(self.key_to_protect(&private, mask_bit, 0, now)?.1)
    }

    /// A key pair the server made a CA of (a root, or an intermediate under one of its CAs)
    /// keeps that authority and its limits: a new CA record for it comes only from the issuer
    /// of the ones it has (a renewal: a root signing itself again, an intermediate renewed by
    /// its issuer), never from another issuer, a signature of its own, or outside (Import CA),
    /// any of which would let its owner step out of the name constraints, path lengths and
    /// validity of the CAs above. Destroyed records count too: destroying an intermediate's
    /// record does not free its key pair from the rules it was made under.
    fn keeps_its_issuer(&self, private: &str, new: NewIssuer<'_>) -> Result<(), LifecycleError> {
        let bound = item_index_key(&ca_attr("ca-key", Value::TextString(private.to_owned())))
            .ok_or_else(|| LifecycleError::InvalidField("ca-key".into()))?;
        for other in self.store.lookup(&bound)? {
            let Some(r) = self.store.peek(&other)? else {
                continue;
            };
            let made_here = ca_text(&r, "ca-key").as_deref() == Some(private)
                && ca_text(&r, "ca-profile").as_deref() != Some("imported");
            if !made_here {
                continue;
            }
            let issuer = ca_text(&r, "ca-issuer");
            let renewal = match new {
                NewIssuer::SelfSigned => issuer.as_deref() == Some(r.id.as_str()),
                NewIssuer::By(id) => issuer.as_deref() == Some(id),
                NewIssuer::Outside => false,
            };
            if !renewal {
                return Err(LifecycleError::PermissionDenied(format!(
                    "this key pair is a CA of this server already (certificate {}): its CA \
                     certificates come from its issuer here, not from another issuer, itself \
                     or outside",
                    r.id
                )));
            }
        }
        Ok(())
    }

    /// The private key the server generated together with `public`: both made here (Create
    /// Key Pair), each linked to the other. A client's registered copy of a public key, or a
    /// link a client added to one, never stands for a CA's key pair.
    fn generated_pair(&self, public: &Record) -> Result<String, LifecycleError> {
        let refuse = || {
            LifecycleError::PermissionDenied(format!(
                "public key {} is not one half of a key pair this server generated; a CA's \
                 key pair must be",
                public.id
            ))
        };
        if !public.generated || public.object_type != ot::PUBLIC_KEY {
            return Err(refuse());
        }
        let private = linked(public, link_type::PRIVATE_KEY_LINK).ok_or_else(refuse)?;
        let p = self.store.get(&private)?.ok_or_else(refuse)?;
        if !p.generated
            || p.object_type != ot::PRIVATE_KEY
            || linked(&p, link_type::PUBLIC_KEY_LINK).as_deref() != Some(public.id.as_str())
        {
            return Err(refuse());
        }
        Ok(private)
    }

    /// Issue a certificate: signed by CA certificate `issuer`, or self-signed by the subject
    /// public key's own private key when `issuer` is `None`. The new Certificate object is
    /// returned; the public key (when stored here) gains a Certificate Link to it.
    pub fn certify(
        &self,
        subject: ToCertify<'_>,
        issuer: Option<&str>,
        spec: CertificateSpec,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        let mut params = spec.params;
        let (spki, public) = match subject {
            ToCertify::PublicKey(id) => {
                let (r, der) = self.spki(&self.public_half(id, now)?, now)?;
                (der, Some(r))
            }
            ToCertify::Request { spki } => (spki.to_vec(), None),
        };
        let subject_key = SubjectKey::from_spki(&spki)?;
        let new_path_len = match &params.is_ca {
            IsCa::Ca(BasicConstraints::Constrained(n)) => Some(i64::from(*n)),
            IsCa::Ca(BasicConstraints::Unconstrained) => Some(-1),
            _ => None,
        };
        let permitted: Vec<Permit> = spec
            .permitted
            .iter()
            .map(|p| Permit::parse(p))
            .collect::<Result<_, _>>()?;
        if !permitted.is_empty() {
            if new_path_len.is_none() {
                return Err(LifecycleError::InvalidField(
                    "name constraints are for a CA".into(),
                ));
            }
            params.name_constraints = None;
            params
                .custom_extensions
                .push(name_constraints_extension(&permitted));
        }
        let names = names_of(&params)?;
        // the private key a new CA certificate is bound to
        let mut ca_private = None;
        let (ca, signing_key) = match issuer {
            None => {
                let public = public.as_ref().ok_or_else(|| {
                    LifecycleError::InvalidField(
                        "a self-signed certificate needs a stored key".into(),
                    )
                })?;
                let private = linked(public, link_type::PRIVATE_KEY_LINK).ok_or_else(|| {
                    LifecycleError::InvalidField("the public key has no private key".into())
                })?;
                // a key the caller cannot see is not found, as everywhere: the link is the
                // caller's to point anywhere, and must not tell another's key from none
                let owner = self
                    .store
                    .get(&private)?
                    .filter(|r| self.visible(r))
                    .ok_or(LifecycleError::NotFound)?;
                if !self.owns(&owner) {
                    return Err(LifecycleError::PermissionDenied(
                        "only the owner of a private key self-signs with it".into(),
                    ));
                }
                if new_path_len.is_some() {
                    let pair = self.generated_pair(public)?;
                    self.keeps_its_issuer(&pair, NewIssuer::SelfSigned)?;
                    ca_private = Some(pair);
                }
                let key = self
                    .key_to_protect(&private, um::CERTIFICATE_SIGN, 0, now)?
                    .1;
                (None, key)
            }
            Some(id) => {
                if new_path_len.is_some() {
                    let public = public.as_ref().ok_or_else(|| {
                        LifecycleError::PermissionDenied(
                            "a CA is never made from a certificate request: its key pair must \
                             be generated here"
                                .into(),
                        )
                    })?;
                    ca_private = Some(self.generated_pair(public)?);
                }
                let ca = self.ca(id, now)?;
                if let Some(pair) = &ca_private {
                    self.keeps_its_issuer(pair, NewIssuer::By(&ca.cert.id))?;
                }
                if new_path_len.is_some() {
                    if ca.path_len == 0 {
                        return Err(LifecycleError::PermissionDenied(
                            "the issuer's path length allows no CA below it".into(),
                        ));
                    }
                    if ca.path_len > 0 {
                        let cap = (ca.path_len - 1) as u8;
                        let n = match new_path_len {
                            Some(n) if n >= 0 => (n as u8).min(cap),
                            _ => cap,
                        };
                        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(n));
                    }
                }
                // every name (the subject's CN too) and every permitted subtree of a new CA
                // inside every CA's constraints, name type by name type
                for up in &ca.chain {
                    let bases: Vec<Permit> = ca_values(up, "ca-permitted")
                        .filter_map(|v| match v {
                            Value::TextString(s) => Some(Permit::parse(s)),
                            _ => None,
                        })
                        .collect::<Result<_, _>>()?;
                    if bases.is_empty() {
                        continue;
                    }
                    let outside = |shown: &str| {
                        LifecycleError::PermissionDenied(format!(
                            "{shown} is outside the name constraints of CA {}",
                            up.id
                        ))
                    };
                    for (shown, name) in &names {
                        if !name.within(&bases) {
                            return Err(outside(shown));
                        }
                    }
                    for p in &permitted {
                        if !p.within(&bases) {
                            return Err(outside(&p.stored()));
                        }
                    }
                }
                if let Some(limit) = ca_values(&ca.cert, "ca-not-after").find_map(|v| match v {
                    Value::DateTime(t) => Some(*t),
                    _ => None,
                }) {
                    params.not_after = params.not_after.min(unix(limit)?);
                }
                let key = self.ca_key(&ca.cert, um::CERTIFICATE_SIGN, now)?;
                (Some(ca), key)
            }
        };
        if params.not_after <= params.not_before {
            return Err(LifecycleError::InvalidField(
                "the validity period is empty".into(),
            ));
        }

        let id = self.new_ids(1)?.remove(0);
        let issuer_id = ca
            .as_ref()
            .map(|c| c.cert.id.clone())
            .unwrap_or_else(|| id.clone());
        // 127 random bits, unique among this CA's certificates
        let serial = loop {
            let mut s = self.core.random(16)?.expose().to_vec();
            s[0] &= 0x7F;
            s[0] |= 0x01;
            let hex = kmip_codec::text::hex(&s);
            let key = item_index_key(&ca_attr("ca-serial", Value::TextString(hex.clone())))
                .ok_or_else(|| LifecycleError::InvalidField("serial".into()))?;
            let taken = self.store.lookup(&key)?.into_iter().any(|other| {
                self.store
                    .get(&other)
                    .ok()
                    .flatten()
                    .is_some_and(|r| ca_text(&r, "ca-issuer").as_deref() == Some(&issuer_id))
            });
            if !taken {
                break (s, hex);
            }
        };
        params.serial_number = Some(SerialNumber::from_slice(&serial.0));
        params.key_identifier_method = KeyIdMethod::PreSpecified(subject_key.key_id()?);
        params.use_authority_key_identifier_extension = ca.is_some();
        let issuer_params = match &ca {
            None => None,
            Some(ca) => Some(self.issuer_params(&ca.cert, now)?),
        };
        let der = self
            .core
            .sign_certificate(&signing_key, issuer_params, &subject_key, &params)?;

        if let Some(ca) = &ca {
            same_issuer_name(&der, &ca.cert, self, now)?;
        }
        let not_after = params.not_after.unix_timestamp();
        let mut attrs = vec![
            Ttlv::new(
                tag::CERTIFICATE_TYPE,
                Value::Enumeration(kmip_codec::vocab::enums::certificate_type::X_509),
            ),
            date(
                tag::ACTIVATION_DATE,
                now.min(params.not_before.unix_timestamp()),
            ),
            date(tag::DEACTIVATION_DATE, not_after),
            ca_attr("ca-issuer", Value::TextString(issuer_id.clone())),
            ca_attr("ca-serial", Value::TextString(serial.1)),
            ca_attr("ca-subject", Value::TextString(spec.subject)),
            ca_attr("ca-profile", Value::TextString(spec.profile)),
            ca_attr("ca-not-after", Value::DateTime(not_after)),
        ];
        if issuer_id != id {
            attrs.push(link(link_type::CERTIFICATE_LINK, &issuer_id));
        }
        if let IsCa::Ca(bc) = &params.is_ca {
            let n = match bc {
                BasicConstraints::Constrained(n) => i32::from(*n),
                BasicConstraints::Unconstrained => -1,
            };
            attrs.push(ca_attr("ca-path-len", Value::Integer(n)));
            if let Some(k) = &ca_private {
                attrs.push(ca_attr("ca-key", Value::TextString(k.clone())));
            }
            for p in &permitted {
                attrs.push(ca_attr("ca-permitted", Value::TextString(p.stored())));
            }
        }
        let mut changes = Vec::new();
        if let Some(mut p) = public {
            attrs.push(link(link_type::PUBLIC_KEY_LINK, &p.id));
            p.attributes.push(link(link_type::CERTIFICATE_LINK, &id));
            set_single(&mut p.attributes, date(tag::LAST_CHANGE_DATE, now));
            changes.push(Change::Put(p));
        }
        let object = Ttlv::structure(
            tag::CERTIFICATE,
            vec![
                Ttlv::new(
                    tag::CERTIFICATE_TYPE,
                    Value::Enumeration(kmip_codec::vocab::enums::certificate_type::X_509),
                ),
                Ttlv::new(tag::CERTIFICATE_VALUE, Value::ByteString(der)),
            ],
        );
        let material = Material::of_object(&object);
        self.check_names(&id, &[], &attrs)?;
        let record = self.new_record(&id, ot::CERTIFICATE, attrs, &material, now)?;
        changes.push(Change::Put(record.clone()));
        self.store.commit(changes)?;
        Ok(record)
    }

    /// The CRL of CA certificate `issuer`: every certificate it issued that was revoked, with
    /// its reason; signed by the CA's key (CRL Sign usage). Each CRL gets the next CRL Number.
    pub fn crl(&self, issuer: &str, now: i64) -> Result<Vec<u8>, LifecycleError> {
        let ca = self.ca(issuer, now)?;
        let key = self.ca_key(&ca.cert, um::CRL_SIGN, now)?;
        let index = item_index_key(&ca_attr("ca-issuer", Value::TextString(ca.cert.id.clone())))
            .ok_or_else(|| LifecycleError::InvalidField("issuer".into()))?;
        let mut revoked = Vec::new();
        for id in self.store.lookup(&index)? {
            let Some(r) = self.store.peek(&id)? else {
                continue;
            };
            // the index narrows; the record decides: issued by this CA, by the server's own
            // attribute (vendor `y`, which no client sets), never a look-alike a client set
            if r.id == ca.cert.id
                || ca_text(&r, "ca-issuer").as_deref() != Some(ca.cert.id.as_str())
            {
                continue;
            }
            let Some(reason) = r.attribute(tag::REVOCATION_REASON) else {
                continue;
            };
            let code = reason
                .child(tag::REVOCATION_REASON_CODE)
                .and_then(Ttlv::as_enum)
                .unwrap_or(revocation_reason_code::UNSPECIFIED);
            use rcgen::RevocationReason as R;
            let reason_code = match code {
                revocation_reason_code::KEY_COMPROMISE => R::KeyCompromise,
                revocation_reason_code::CA_COMPROMISE => R::CaCompromise,
                revocation_reason_code::AFFILIATION_CHANGED => R::AffiliationChanged,
                revocation_reason_code::SUPERSEDED => R::Superseded,
                revocation_reason_code::CESSATION_OF_OPERATION => R::CessationOfOperation,
                revocation_reason_code::PRIVILEGE_WITHDRAWN => R::PrivilegeWithdrawn,
                _ => R::Unspecified,
            };
            let when = get_date(&r.attributes, tag::COMPROMISE_DATE)
                .or(get_date(&r.attributes, tag::DEACTIVATION_DATE))
                .unwrap_or(now)
                .min(now);
            let serial = ca_text(&r, "ca-serial")
                .and_then(|h| kmip_codec::text::unhex(&h))
                .unwrap_or_default();
            revoked.push(rcgen::RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: unix(when)?,
                reason_code: Some(reason_code),
                invalidity_date: None,
            });
        }
        let mut cert = ca.cert;
        let number = ca_values(&cert, "ca-crl-number")
            .find_map(|v| match v {
                Value::LongInteger(n) => Some(*n),
                _ => None,
            })
            .unwrap_or(0)
            + 1;
        let p = self.issuer_params(&cert, now)?;
        let key_id = match &p.key_identifier_method {
            KeyIdMethod::PreSpecified(k) => k.clone(),
            _ => Vec::new(),
        };
        let der = self.core.sign_crl(
            &key,
            p,
            &rcgen::CertificateRevocationListParams {
                this_update: unix(now)?,
                next_update: unix(now + 7 * 86_400)?,
                crl_number: {
                    // DER INTEGERs are minimal: no leading zero bytes
                    let b = number.to_be_bytes();
                    let first = b.iter().position(|x| *x != 0).unwrap_or(7);
                    let mut v = b[first..].to_vec();
                    if v[0] & 0x80 != 0 {
                        v.insert(0, 0);
                    }
                    SerialNumber::from_slice(&v)
                },
                issuing_distribution_point: None,
                revoked_certs: revoked,
                key_identifier_method: KeyIdMethod::PreSpecified(key_id),
            },
        )?;
        cert.attributes.retain(|a| {
            !(a.tag == tag::ATTRIBUTE
                && a.child(tag::ATTRIBUTE_NAME).and_then(Ttlv::as_text) == Some("ca-crl-number"))
        });
        cert.attributes
            .push(ca_attr("ca-crl-number", Value::LongInteger(number)));
        self.put(&cert)?;
        Ok(der)
    }
}

/// The DER certificate a Certificate record holds.
fn certificate_der(m: &Txn, r: &Record, now: i64) -> Result<Vec<u8>, LifecycleError> {
    let (_, obj) = m.export_as(&r.id, None, now)?;
    obj.child(tag::CERTIFICATE_VALUE)
        .and_then(Ttlv::as_bytes)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| LifecycleError::InvalidField("certificate".into()))
}

/// The issuer name of a new certificate must be byte for byte its CA's subject name, or chain
/// building fails: a CA certificate issued elsewhere may encode its name in other string types
/// than the ones rebuilt here.
fn same_issuer_name(der: &[u8], ca: &Record, m: &Txn, now: i64) -> Result<(), LifecycleError> {
    let issued = openssl::x509::X509::from_der(der).map_err(crate::core::CoreError::from)?;
    let ca_der = certificate_der(m, ca, now)?;
    let ca_x = openssl::x509::X509::from_der(&ca_der).map_err(crate::core::CoreError::from)?;
    let a = issued
        .issuer_name()
        .to_der()
        .map_err(crate::core::CoreError::from)?;
    let b = ca_x
        .subject_name()
        .to_der()
        .map_err(crate::core::CoreError::from)?;
    if a != b {
        return Err(LifecycleError::InvalidField(format!(
            "CA {}'s name does not encode as written; it cannot issue",
            ca.id
        )));
    }
    Ok(())
}

/// What a CA certificate issued elsewhere says of itself, read by the server at import.
pub struct ImportedCa {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// `CN=...,O=...` in the certificate's order.
    pub subject: String,
    /// When it expires, in seconds since the epoch.
    pub not_after: i64,
    /// Path length (-1 for none).
    pub path_len: i64,
    /// Its permitted subtrees, as [`Permit::parse`] reads them.
    pub permitted: Vec<String>,
}

impl Txn {
    /// A PKCS#10 request for stored public key `public` with `subject`, signed by its private
    /// key in the core: a CA whose certificate an external root will issue.
    pub fn certificate_request(
        &self,
        public: &str,
        subject: &str,
        now: i64,
    ) -> Result<Vec<u8>, LifecycleError> {
        let (r, _) = self.spki(&self.public_half(public, now)?, now)?;
        let private = linked(&r, link_type::PRIVATE_KEY_LINK).ok_or_else(|| {
            LifecycleError::InvalidField("the public key has no private key".into())
        })?;
        let key = self
            .key_to_protect(&private, um::CERTIFICATE_SIGN, 0, now)?
            .1;
        let mut p = CertificateParams::default();
        p.distinguished_name = parse_dn(subject)?;
        Ok(self.core.sign_request(&key, &p)?)
    }

    /// Take in a CA certificate an external root issued for stored public key `public`: it
    /// must certify exactly that key, and be a CA. It then issues like a CA made here.
    pub fn import_ca(
        &self,
        public: &str,
        ca: ImportedCa,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        let (mut p, spki) = self.spki(public, now)?;
        let private = self.generated_pair(&p)?;
        let owner = self
            .store
            .get(&private)?
            .filter(|r| self.visible(r))
            .ok_or(LifecycleError::NotFound)?;
        if !self.owns(&owner) {
            return Err(LifecycleError::PermissionDenied(
                "only the owner of a CA's private key imports a certificate for it".into(),
            ));
        }
        self.keeps_its_issuer(&private, NewIssuer::Outside)?;
        let x = openssl::x509::X509::from_der(&ca.der).map_err(crate::core::CoreError::from)?;
        let theirs = x
            .public_key()
            .and_then(|k| k.public_key_to_der())
            .map_err(crate::core::CoreError::from)?;
        if theirs != spki {
            return Err(LifecycleError::InvalidField(
                "the certificate is for another key".into(),
            ));
        }
        let id = self.new_ids(1)?.remove(0);
        let serial = kmip_codec::text::hex(
            &x.serial_number()
                .to_bn()
                .map(|b| b.to_vec())
                .map_err(crate::core::CoreError::from)?,
        );
        let mut attrs = vec![
            Ttlv::new(
                tag::CERTIFICATE_TYPE,
                Value::Enumeration(kmip_codec::vocab::enums::certificate_type::X_509),
            ),
            date(tag::ACTIVATION_DATE, now),
            date(tag::DEACTIVATION_DATE, ca.not_after),
            // the chain ends here: its issuer is outside this server
            ca_attr("ca-issuer", Value::TextString(id.clone())),
            ca_attr("ca-serial", Value::TextString(serial)),
            ca_attr("ca-subject", Value::TextString(ca.subject)),
            ca_attr("ca-profile", Value::TextString("imported".into())),
            ca_attr("ca-not-after", Value::DateTime(ca.not_after)),
            ca_attr("ca-path-len", Value::Integer(ca.path_len as i32)),
            ca_attr("ca-key", Value::TextString(private)),
            link(link_type::PUBLIC_KEY_LINK, &p.id),
        ];
        for name in ca.permitted {
            let p = Permit::parse(&name)?;
            attrs.push(ca_attr("ca-permitted", Value::TextString(p.stored())));
        }
        let object = Ttlv::structure(
            tag::CERTIFICATE,
            vec![
                Ttlv::new(
                    tag::CERTIFICATE_TYPE,
                    Value::Enumeration(kmip_codec::vocab::enums::certificate_type::X_509),
                ),
                Ttlv::new(tag::CERTIFICATE_VALUE, Value::ByteString(ca.der)),
            ],
        );
        let record = self.new_record(
            &id,
            ot::CERTIFICATE,
            attrs,
            &Material::of_object(&object),
            now,
        )?;
        p.attributes.push(link(link_type::CERTIFICATE_LINK, &id));
        set_single(&mut p.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.store
            .commit(vec![Change::Put(p), Change::Put(record.clone())])?;
        Ok(record)
    }
}

/// The 2.1 Certificate Attributes (Certificate Subject CN, ..., Issuer DN Qualifier) of an
/// X.509 certificate, one item per name component; none for what does not parse as X.509.
pub(super) fn name_attributes(der: &[u8]) -> Vec<Ttlv> {
    use openssl::nid::Nid;
    let Ok(cert) = openssl::x509::X509::from_der(der) else {
        return Vec::new();
    };
    const PARTS: [(Nid, Tag, Tag); 12] = [
        (
            Nid::COMMONNAME,
            tag::CERTIFICATE_SUBJECT_CN,
            tag::CERTIFICATE_ISSUER_CN,
        ),
        (
            Nid::ORGANIZATIONNAME,
            tag::CERTIFICATE_SUBJECT_O,
            tag::CERTIFICATE_ISSUER_O,
        ),
        (
            Nid::ORGANIZATIONALUNITNAME,
            tag::CERTIFICATE_SUBJECT_OU,
            tag::CERTIFICATE_ISSUER_OU,
        ),
        (
            Nid::PKCS9_EMAILADDRESS,
            tag::CERTIFICATE_SUBJECT_EMAIL,
            tag::CERTIFICATE_ISSUER_EMAIL,
        ),
        (
            Nid::COUNTRYNAME,
            tag::CERTIFICATE_SUBJECT_C,
            tag::CERTIFICATE_ISSUER_C,
        ),
        (
            Nid::STATEORPROVINCENAME,
            tag::CERTIFICATE_SUBJECT_ST,
            tag::CERTIFICATE_ISSUER_ST,
        ),
        (
            Nid::LOCALITYNAME,
            tag::CERTIFICATE_SUBJECT_L,
            tag::CERTIFICATE_ISSUER_L,
        ),
        (
            Nid::USERID,
            tag::CERTIFICATE_SUBJECT_UID,
            tag::CERTIFICATE_ISSUER_UID,
        ),
        (
            Nid::SERIALNUMBER,
            tag::CERTIFICATE_SUBJECT_SERIAL_NUMBER,
            tag::CERTIFICATE_ISSUER_SERIAL_NUMBER,
        ),
        (
            Nid::TITLE,
            tag::CERTIFICATE_SUBJECT_TITLE,
            tag::CERTIFICATE_ISSUER_TITLE,
        ),
        (
            Nid::DOMAINCOMPONENT,
            tag::CERTIFICATE_SUBJECT_DC,
            tag::CERTIFICATE_ISSUER_DC,
        ),
        (
            Nid::DNQUALIFIER,
            tag::CERTIFICATE_SUBJECT_DN_QUALIFIER,
            tag::CERTIFICATE_ISSUER_DN_QUALIFIER,
        ),
    ];
    let mut out = Vec::new();
    for (name, is_subject) in [(cert.subject_name(), true), (cert.issuer_name(), false)] {
        for (nid, subject, issuer) in PARTS {
            for v in name
                .entries_by_nid(nid)
                .filter_map(|e| e.data().to_string().ok())
            {
                let t = if is_subject { subject } else { issuer };
                out.push(Ttlv::new(t, Value::TextString(v)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_constraints() {
        assert!(parse_dn("CN=Root CA, O=Example, C=GB").is_ok());
        assert!(parse_dn("CN=a\\,b").is_err());
        assert!(parse_dn("XX=1").is_err());
        assert!(parse_dn("").is_err());
        assert!(dns_within("www.example.com", "example.com"));
        assert!(dns_within("example.com", "example.com"));
        assert!(!dns_within("example.com", ".example.com"));
        assert!(!dns_within("badexample.com", "example.com"));
        assert!(!dns_within("example.org", "example.com"));
    }

    #[test]
    fn permitted_names_by_type() {
        let p = |s: &str| Permit::parse(s).unwrap();
        let bases = [p("example.com"), p("ip:10.0.0.0/8")];
        let ok = |n: Name| n.within(&bases);
        assert!(ok(Name::Dns("www.example.com".into())));
        assert!(!ok(Name::Dns("www.example.org".into())));
        assert!(ok(Name::Email("a@example.com".into())));
        assert!(ok(Name::Email("a@mail.example.com".into())));
        assert!(!ok(Name::Email("a@evil.org".into())));
        assert!(ok(Name::Uri("https://u:p@www.example.com:443/x?y".into())));
        assert!(!ok(Name::Uri("https://evil.org/".into())));
        assert!(!ok(Name::Uri("urn:example.com".into())));
        assert!(ok(Name::Ip("10.200.0.1".parse().unwrap())));
        assert!(!ok(Name::Ip("11.0.0.1".parse().unwrap())));
        assert!(!ok(Name::Ip("::1".parse().unwrap())));
        // a DNS-only CA permits no e-mail address
        assert!(!Name::Email("a@example.com".into()).within(&[p("dns:example.com")]));
        assert!(Name::Email("a@example.com".into()).within(&[p("email:a@example.com")]));
        assert!(!Name::Email("b@example.com".into()).within(&[p("email:a@example.com")]));
        assert!(!Name::Email("a@sub.example.com".into()).within(&[p("email:example.com")]));
        assert!(Name::Email("a@sub.example.com".into()).within(&[p("email:.example.com")]));
        // sub-CA subtrees
        assert!(p("www.example.com").within(&bases));
        assert!(p("ip:10.1.0.0/16").within(&bases));
        assert!(!p("ip:10.0.0.0/7").within(&bases));
        assert!(!p("evil.org").within(&bases));
        assert_eq!(p("ip:10.1.2.3/8").stored(), "ip:10.0.0.0/8");
        assert_eq!(p("ip:2001:db8::1/32").stored(), "ip:2001:db8::/32");
        for bad in [
            "ip:10.0.0.0/33",
            "bad domain",
            "ftp:x",
            "email:@x",
            "ip:nope",
        ] {
            assert!(Permit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn certificate_attributes_name_subject_and_issuer() {
        use openssl::x509::{X509Builder, X509NameBuilder};
        let name = |parts: &[(&str, &str)]| {
            let mut b = X509NameBuilder::new().unwrap();
            for (k, v) in parts {
                b.append_entry_by_text(k, v).unwrap();
            }
            b.build()
        };
        let key = openssl::pkey::PKey::ec_gen("prime256v1").unwrap();
        let mut b = X509Builder::new().unwrap();
        b.set_subject_name(&name(&[
            ("CN", "db.example.com"),
            ("OU", "Storage"),
            ("C", "GB"),
        ]))
        .unwrap();
        b.set_issuer_name(&name(&[("CN", "Issuing CA"), ("O", "Example")]))
            .unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        let der = b.build().to_der().unwrap();
        let attrs = name_attributes(&der);
        let has = |t: Tag, v: &str| attrs.contains(&Ttlv::new(t, Value::TextString(v.into())));
        assert!(has(tag::CERTIFICATE_SUBJECT_CN, "db.example.com"));
        assert!(has(tag::CERTIFICATE_SUBJECT_OU, "Storage"));
        assert!(has(tag::CERTIFICATE_SUBJECT_C, "GB"));
        assert!(has(tag::CERTIFICATE_ISSUER_CN, "Issuing CA"));
        assert!(has(tag::CERTIFICATE_ISSUER_O, "Example"));
        assert_eq!(attrs.len(), 5, "{attrs:?}");
        assert!(name_attributes(b"not a certificate").is_empty());
    }
}
