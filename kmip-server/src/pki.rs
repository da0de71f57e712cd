//! Zero-configuration TLS material: on first start the server makes a CA, a server certificate
//! (SAN localhost, 127.0.0.1, ::1 and the host name) and an administrator client certificate,
//! all under `DATA_DIR/tls`. Private keys are written with mode 0600.

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PkiError {
    #[error("TLS material: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0:?} is not a plain identity name: 1 to 64 of A-Z a-z 0-9 . _ -, not starting with a dot"
    )]
    InvalidName(String),
    #[error("{0:?} names the server's own TLS files ({0}.pem): choose another identity name")]
    ReservedName(String),
    #[error("--tls-san {0:?} is neither an IP address nor a DNS name")]
    InvalidSan(String),
    #[error("{}: missing, while other TLS material is there: the CA is never replaced implicitly (clients trust it). Put the file back, or move {} aside to start with a new CA", missing.display(), dir.display())]
    Incomplete { missing: PathBuf, dir: PathBuf },
    #[error("the identity {name:?} exists ({}): give --force to replace it (its current certificate stays valid until it expires)", path.display())]
    Exists { name: String, path: PathBuf },
}

/// The longest identity name: it becomes a certificate's CN (at most 64 characters) and a
/// file name under `tls/`.
pub const MAX_NAME: usize = 64;

/// An identity name that is a plain file name under `tls/`, and never one of the CA's or the
/// server's files: a name is never a path.
pub fn check_name(name: &str) -> Result<(), PkiError> {
    let plain = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !plain {
        return Err(PkiError::InvalidName(name.to_owned()));
    }
    if name == "ca" || name == "server" {
        return Err(PkiError::ReservedName(name.to_owned()));
    }
    Ok(())
}

pub struct Paths {
    pub dir: PathBuf,
}

impl Paths {
    pub fn new(data_dir: &Path) -> Paths {
        Paths {
            dir: data_dir.join("tls"),
        }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn client_cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }
    pub fn client_key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Write a file; `private` ones get mode 0600 from their creation.
pub fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), PkiError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

/// `s` quoted for a POSIX shell, so that a printed command works when pasted whatever the
/// path holds (spaces, quotes, `$`).
pub fn shell_quote(s: &str) -> String {
    // only a NUL cannot be quoted, and no path holds one
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| s.replace('\0', ""))
}

/// How to point a client at this server as identity `name`: the files, a ready PyKMIP
/// `pykmip.conf` section, and the command for more identities. Printed at first start and by
/// `client-cert`, and kept in `DATA_DIR/CLIENTS.txt`.
pub fn client_instructions(data_dir: &Path, name: &str, port: u16) -> String {
    let data = std::fs::canonicalize(data_dir).unwrap_or(data_dir.to_owned());
    let p = Paths::new(&data);
    let (ca, cert, key) = (
        p.ca_cert().display().to_string(),
        p.client_cert(name).display().to_string(),
        p.client_key(name).display().to_string(),
    );
    format!(
        "Point a client at localhost:{port} as {name} with\n  CA: {ca}\n  certificate: {cert}\n  key: {key}\n\
         A PyKMIP client section (pykmip.conf):\n\
         [server]\nhost=localhost\nport={port}\nca_certs={ca}\ncertfile={cert}\nkeyfile={key}\n\
         cert_reqs=CERT_REQUIRED\nssl_version=PROTOCOL_SSLv23\ndo_handshake_on_connect=True\nsuppress_ragged_eofs=True\n\
         More client identities: kmip-server client-cert NAME --data-dir {}\n",
        shell_quote(&data.display().to_string())
    )
}

fn new_key() -> Result<PKey<Private>, PkiError> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    Ok(PKey::from_ec_key(EcKey::generate(&group)?)?)
}

fn serial() -> Result<Asn1Integer, PkiError> {
    let mut bn = BigNum::new()?;
    bn.rand(127, MsbOption::MAYBE_ZERO, false)?;
    Ok(bn.to_asn1_integer()?)
}

enum Kind<'a> {
    Ca,
    Server(&'a [String]),
    Client,
}

fn issue(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    kind: Kind<'_>,
    days: u32,
) -> Result<X509, PkiError> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, cn)?;
    let name = name.build();
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let serial = serial()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(issuer.map(|(c, _)| c.subject_name()).unwrap_or(&name))?;
    b.set_pubkey(key)?;
    let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(days)?);
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    let issuer_cert: Option<&openssl::x509::X509Ref> = issuer.map(|(c, _)| &**c);
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(issuer_cert, None))?;
    b.append_extension(ski)?;
    if issuer.is_some() {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(issuer_cert, None))?;
        b.append_extension(aki)?;
    }
    match kind {
        Kind::Ca => {
            b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()?,
            )?;
        }
        Kind::Server(names) => {
            b.append_extension(BasicConstraints::new().critical().build()?)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .key_agreement()
                    .build()?,
            )?;
            b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
            let mut san = SubjectAlternativeName::new();
            for n in names {
                if n.parse::<std::net::IpAddr>().is_ok() {
                    san.ip(n);
                } else {
                    san.dns(n);
                }
            }
            let san = san.build(&b.x509v3_context(issuer_cert, None))?;
            b.append_extension(san)?;
        }
        Kind::Client => {
            b.append_extension(BasicConstraints::new().critical().build()?)?;
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .key_agreement()
                    .build()?,
            )?;
            b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
        }
    }
    b.sign(
        issuer.map(|(_, k)| k).unwrap_or(key),
        MessageDigest::sha256(),
    )?;
    Ok(b.build())
}

fn load_ca(p: &Paths) -> Result<(X509, PKey<Private>), PkiError> {
    let cert = std::fs::read(p.ca_cert()).map_err(io(&p.ca_cert()))?;
    let key = std::fs::read(p.ca_key()).map_err(io(&p.ca_key()))?;
    Ok((X509::from_pem(&cert)?, PKey::private_key_from_pem(&key)?))
}

/// A DNS name (letters, digits, hyphens, dots; a leading `*.` wildcard) or an IP address, for
/// the server certificate's subject alternative names.
pub fn check_san(name: &str) -> Result<(), PkiError> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let host = name.strip_prefix("*.").unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if host.len() <= 253 && host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(PkiError::InvalidSan(name.to_owned()))
    }
}

/// The names every generated server certificate carries: localhost, its addresses and the
/// host name.
fn default_names() -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() && check_san(h).is_ok() {
            names.push(h.to_owned());
        }
    }
    names
}

/// The DNS names and IP addresses a certificate file names (IPs in their text form).
pub fn certificate_names(path: &Path) -> Result<Vec<String>, PkiError> {
    let cert = X509::from_pem(&std::fs::read(path).map_err(io(path))?)?;
    let mut out = Vec::new();
    for n in cert.subject_alt_names().iter().flatten() {
        if let Some(d) = n.dnsname() {
            out.push(d.to_owned());
        } else if let Some(ip) = n.ipaddress() {
            let ip = match ip.len() {
                4 => <[u8; 4]>::try_from(ip).map(|a| std::net::IpAddr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(ip).map(|a| std::net::IpAddr::from(a).to_string()),
                _ => continue,
            };
            out.extend(ip.ok());
        }
    }
    Ok(out)
}

/// Days until the certificate file expires (negative: it has).
pub fn days_left(path: &Path) -> Result<i32, PkiError> {
    let cert = X509::from_pem(&std::fs::read(path).map_err(io(path))?)?;
    Ok(Asn1Time::days_from_now(0)?.diff(cert.not_after())?.days)
}

/// What [`ensure`] made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Made {
    /// Everything was there.
    Nothing,
    /// The server certificate was missing: a new one, under the existing CA.
    ServerCert,
    /// A new CA, server certificate and `admin` identity (first start).
    All,
}

/// Create the CA, the server certificate and the `admin` client certificate unless they exist.
/// Returns whether the CA was created (first start).
pub fn ensure(p: &Paths) -> Result<bool, PkiError> {
    Ok(ensure_with(p, &[])? == Made::All)
}

/// [`ensure`], the server certificate also naming `extra` (`--tls-san`). A missing server
/// certificate is issued again under the existing CA; the CA is made only where there is no
/// TLS material at all, never over part of it: every client trusts it.
pub fn ensure_with(p: &Paths, extra: &[String]) -> Result<Made, PkiError> {
    let exists = |f: PathBuf| f.exists();
    let (ca, ca_key) = (exists(p.ca_cert()), exists(p.ca_key()));
    let (cert, key) = (exists(p.server_cert()), exists(p.server_key()));
    if ca && cert && key {
        return Ok(Made::Nothing);
    }
    if ca && ca_key {
        renew_server_cert(p, extra)?;
        return Ok(Made::ServerCert);
    }
    if ca || ca_key || cert || key {
        let missing = if ca { p.ca_key() } else { p.ca_cert() };
        return Err(PkiError::Incomplete {
            missing,
            dir: p.dir.clone(),
        });
    }
    std::fs::create_dir_all(&p.dir).map_err(io(&p.dir))?;
    let ca_key = new_key()?;
    let ca = issue("kmip-server CA", &ca_key, None, Kind::Ca, 3650)?;
    write_file(&p.ca_key(), &ca_key.private_key_to_pem_pkcs8()?, true)?;
    write_file(&p.ca_cert(), &ca.to_pem()?, false)?;
    renew_server_cert(p, extra)?;
    // the administrator's identity comes with a new CA: one issued by an earlier CA would no
    // longer be trusted
    client_cert(p, "admin", true)?;
    Ok(Made::All)
}

/// Issue a new server certificate and key under the data directory's CA, which stays as it
/// is: the names of the current certificate (if any), the default names and `extra`.
/// Each file is replaced whole (written beside, then renamed), so that a server reading them
/// on SIGHUP never reads half a file. Returns the names the new certificate carries.
pub fn renew_server_cert(p: &Paths, extra: &[String]) -> Result<Vec<String>, PkiError> {
    for n in extra {
        check_san(n)?;
    }
    let (ca, ca_key) = load_ca(p)?;
    let mut names = default_names();
    let old = if p.server_cert().exists() {
        certificate_names(&p.server_cert())?
    } else {
        Vec::new()
    };
    for n in old.into_iter().chain(extra.iter().cloned()) {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let key = new_key()?;
    let cert = issue(
        "kmip-server",
        &key,
        Some((&ca, &ca_key)),
        Kind::Server(&names),
        825,
    )?;
    replace_file(&p.server_key(), &key.private_key_to_pem_pkcs8()?, true)?;
    replace_file(&p.server_cert(), &cert.to_pem()?, false)?;
    Ok(names)
}

/// [`write_file`] to a temporary name beside `path`, then renamed over it.
fn replace_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), PkiError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    write_file(&tmp, bytes, private)?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Issue a client identity `CN=name` (EKU clientAuth) from the data directory's CA. An
/// existing identity of that name is replaced only when `force` is given.
pub fn client_cert(p: &Paths, name: &str, force: bool) -> Result<(PathBuf, PathBuf), PkiError> {
    check_name(name)?;
    if !force {
        if let Some(path) = [p.client_cert(name), p.client_key(name)]
            .into_iter()
            .find(|f| f.exists())
        {
            return Err(PkiError::Exists {
                name: name.to_owned(),
                path,
            });
        }
    }
    let (ca, ca_key) = load_ca(p)?;
    let key = new_key()?;
    let cert = issue(name, &key, Some((&ca, &ca_key)), Kind::Client, 825)?;
    write_file(&p.client_key(name), &key.private_key_to_pem_pkcs8()?, true)?;
    write_file(&p.client_cert(name), &cert.to_pem()?, false)?;
    Ok((p.client_cert(name), p.client_key(name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::stack::Stack;
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::X509StoreContext;

    #[test]
    fn identity_names_are_plain() {
        for good in ["alice", "db-1", "a.b_c", &"x".repeat(64)] {
            check_name(good).unwrap();
        }
        for bad in [
            "",
            "../evil",
            "a/b",
            ".hidden",
            "a b",
            "é",
            "a\\b",
            &"x".repeat(65),
            "ca",
            "server",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_ca_survives_a_lost_server_certificate_and_renewal() {
        let dir = tempfile::tempdir().unwrap();
        let p = Paths::new(dir.path());
        assert_eq!(
            ensure_with(&p, &["kmip.example.com".into()]).unwrap(),
            Made::All
        );
        let ca = std::fs::read(p.ca_cert()).unwrap();
        let admin = std::fs::read(p.client_cert("admin")).unwrap();
        std::fs::remove_file(p.server_cert()).unwrap();
        assert_eq!(ensure_with(&p, &[]).unwrap(), Made::ServerCert);
        assert_eq!(std::fs::read(p.ca_cert()).unwrap(), ca);
        assert_eq!(std::fs::read(p.client_cert("admin")).unwrap(), admin);
        let names = renew_server_cert(&p, &["10.0.0.7".into()]).unwrap();
        assert_eq!(std::fs::read(p.ca_cert()).unwrap(), ca);
        assert_eq!(certificate_names(&p.server_cert()).unwrap(), names);
        assert!(names.contains(&"10.0.0.7".to_owned()), "{names:?}");
        assert!(days_left(&p.server_cert()).unwrap() >= 824);
        // the CA's key gone: nothing is made over the rest
        std::fs::remove_file(p.ca_key()).unwrap();
        std::fs::remove_file(p.server_cert()).unwrap();
        assert!(matches!(
            ensure_with(&p, &[]),
            Err(PkiError::Incomplete { .. })
        ));
        assert_eq!(std::fs::read(p.ca_cert()).unwrap(), ca);
    }

    #[test]
    fn subject_alternative_names_are_checked() {
        for good in [
            "kmip.example.com",
            "10.1.2.3",
            "fe80::1",
            "*.example.com",
            "host-1",
        ] {
            check_san(good).unwrap();
        }
        for bad in ["", "a..b", "-a.com", "a b", "x/y", "*.", "a.*.com"] {
            assert!(check_san(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/var/lib/kmip-server"), "/var/lib/kmip-server");
        assert_eq!(shell_quote("/tmp/my data"), "'/tmp/my data'");
        assert_eq!(shell_quote(""), "''");
        // what the shell reads back is the word itself
        for w in ["it's $HOME", "a\"b`c`", "x;rm -rf ~", "tab\there"] {
            assert_eq!(
                shlex::split(&shell_quote(w)),
                Some(vec![w.to_owned()]),
                "{w}"
            );
        }
    }

    #[test]
    fn generated_chain_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let p = Paths::new(dir.path());
        assert!(ensure(&p).unwrap());
        assert!(!ensure(&p).unwrap(), "second start keeps the material");
        let ca = X509::from_pem(&std::fs::read(p.ca_cert()).unwrap()).unwrap();
        let mut store = X509StoreBuilder::new().unwrap();
        store.add_cert(ca).unwrap();
        let store = store.build();
        for path in [p.server_cert(), p.client_cert("admin")] {
            let cert = X509::from_pem(&std::fs::read(&path).unwrap()).unwrap();
            let mut ctx = X509StoreContext::new().unwrap();
            let ok = ctx
                .init(&store, &cert, &Stack::new().unwrap(), |c| c.verify_cert())
                .unwrap();
            assert!(ok, "{}", path.display());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for k in [p.ca_key(), p.server_key(), p.client_key("admin")] {
                assert_eq!(
                    std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
                    0o600
                );
            }
        }
    }
}
