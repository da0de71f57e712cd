//! Who may do what: the KMIP Authentication credential on top of the client certificate.
//!
//! The certificate authenticates the connection; its identity (the CN) is who a request acts
//! as. A Username and Password credential is then:
//! - for a username with a configured password (`--password NAME=HASH`): always verified; a
//!   wrong password is Authentication Not Successful. If the operator bound that username, on
//!   that certificate, to an identity (`--bind-user USERNAME@CERTIFICATE=IDENTITY`), the
//!   request acts as that identity: a FortiGate logging in as `fg-client` over the
//!   certificate `fortigate-1` acts as whom the operator chose;
//! - for a username the server has no entry for: not an error (FortiOS sends its own KMIP
//!   user on every Locate); the request acts as the certificate's identity and its audit
//!   record says the credential was not verified.
//!
//! An identity with a configured password must send a Username and Password credential whose
//! username is its certificate's identity and whose password matches; an identity with a
//! configured device must send a Device credential with that Device Serial Number (and, when
//! one is configured, the device's password). Passwords are kept as scrypt hashes.

use crate::error::OpError;
use kmip_codec::message::Authentication;
use kmip_codec::vocab::enums::credential_type;
use kmip_codec::vocab::tag;
use kmip_codec::Ttlv;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// scrypt cost: N = 2^15, r = 8, p = 1 (32 MiB, tens of milliseconds).
const LOG_N: u8 = 15;
const R: u64 = 8;
const P: u64 = 1;

/// `scrypt$LOG_N$R$P$SALT$HASH` (hex) of a password.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt).map_err(|e| e.to_string())?;
    let hash = scrypt(password, &salt, LOG_N, R, P)?;
    Ok(format!(
        "scrypt${LOG_N}${R}${P}${}${}",
        kmip_codec::text::hex(&salt),
        kmip_codec::text::hex(&hash)
    ))
}

fn scrypt(password: &str, salt: &[u8], log_n: u8, r: u64, p: u64) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    let n = 1u64 << log_n;
    let maxmem = 128 * r * n * p + (1 << 20);
    openssl::pkcs5::scrypt(password.as_bytes(), salt, n, r, p, maxmem, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn verify(password: &str, stored: &str) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    let [alg, log_n, r, p, salt, hash] = parts.as_slice() else {
        return false;
    };
    let (Ok(log_n), Ok(r), Ok(p)) = (log_n.parse::<u8>(), r.parse::<u64>(), p.parse::<u64>())
    else {
        return false;
    };
    let (Some(salt), Some(hash)) = (kmip_codec::text::unhex(salt), kmip_codec::text::unhex(hash))
    else {
        return false;
    };
    *alg == "scrypt"
        && log_n <= 20
        && scrypt(password, &salt, log_n, r, p).is_ok_and(|h| openssl::memcmp::eq(&h, &hash))
}

/// A device an identity must present (KMIP Device credential).
struct Device {
    serial: String,
    /// scrypt hash of the device's password, when it has one.
    password: Option<String>,
}

/// Who a request acts as, after its credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The identity the request acts as: the certificate's, or a bound username's.
    pub identity: String,
    /// What the audit record says of the credential, when there is something to say.
    pub note: Option<String>,
}

/// Failed password checks in a row that cost nothing more; each further one doubles the wait
/// before the next attempt is even checked (1 s, 2 s, 4 s, ... at most [`MAX_BACKOFF`]).
pub const FREE_FAILURES: u32 = 3;
pub const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);
/// scrypts verified at once (each 32 MiB and tens of milliseconds of a core): wrong passwords
/// sent in parallel queue here instead of taking every core from other clients.
pub const SCRYPT_AT_ONCE: usize = 2;

static SCRYPTS: Slots = Slots::new(SCRYPT_AT_ONCE);

/// A counting semaphore for blocking threads.
struct Slots {
    used: Mutex<usize>,
    freed: std::sync::Condvar,
    max: usize,
}

struct Slot<'a>(&'a Slots);

impl Slots {
    const fn new(max: usize) -> Slots {
        Slots {
            used: Mutex::new(0),
            freed: std::sync::Condvar::new(),
            max,
        }
    }

    fn acquire(&self) -> Slot<'_> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used >= self.max {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut used = self.0.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= 1;
        self.0.freed.notify_one();
    }
}

/// Failures in a row, and until when the next attempt is refused, per certificate and per
/// configured user. Its size is bounded by the certificates the CA issued and the users
/// configured: unknown usernames never reach a password check.
#[derive(Default)]
struct Throttle {
    failures: Mutex<HashMap<String, (u32, std::time::Instant)>>,
}

impl Throttle {
    fn blocked(&self, who: &[String]) -> bool {
        let now = std::time::Instant::now();
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        who.iter()
            .any(|w| f.get(w).is_some_and(|(_, until)| *until > now))
    }

    fn failed(&self, who: &[String]) {
        let now = std::time::Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for w in who {
            let e = f.entry(w.clone()).or_insert((0, now));
            e.0 += 1;
            if e.0 >= FREE_FAILURES {
                let wait = std::time::Duration::from_secs(1 << (e.0 - FREE_FAILURES).min(5));
                e.1 = now + wait.min(MAX_BACKOFF);
            }
        }
    }

    fn succeeded(&self, who: &[String]) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for w in who {
            f.remove(w);
        }
    }
}

/// The configured passwords and devices, by identity.
#[derive(Default)]
pub struct Credentials {
    throttle: Throttle,
    by_identity: HashMap<String, String>,
    /// (username, certificate identity) -> the identity the request acts as.
    bindings: HashMap<(String, String), String>,
    devices: HashMap<String, Device>,
    /// SHA-256 of (identity, password, hash) triples already verified, so that a client sending
    /// its credential on every message does not pay scrypt every time.
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl Credentials {
    /// From `IDENTITY=HASH` entries.
    pub fn parse(entries: &[String]) -> Result<Credentials, String> {
        let mut by_identity = HashMap::new();
        for e in entries {
            let (id, hash) = e
                .split_once('=')
                .ok_or_else(|| format!("password entry {e:?} is not IDENTITY=HASH"))?;
            if !hash.starts_with("scrypt$") {
                return Err(format!(
                    "password of {id:?} is not an scrypt hash (use kmip-server hash-password)"
                ));
            }
            by_identity.insert(id.to_owned(), hash.to_owned());
        }
        Ok(Credentials {
            throttle: Throttle::default(),
            by_identity,
            bindings: HashMap::new(),
            devices: HashMap::new(),
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Add `USERNAME@CERTIFICATE=IDENTITY` bindings; each username needs a configured password.
    pub fn with_bindings(mut self, entries: &[String]) -> Result<Credentials, String> {
        for e in entries {
            let bad = || format!("user binding {e:?} is not USERNAME@CERTIFICATE=IDENTITY");
            let (who, identity) = e.split_once('=').ok_or_else(bad)?;
            let (user, cert) = who.rsplit_once('@').ok_or_else(bad)?;
            if user.is_empty() || cert.is_empty() || identity.is_empty() {
                return Err(bad());
            }
            if !self.by_identity.contains_key(user) {
                return Err(format!(
                    "user binding {e:?}: {user:?} has no --password, so it could not be verified"
                ));
            }
            self.bindings
                .insert((user.to_owned(), cert.to_owned()), identity.to_owned());
        }
        Ok(self)
    }

    /// Add `IDENTITY=SERIAL` or `IDENTITY=SERIAL:HASH` device entries.
    pub fn with_devices(mut self, entries: &[String]) -> Result<Credentials, String> {
        for e in entries {
            let (id, rest) = e
                .split_once('=')
                .ok_or_else(|| format!("device entry {e:?} is not IDENTITY=SERIAL[:HASH]"))?;
            let (serial, password) = match rest.split_once(':') {
                Some((s, h)) if h.starts_with("scrypt$") => (s, Some(h.to_owned())),
                Some(_) => {
                    return Err(format!(
                        "device of {id:?}: the password must be an scrypt hash"
                    ))
                }
                None => (rest, None),
            };
            if serial.is_empty() {
                return Err(format!("device of {id:?} has no serial number"));
            }
            self.devices.insert(
                id.to_owned(),
                Device {
                    serial: serial.to_owned(),
                    password,
                },
            );
        }
        Ok(self)
    }

    /// Whether `password` matches `stored` (scrypt), remembering successes. `who` names the
    /// certificate and the user: after [`FREE_FAILURES`] failures in a row of either, further
    /// attempts are refused at once, without an scrypt, until a backoff has passed (a password
    /// already verified still passes: it costs nothing, and an attacker hammering a user must
    /// not lock out its device). At most [`SCRYPT_AT_ONCE`] scrypts run at a time.
    fn password_ok(
        &self,
        who: &[String],
        identity: &str,
        password: &str,
        stored: &str,
    ) -> Result<bool, OpError> {
        let mut key = Vec::with_capacity(identity.len() + password.len() + stored.len() + 3);
        for part in [identity, password, stored] {
            key.extend_from_slice(part.as_bytes());
            key.push(0);
        }
        let digest = lifecycle::core::sha256(&key);
        if self
            .verified
            .lock()
            .map(|s| s.contains(&digest))
            .unwrap_or(false)
        {
            return Ok(true);
        }
        if self.throttle.blocked(who) {
            return Err(OpError::AuthenticationFailed(
                "too many failed attempts: try again later".into(),
            ));
        }
        let ok = {
            let _slot = SCRYPTS.acquire();
            verify(password, stored)
        };
        if !ok {
            self.throttle.failed(who);
            return Ok(false);
        }
        self.throttle.succeeded(who);
        if let Ok(mut s) = self.verified.lock() {
            s.insert(digest);
        }
        Ok(true)
    }

    /// Check a request's Authentication for the certificate identity `identity`: who the
    /// request acts as, or why it is refused.
    pub fn check(&self, identity: &str, auth: Option<&Authentication>) -> Result<Verdict, OpError> {
        let denied = |m: &str| OpError::AuthenticationFailed(m.into());
        let credentials = auth.map(|a| a.credential.as_slice()).unwrap_or(&[]);
        let (mut password_given, mut device_given) = (false, false);
        let mut verdict = Verdict {
            identity: identity.to_owned(),
            note: None,
        };
        for c in credentials {
            let v: &Ttlv = &c.credential_value.0;
            let text = |t| v.child(t).and_then(Ttlv::as_text).unwrap_or("");
            match c.credential_type.0 .0 {
                credential_type::USERNAME_AND_PASSWORD => {
                    let user = text(tag::USERNAME);
                    let Some(stored) = self.by_identity.get(user) else {
                        verdict.note = Some(format!(
                            "credential of user {user:?} not verified (no such user): acting as \
                             the certificate's identity"
                        ));
                        continue;
                    };
                    let who = [format!("certificate {identity}"), format!("user {user}")];
                    if !self.password_ok(&who, user, text(tag::PASSWORD), stored)? {
                        return Err(denied("wrong password"));
                    }
                    if user == identity {
                        password_given = true;
                    }
                    let bound = self.bindings.get(&(user.to_owned(), identity.to_owned()));
                    verdict.note = Some(match bound {
                        Some(to) => {
                            verdict.identity = to.clone();
                            format!("user {user:?} verified, bound to {to:?} on this certificate")
                        }
                        None => format!("user {user:?} verified"),
                    });
                }
                credential_type::DEVICE => {
                    let Some(device) = self.devices.get(identity) else {
                        return Err(denied("no device is configured for this identity"));
                    };
                    let serial = text(tag::DEVICE_SERIAL_NUMBER);
                    if serial.len() != device.serial.len()
                        || !openssl::memcmp::eq(serial.as_bytes(), device.serial.as_bytes())
                    {
                        return Err(denied("wrong device"));
                    }
                    if let Some(stored) = &device.password {
                        let who = [format!("certificate {identity}")];
                        if !self.password_ok(&who, identity, text(tag::PASSWORD), stored)? {
                            return Err(denied("wrong device password"));
                        }
                    }
                    device_given = true;
                }
                _ => {
                    return Err(denied(
                        "only Username and Password and Device credentials are supported",
                    ))
                }
            }
        }
        if self.by_identity.contains_key(identity) && !password_given {
            return Err(denied("this identity must authenticate with its password"));
        }
        if self.devices.contains_key(identity) && !device_given {
            return Err(denied("this identity must present its device"));
        }
        Ok(verdict)
    }
}

/// An operation by its KMIP XML name ("Get", "Encrypt") or one of ours ("Grant", "ListGrants"):
/// the server's table first, then any operation KMIP names.
pub fn operation_by_name(name: &str) -> Option<u32> {
    crate::ops::by_name(name).map(|o| o.code).or_else(|| {
        kmip_codec::vocab::enum_def("Operation")?
            .by_xml(name)
            .map(|e| e.value)
    })
}

/// `IDENTITY=Op Op ...` entries: the operations each identity is limited to.
pub fn parse_policies(entries: &[String]) -> Result<HashMap<String, Vec<u32>>, String> {
    let mut out = HashMap::new();
    for e in entries {
        let (id, ops) = e
            .split_once('=')
            .ok_or_else(|| format!("policy {e:?} is not IDENTITY=Operation Operation ..."))?;
        let ops = ops
            .split_whitespace()
            .map(|o| {
                operation_by_name(o)
                    .ok_or_else(|| format!("policy of {id:?}: unknown operation {o:?}"))
            })
            .collect::<Result<Vec<u32>, String>>()?;
        out.insert(id.to_owned(), ops);
    }
    Ok(out)
}

/// Per identity, the object groups it was given: (Object Group, operations).
pub type GroupGrants = HashMap<String, Vec<(String, Vec<u32>)>>;

/// `GROUP=IDENTITY:Op Op ...` entries: identities given every object of an Object Group, for
/// those operations (a tenant gets its group).
pub fn parse_group_grants(entries: &[String]) -> Result<GroupGrants, String> {
    let mut out = GroupGrants::new();
    for e in entries {
        let bad = || format!("group grant {e:?} is not GROUP=IDENTITY:Operation Operation ...");
        let (group, rest) = e.split_once('=').ok_or_else(bad)?;
        let (identity, ops) = rest.split_once(':').ok_or_else(bad)?;
        let ops = ops
            .split_whitespace()
            .map(|o| {
                operation_by_name(o)
                    .ok_or_else(|| format!("group grant {group:?}: unknown operation {o:?}"))
            })
            .collect::<Result<Vec<u32>, String>>()?;
        out.entry(identity.to_owned())
            .or_default()
            .push((group.to_owned(), ops));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmip_codec::message::{Credential, Enum, Req};
    use kmip_codec::vocab::enums::result_reason as rr;
    use kmip_codec::Value;

    fn auth(user: &str, pw: &str) -> Authentication {
        Authentication {
            credential: vec![Credential {
                credential_type: Req(Enum(credential_type::USERNAME_AND_PASSWORD)),
                credential_value: Req(Ttlv::structure(
                    tag::CREDENTIAL_VALUE,
                    vec![
                        Ttlv::new(tag::USERNAME, Value::TextString(user.into())),
                        Ttlv::new(tag::PASSWORD, Value::TextString(pw.into())),
                    ],
                )),
            }],
        }
    }

    fn device(serial: &str, pw: Option<&str>) -> Authentication {
        let mut v = vec![Ttlv::new(
            tag::DEVICE_SERIAL_NUMBER,
            Value::TextString(serial.into()),
        )];
        if let Some(p) = pw {
            v.push(Ttlv::new(tag::PASSWORD, Value::TextString(p.into())));
        }
        Authentication {
            credential: vec![Credential {
                credential_type: Req(Enum(credential_type::DEVICE)),
                credential_value: Req(Ttlv::structure(tag::CREDENTIAL_VALUE, v)),
            }],
        }
    }

    #[test]
    fn devices() {
        let h = hash_password("pin").unwrap();
        let c = Credentials::parse(&[])
            .unwrap()
            .with_devices(&["array=SN-1234".into(), format!("tape=SN-9:{h}")])
            .unwrap();
        let reason = |r: Result<Verdict, OpError>| r.unwrap_err().reason();
        assert!(c.check("array", Some(&device("SN-1234", None))).is_ok());
        assert_eq!(
            reason(c.check("array", Some(&device("SN-1235", None)))),
            rr::AUTHENTICATION_NOT_SUCCESSFUL
        );
        assert_eq!(
            reason(c.check("array", None)),
            rr::AUTHENTICATION_NOT_SUCCESSFUL,
            "required"
        );
        assert!(c.check("tape", Some(&device("SN-9", Some("pin")))).is_ok());
        assert_eq!(
            reason(c.check("tape", Some(&device("SN-9", Some("nip"))))),
            rr::AUTHENTICATION_NOT_SUCCESSFUL
        );
        assert_eq!(
            reason(c.check("other", Some(&device("SN-1234", None)))),
            rr::AUTHENTICATION_NOT_SUCCESSFUL,
            "a device credential is never ignored"
        );
        assert!(Credentials::parse(&[])
            .unwrap()
            .with_devices(&["x=SN:plain".into()])
            .is_err());
    }

    #[test]
    fn passwords() {
        let h = hash_password("s3cret").unwrap();
        assert!(!h.contains("s3cret"));
        let c = Credentials::parse(&[format!("alice={h}")]).unwrap();
        assert!(c.check("alice", Some(&auth("alice", "s3cret"))).is_ok());
        assert!(
            c.check("alice", Some(&auth("alice", "s3cret"))).is_ok(),
            "cached"
        );
        let reason = |r: Result<Verdict, OpError>| r.unwrap_err().reason();
        assert_eq!(
            reason(c.check("alice", Some(&auth("alice", "wrong")))),
            rr::AUTHENTICATION_NOT_SUCCESSFUL
        );
        assert_eq!(
            reason(c.check("alice", None)),
            rr::AUTHENTICATION_NOT_SUCCESSFUL,
            "required"
        );
        assert_eq!(
            reason(c.check("alice", Some(&auth("bob", "s3cret")))),
            rr::AUTHENTICATION_NOT_SUCCESSFUL
        );
        assert!(
            c.check("bob", None).is_ok(),
            "no password configured, none sent"
        );
        // a user the server has no entry for: not verified, acts as the certificate
        let v = c.check("bob", Some(&auth("fg-client", "x"))).unwrap();
        assert_eq!(v.identity, "bob");
        assert!(v.note.unwrap().contains("not verified"));
        // a configured user is always verified, whoever's certificate carries it
        assert_eq!(
            reason(c.check("bob", Some(&auth("alice", "x")))),
            rr::AUTHENTICATION_NOT_SUCCESSFUL
        );
        assert!(Credentials::parse(&["alice=plaintext".into()]).is_err());
    }

    #[test]
    fn failed_passwords_are_throttled() {
        let h = hash_password("right").unwrap();
        let c = Credentials::parse(&[format!("alice={h}")]).unwrap();
        let reason = |r: Result<Verdict, OpError>| r.map(|_| ()).map_err(|e| e.to_string());
        for _ in 0..FREE_FAILURES {
            assert_eq!(
                reason(c.check("alice", Some(&auth("alice", "wrong")))),
                Err("wrong password".into())
            );
        }
        // now even the right password waits out the backoff, without an scrypt
        let t = std::time::Instant::now();
        let e = reason(c.check("alice", Some(&auth("alice", "right")))).unwrap_err();
        assert!(e.contains("too many failed attempts"), "{e}");
        assert!(
            t.elapsed() < std::time::Duration::from_millis(20),
            "no scrypt"
        );
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(c.check("alice", Some(&auth("alice", "right"))).is_ok());
        // verified once, a password passes at once even while others hammer the user
        for _ in 0..FREE_FAILURES {
            let _ = c.check("stolen", Some(&auth("alice", "guess")));
        }
        assert!(c.check("alice", Some(&auth("alice", "right"))).is_ok());
    }

    #[test]
    fn a_bound_user_acts_as_the_identity_the_operator_chose() {
        let h = hash_password("fortinet").unwrap();
        let c = Credentials::parse(&[format!("fg-client={h}")])
            .unwrap()
            .with_bindings(&["fg-client@fortigate-1=firewalls".into()])
            .unwrap();
        let v = c
            .check("fortigate-1", Some(&auth("fg-client", "fortinet")))
            .unwrap();
        assert_eq!(v.identity, "firewalls");
        // on another certificate the binding does not apply
        let v = c
            .check("laptop", Some(&auth("fg-client", "fortinet")))
            .unwrap();
        assert_eq!(v.identity, "laptop");
        assert_eq!(
            c.check("fortigate-1", Some(&auth("fg-client", "guess")))
                .unwrap_err()
                .reason(),
            rr::AUTHENTICATION_NOT_SUCCESSFUL
        );
        assert!(Credentials::parse(&[])
            .unwrap()
            .with_bindings(&["nobody@x=y".into()])
            .is_err());
    }
}
