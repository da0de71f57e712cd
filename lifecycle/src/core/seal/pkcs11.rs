//! The master key sealed by an AES key that never leaves a PKCS#11 token (an HSM, or SoftHSM2
//! in tests). The data directory keeps only `master.sealed`: the master key encrypted with
//! CKM_AES_GCM under the token's key, the IV the token used, and the check value. Every start
//! asks the token to decrypt it once; objects are then sealed in process, with no token round
//! trip per request.
//!
//! The token is found by label (slot numbers are reassigned when tokens come and go), and so is
//! its key; the server creates the key (AES-256, sensitive, not extractable, encrypt and
//! decrypt only) the first time, when the token has none of that label.

use super::{write_atomic, MasterKey, Seal, SealError};
use super::{CHECK_FILE, KEY_FILE, SEALED_FILE};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Bound into every seal: SoftHSM aborts on GCM with empty associated data, and the format
/// version in it means a later format can never be mistaken for this one.
const AAD: &[u8] = b"kmip-server master key seal, format 1";
const FORMAT: &str = "1";
const IV_LEN: usize = 12;
const TAG_BITS: u64 = 128;

/// Where the token and its key are, as the options name them.
#[derive(Clone, Debug)]
pub struct Pkcs11Options {
    /// The PKCS#11 module (a shared library).
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// A file that holds the user PIN (one line).
    pub pin_file: PathBuf,
    /// The label of the token's AES key that seals the master key.
    pub key: String,
}

/// The master key sealed under an AES key of a PKCS#11 token, in `master.sealed`.
pub struct Pkcs11Seal {
    // an Option only so that Drop can finalize the module, which takes it by value
    ctx: Option<Pkcs11>,
    slot: Slot,
    pin: AuthPin,
    token: String,
    key: String,
    sealed: PathBuf,
    key_file: PathBuf,
    check_file: PathBuf,
}

fn token_err(option: &'static str, reason: impl Into<String>) -> SealError {
    SealError::Token {
        option,
        reason: reason.into(),
    }
}

/// The PIN from its file: read once, first line, kept only in zeroizing buffers. A file others
/// may read is refused, as OpenSSH refuses such a private key.
fn read_pin(path: &Path) -> Result<AuthPin, SealError> {
    let cfg = |reason: String| SealError::Config {
        option: "--pkcs11-pin-file",
        reason,
    };
    let bytes =
        Zeroizing::new(std::fs::read(path).map_err(|e| cfg(format!("{}: {e}", path.display())))?);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| cfg(format!("{}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o007 != 0 {
            return Err(cfg(format!(
                "{} may be read by other users (mode {:o}): chmod o-rwx it",
                path.display(),
                mode & 0o777
            )));
        }
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| cfg(format!("{}: the PIN is not UTF-8 text", path.display())))?;
    let pin = text.lines().next().unwrap_or("");
    if pin.is_empty() {
        return Err(cfg(format!("{}: no PIN in the file", path.display())));
    }
    Ok(AuthPin::from(pin))
}

impl Pkcs11Seal {
    /// Load the module, find the token and read the PIN; nothing is asked of the token yet.
    pub fn new(data_dir: &Path, opts: &Pkcs11Options) -> Result<Pkcs11Seal, SealError> {
        for (option, value) in [("--pkcs11-token", &opts.token), ("--pkcs11-key", &opts.key)] {
            if value.is_empty() || value.contains(['\n', '\r']) {
                return Err(SealError::Config {
                    option,
                    reason: "a label of one line, not empty".into(),
                });
            }
        }
        let pin = read_pin(&opts.pin_file)?;
        let ctx = Pkcs11::new(&opts.module).map_err(|e| {
            token_err(
                "--pkcs11-module",
                format!("cannot load {}: {e}", opts.module.display()),
            )
        })?;
        ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(|e| {
                token_err(
                    "--pkcs11-module",
                    format!("{}: C_Initialize failed: {e}", opts.module.display()),
                )
            })?;
        let slots = ctx
            .get_slots_with_initialized_token()
            .map_err(|e| token_err("--pkcs11-module", format!("listing the tokens: {e}")))?;
        let mut labels = Vec::new();
        let mut found = None;
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(|e| token_err("--pkcs11-module", format!("reading a token: {e}")))?;
            let label = info.label().trim_end().to_owned();
            if label == opts.token {
                if found.is_some() {
                    return Err(token_err(
                        "--pkcs11-token",
                        format!("more than one token is labelled {:?}", opts.token),
                    ));
                }
                found = Some(slot);
            }
            labels.push(label);
        }
        let slot = found.ok_or_else(|| {
            token_err(
                "--pkcs11-token",
                format!(
                    "no token labelled {:?} in {} (tokens present: {})",
                    opts.token,
                    opts.module.display(),
                    if labels.is_empty() {
                        "none".to_owned()
                    } else {
                        labels
                            .iter()
                            .map(|l| format!("{l:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            )
        })?;
        Ok(Pkcs11Seal {
            ctx: Some(ctx),
            slot,
            pin,
            token: opts.token.clone(),
            key: opts.key.clone(),
            sealed: data_dir.join(SEALED_FILE),
            key_file: data_dir.join(KEY_FILE),
            check_file: data_dir.join(CHECK_FILE),
        })
    }

    fn session(&self, rw: bool) -> Result<Session, SealError> {
        let ctx = self
            .ctx
            .as_ref()
            .ok_or_else(|| token_err("--pkcs11-module", "finalized"))?;
        let session = if rw {
            ctx.open_rw_session(self.slot)
        } else {
            ctx.open_ro_session(self.slot)
        }
        .map_err(|e| {
            token_err(
                "--pkcs11-token",
                format!("cannot open a session on token {:?}: {e}", self.token),
            )
        })?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(CkError::Pkcs11(
                RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
                _,
            )) => Err(token_err(
                "--pkcs11-pin-file",
                format!("token {:?} refused the PIN (a wrong PIN)", self.token),
            )),
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(token_err(
                "--pkcs11-pin-file",
                format!(
                    "the user PIN of token {:?} is locked (too many wrong PINs)",
                    self.token
                ),
            )),
            Err(e) => Err(token_err(
                "--pkcs11-pin-file",
                format!("login to token {:?} failed: {e}", self.token),
            )),
        }
    }

    /// The token's AES key of the configured label, if there is exactly one.
    fn find_key(&self, session: &Session) -> Result<Option<ObjectHandle>, SealError> {
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Label(self.key.as_bytes().to_vec()),
            ])
            .map_err(|e| token_err("--pkcs11-key", format!("searching the token: {e}")))?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            more => Err(token_err(
                "--pkcs11-key",
                format!(
                    "{} AES keys on token {:?} are labelled {:?}: which one seals is ambiguous",
                    more.len(),
                    self.token,
                    self.key
                ),
            )),
        }
    }

    /// A key the server is to trust with the master key must not be able to leave the token.
    fn refuse_extractable(&self, session: &Session, key: ObjectHandle) -> Result<(), SealError> {
        let attrs = session
            .get_attributes(key, &[AttributeType::Extractable, AttributeType::Sensitive])
            .map_err(|e| token_err("--pkcs11-key", format!("reading the key: {e}")))?;
        let leaks = attrs.iter().any(|a| {
            matches!(a, Attribute::Extractable(true)) || matches!(a, Attribute::Sensitive(false))
        });
        if leaks {
            return Err(token_err(
                "--pkcs11-key",
                format!(
                    "the key {:?} on token {:?} is extractable or not sensitive: the master key \
                     would be only as safe as every copy of it. Create it with CKA_SENSITIVE \
                     true and CKA_EXTRACTABLE false, or choose a label the server will create",
                    self.key, self.token
                ),
            ));
        }
        Ok(())
    }

    fn create_key(&self, session: &Session) -> Result<ObjectHandle, SealError> {
        session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Label(self.key.as_bytes().to_vec()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Wrap(false),
                    Attribute::Unwrap(false),
                    Attribute::Sign(false),
                    Attribute::Verify(false),
                    Attribute::Derive(false),
                ],
            )
            .map_err(|e| {
                token_err(
                    "--pkcs11-key",
                    format!(
                        "cannot create the AES key {:?} on token {:?}: {e}",
                        self.key, self.token
                    ),
                )
            })
    }

    fn decrypt(
        &self,
        session: &Session,
        key: ObjectHandle,
        iv: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CkError> {
        let mut iv = iv.to_vec();
        let params = GcmParams::new(&mut iv, AAD, TAG_BITS.into())?;
        session
            .decrypt(&Mechanism::AesGcm(params), key, sealed)
            .map(Zeroizing::new)
    }
}

impl Drop for Pkcs11Seal {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            // nothing to do about a module that fails to finalize as the seal goes away
            let _ = ctx.finalize();
        }
    }
}

/// `master.sealed`: `name = value` lines (binary values in hex), so that an operator can see
/// what seals the key without any tool.
struct SealedFile {
    token: String,
    key: String,
    iv: Vec<u8>,
    sealed: Vec<u8>,
    check: Vec<u8>,
}

impl SealedFile {
    fn to_text(&self) -> String {
        format!(
            "# kmip-server master key, sealed by a PKCS#11 token: nothing opens it but that token's key\n\
             format = {FORMAT}\nmechanism = CKM_AES_GCM\ntoken = {}\nkey = {}\niv = {}\nsealed = {}\ncheck = {}\n",
            self.token,
            self.key,
            kmip_codec::text::hex(&self.iv),
            kmip_codec::text::hex(&self.sealed),
            kmip_codec::text::hex(&self.check),
        )
    }

    fn parse(path: &Path, text: &str) -> Result<SealedFile, SealError> {
        let bad = |what: &str| SealError::file(path, format!("not a sealed master key: {what}"));
        let field = |name: &str| -> Result<&str, SealError> {
            text.lines()
                .filter_map(|l| l.split_once(" = "))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
                .ok_or_else(|| bad(&format!("no {name}")))
        };
        let hex = |name: &str| -> Result<Vec<u8>, SealError> {
            kmip_codec::text::unhex(field(name)?).ok_or_else(|| bad(&format!("{name} is not hex")))
        };
        let format = field("format")?;
        if format != FORMAT {
            return Err(bad(&format!(
                "format {format}, this server reads format {FORMAT}"
            )));
        }
        if field("mechanism")? != "CKM_AES_GCM" {
            return Err(bad("a mechanism other than CKM_AES_GCM"));
        }
        Ok(SealedFile {
            token: field("token")?.to_owned(),
            key: field("key")?.to_owned(),
            iv: hex("iv")?,
            sealed: hex("sealed")?,
            check: hex("check")?,
        })
    }

    fn read(path: &Path) -> Result<SealedFile, SealError> {
        let text = std::fs::read_to_string(path).map_err(|e| SealError::file(path, e))?;
        SealedFile::parse(path, &text)
    }
}

impl Seal for Pkcs11Seal {
    fn describe(&self) -> String {
        format!(
            "PKCS#11 key {:?} on token {:?}, sealed in {}",
            self.key,
            self.token,
            self.sealed.display()
        )
    }

    fn is_sealed(&self) -> Result<bool, SealError> {
        if self.sealed.exists() {
            return Ok(true);
        }
        if self.key_file.exists() {
            return Err(SealError::OtherCustody(format!(
                "{} holds this data directory's master key as a key file (--seal file): it is \
                 not moved into a token by starting with --seal pkcs11",
                self.key_file.display()
            )));
        }
        if self.check_file.exists() {
            return Err(SealError::OtherCustody(format!(
                "{} says this data directory has a master key, kept as Shamir shares \
                 (--unseal-share) or in a key file that is missing; --seal pkcs11 would seal \
                 a new one and lose every object",
                self.check_file.display()
            )));
        }
        Ok(false)
    }

    fn seal(&self, master: &MasterKey) -> Result<(), SealError> {
        let session = self.session(true)?;
        let key = match self.find_key(&session)? {
            Some(k) => {
                self.refuse_extractable(&session, k)?;
                k
            }
            None => self.create_key(&session)?,
        };
        let mut iv = [0u8; IV_LEN];
        openssl::rand::rand_bytes(&mut iv).map_err(super::CoreError::from)?;
        let params = GcmParams::new(&mut iv, AAD, TAG_BITS.into())
            .map_err(|e| token_err("--pkcs11-key", e.to_string()))?;
        let sealed = session
            .encrypt(&Mechanism::AesGcm(params), key, master.0.as_ref())
            .map_err(|e| {
                token_err(
                    "--pkcs11-key",
                    format!(
                        "CKM_AES_GCM under key {:?} on token {:?} failed: {e}",
                        self.key, self.token
                    ),
                )
            })?;
        // `iv` now holds the IV the token used, which some tokens choose themselves; what is
        // kept must open before anything is sealed under the master key
        let back = self.decrypt(&session, key, &iv, &sealed).map_err(|e| {
            token_err(
                "--pkcs11-key",
                format!("the token does not decrypt what it just sealed: {e}"),
            )
        })?;
        if back.as_slice() != master.0.as_ref() {
            return Err(token_err(
                "--pkcs11-key",
                "the token decrypts what it just sealed to something else",
            ));
        }
        let file = SealedFile {
            token: self.token.clone(),
            key: self.key.clone(),
            iv: iv.to_vec(),
            sealed,
            check: master.check_value()?,
        };
        write_atomic(&self.sealed, file.to_text().as_bytes(), true)
    }

    fn unseal(&self) -> Result<MasterKey, SealError> {
        let file = SealedFile::read(&self.sealed)?;
        let recorded = if file.key != self.key || file.token != self.token {
            format!(" (it records key {:?} on token {:?})", file.key, file.token)
        } else {
            String::new()
        };
        let session = self.session(false)?;
        let key = self.find_key(&session)?.ok_or_else(|| {
            token_err(
                "--pkcs11-key",
                format!(
                    "token {:?} has no AES key labelled {:?}, and {} was sealed under one{recorded}: \
                     the key was deleted, or this is another token",
                    self.token,
                    self.key,
                    self.sealed.display()
                ),
            )
        })?;
        let plain = match self.decrypt(&session, key, &file.iv, &file.sealed) {
            Ok(p) => p,
            Err(CkError::Pkcs11(_, cryptoki::context::Function::Decrypt)) => {
                return Err(SealError::WrongKey(format!(
                    "{} does not open under key {:?} on token {:?} (--pkcs11-key, \
                     --pkcs11-token): it was sealed under another key{recorded}",
                    self.sealed.display(),
                    self.key,
                    self.token
                )))
            }
            Err(e) => {
                return Err(token_err(
                    "--pkcs11-key",
                    format!("decrypting {}: {e}", self.sealed.display()),
                ))
            }
        };
        MasterKey::from_bytes(&plain)
            .map_err(|_| SealError::file(&self.sealed, "does not hold a 32-byte master key"))
    }

    fn check(&self, key: &MasterKey) -> Result<(), SealError> {
        let file = SealedFile::read(&self.sealed)?;
        if key.check(&file.check) {
            Ok(())
        } else {
            Err(SealError::WrongKey(format!(
                "the master key sealed in {} fails its check value",
                self.sealed.display()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_file_round_trips_and_refuses_other_formats() {
        let f = SealedFile {
            token: "t".into(),
            key: "k v".into(),
            iv: vec![1; 12],
            sealed: vec![2; 48],
            check: vec![3; 40],
        };
        let p = Path::new("master.sealed");
        let back = SealedFile::parse(p, &f.to_text()).unwrap();
        assert_eq!(
            (back.token.as_str(), back.key.as_str(), back.iv, back.sealed),
            ("t", "k v", vec![1; 12], vec![2; 48])
        );
        let v2 = f.to_text().replace("format = 1", "format = 2");
        assert!(SealedFile::parse(p, &v2).is_err());
        assert!(SealedFile::parse(p, "garbage").is_err());
    }

    #[test]
    fn the_pin_file_is_private_and_holds_a_pin() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        let mode = |m| std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        std::fs::write(&p, "1234\n").unwrap();
        mode(0o644);
        let e = read_pin(&p).err().unwrap().to_string();
        assert!(
            e.contains("--pkcs11-pin-file") && e.contains("other users"),
            "{e}"
        );
        assert!(!e.contains("1234"), "{e}");
        mode(0o600);
        assert!(read_pin(&p).is_ok());
        std::fs::write(&p, "\n").unwrap();
        assert!(read_pin(&p).is_err());
        assert!(read_pin(&dir.path().join("absent")).is_err());
    }
}
