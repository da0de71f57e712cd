//! The master key and AES-256-GCM sealing of material at rest, and the custodies that keep the
//! master key between starts ([`Seal`]).
//!
//! Sealed format: `0x01 | nonce (12) | ciphertext | tag (16)`, associated data = the record's
//! identifier. The version byte lets a later release change the scheme.

mod file;
mod pkcs11;
mod rotate;
mod shares;

pub use file::FileSeal;
pub use pkcs11::{Pkcs11Options, Pkcs11Seal};
pub use rotate::{finish as finish_rotation, rotate, rotation_pending, Rotated, ROTATION_FILE};
pub use shares::{read_share_file, read_split, write_split, ShareSeal, Split};

use super::{CoreError, Secret};
use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use zeroize::Zeroizing;

const VERSION: u8 = 1;

/// AES-256-GCM fetched from the provider once: OpenSSL 3 otherwise looks the cipher up, under
/// locks, at every use, and every request unseals an object.
fn aes_gcm() -> Result<&'static Cipher, CoreError> {
    static C: OnceLock<Option<Cipher>> = OnceLock::new();
    C.get_or_init(|| Cipher::fetch(None, "AES-256-GCM", None).ok())
        .as_ref()
        .ok_or(CoreError::Crypto("AES-256-GCM"))
}
const NONCE: usize = 12;
const TAG: usize = 16;

/// The 256-bit key that seals every object. Never stored in the data file.
pub struct MasterKey(Zeroizing<[u8; 32]>, Option<Zeroizing<[u8; 32]>>, Contexts);

/// Cipher contexts holding the master key's schedule, ready for a nonce: setting the key up
/// (the AES schedule, OpenSSL's parameter lookups) cost a seal or an unseal more than its
/// cipher. They go with the key (OpenSSL cleanses a context it frees); a context that saw an
/// error is not reused.
#[derive(Default)]
struct Contexts {
    seal: Mutex<Vec<CipherCtx>>,
    unseal: Mutex<Vec<CipherCtx>>,
}

/// Contexts kept per direction: as many as threads seal or unseal at once, in practice.
const CONTEXTS_KEPT: usize = 64;

impl Contexts {
    fn take(pool: &Mutex<Vec<CipherCtx>>) -> Option<CipherCtx> {
        pool.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn give(pool: &Mutex<Vec<CipherCtx>>, ctx: CipherCtx) {
        let mut p = pool.lock().unwrap_or_else(|p| p.into_inner());
        if p.len() < CONTEXTS_KEPT {
            p.push(ctx);
        }
    }
}

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> Result<MasterKey, CoreError> {
        let mut k = Zeroizing::new([0u8; 32]);
        openssl::rand::rand_bytes(k.as_mut())?;
        Ok(MasterKey(k, None, Contexts::default()))
    }

    /// A master key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, CoreError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CoreError::Unsupported("a master key is 32 bytes".into()))?;
        Ok(MasterKey(Zeroizing::new(arr), None, Contexts::default()))
    }

    /// Read the key file, or create it (mode 0600, written before use) when it is absent.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, CoreError> {
        match file::read_key(path) {
            Err(SealError::Missing(_)) => {
                let key = MasterKey::generate()?;
                file::write_key(path, &key).map_err(|e| key_file_error(path, e))?;
                Ok(key)
            }
            r => r.map_err(|e| key_file_error(path, e)),
        }
    }

    #[cfg(test)]
    fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Split into `n` Shamir shares, any `m` of which rebuild this key.
    pub fn split(&self, m: u8, n: u8) -> Result<Vec<super::shamir::Share>, CoreError> {
        super::shamir::split(self.0.as_ref(), m, n)
    }

    /// Rebuild from shares. Too few shares rebuild a wrong key, which [`MasterKey::check`]
    /// rejects.
    pub fn from_shares(shares: &[super::shamir::Share]) -> Result<MasterKey, CoreError> {
        let bytes = super::shamir::combine(shares)?;
        MasterKey::from_bytes(&bytes)
    }

    /// A check value that proves knowledge of the key without revealing it: a seal of a fixed
    /// text, stored beside the data (never the key itself).
    pub fn check_value(&self) -> Result<Vec<u8>, CoreError> {
        self.seal(b"kmip-rs master key check", b"the master key is right")
    }

    /// Whether `check` was made by this key.
    pub fn check(&self, check: &[u8]) -> bool {
        self.unseal(b"kmip-rs master key check", check)
            .is_ok_and(|p| p.expose() == b"the master key is right")
    }

    /// A `len`-byte key for one purpose (the audit log's MAC and signing keys), derived with
    /// HKDF-SHA256 from the master key, `label` as the info: stable across restarts, different
    /// for every label, and no way back to the master key, which never leaves.
    ///
    /// Stable across master-key rotations too: the extracted HKDF key (the purpose root) of
    /// the first master key is carried to its successors (`master.purpose`, sealed under the
    /// current master key, see [`MasterKey::with_purpose_root`]), so that the audit log
    /// written before a rotation still verifies after it.
    pub(in crate::core) fn derive_purpose_key(
        &self,
        label: &[u8],
        len: usize,
    ) -> Result<Secret, CoreError> {
        let root = self.purpose_root()?;
        let fail = |_| CoreError::Crypto("HKDF");
        let mut ctx = openssl::pkey_ctx::PkeyCtx::new_id(openssl::pkey::Id::HKDF).map_err(fail)?;
        ctx.derive_init().map_err(fail)?;
        ctx.set_hkdf_mode(openssl::pkey_ctx::HkdfMode::EXPAND_ONLY)
            .map_err(fail)?;
        ctx.set_hkdf_md(openssl::md::Md::sha256()).map_err(fail)?;
        ctx.set_hkdf_key(root.as_ref()).map_err(fail)?;
        ctx.add_hkdf_info(label).map_err(fail)?;
        let mut out = Zeroizing::new(vec![0u8; len]);
        ctx.derive(Some(&mut out)).map_err(fail)?;
        Ok(Secret::new(std::mem::take(&mut *out)))
    }

    /// The HKDF pseudo-random key purpose keys are expanded from: the one carried over from a
    /// former master key, else this key's own (HKDF-Extract, the salt of releases before
    /// rotation, so that their purpose keys stay what they were).
    fn purpose_root(&self) -> Result<Zeroizing<[u8; 32]>, CoreError> {
        if let Some(r) = &self.1 {
            return Ok(r.clone());
        }
        let fail = |_| CoreError::Crypto("HKDF");
        let mut ctx = openssl::pkey_ctx::PkeyCtx::new_id(openssl::pkey::Id::HKDF).map_err(fail)?;
        ctx.derive_init().map_err(fail)?;
        ctx.set_hkdf_mode(openssl::pkey_ctx::HkdfMode::EXTRACT_ONLY)
            .map_err(fail)?;
        ctx.set_hkdf_md(openssl::md::Md::sha256()).map_err(fail)?;
        ctx.set_hkdf_salt(b"kmip-rs purpose key").map_err(fail)?;
        ctx.set_hkdf_key(self.0.as_ref()).map_err(fail)?;
        let mut out = Zeroizing::new([0u8; 32]);
        ctx.derive(Some(out.as_mut())).map_err(fail)?;
        Ok(out)
    }

    /// This key with the purpose root a rotation left in `data_dir` (`master.purpose`), if
    /// any: every holder of the master key derives the audit keys through it.
    pub fn with_purpose_root(mut self, data_dir: &Path) -> Result<MasterKey, SealError> {
        let path = data_dir.join(PURPOSE_FILE);
        match std::fs::read(&path) {
            Ok(sealed) => {
                let root = self.unseal(PURPOSE_AAD, &sealed).map_err(|_| {
                    SealError::WrongKey(format!(
                        "{} does not open under this master key",
                        path.display()
                    ))
                })?;
                if root.len() != 32 {
                    return Err(SealError::file(&path, "not a 32-byte purpose root"));
                }
                // filled in place: no copy of the root on the stack outlives this
                let mut arr = Zeroizing::new([0u8; 32]);
                arr.copy_from_slice(root.expose());
                self.1 = Some(arr);
                Ok(self)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(self),
            Err(e) => Err(SealError::file(&path, e)),
        }
    }

    /// A new master key that derives the same purpose keys as this one.
    fn successor(&self) -> Result<MasterKey, CoreError> {
        let mut next = MasterKey::generate()?;
        next.1 = Some(self.purpose_root()?);
        Ok(next)
    }

    pub(super) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CoreError> {
        let mut nonce = [0u8; NONCE];
        super::public_random(&mut nonce)?;
        let mut tag = [0u8; TAG];
        let mut ct = Vec::with_capacity(plaintext.len() + 16);
        let fail = |_| CoreError::Crypto("seal");
        let mut ctx = match Contexts::take(&self.2.seal) {
            Some(ctx) => ctx,
            None => {
                let mut ctx = CipherCtx::new().map_err(fail)?;
                ctx.encrypt_init(Some(aes_gcm()?), Some(self.0.as_ref()), None)
                    .map_err(fail)?;
                ctx
            }
        };
        ctx.encrypt_init(None, None, Some(&nonce)).map_err(fail)?;
        ctx.cipher_update(aad, None).map_err(fail)?;
        ctx.cipher_update_vec(plaintext, &mut ct).map_err(fail)?;
        ctx.cipher_final_vec(&mut ct).map_err(fail)?;
        ctx.tag(&mut tag).map_err(fail)?;
        Contexts::give(&self.2.seal, ctx);
        let mut out = Vec::with_capacity(1 + NONCE + ct.len() + TAG);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    pub(super) fn unseal(&self, aad: &[u8], sealed: &[u8]) -> Result<Secret, CoreError> {
        if sealed.len() < 1 + NONCE + TAG || sealed[0] != VERSION {
            return Err(CoreError::Unseal);
        }
        let nonce = &sealed[1..1 + NONCE];
        let (ct, tag) = sealed[1 + NONCE..].split_at(sealed.len() - 1 - NONCE - TAG);
        let fail = |_| CoreError::Unseal;
        let mut ctx = match Contexts::take(&self.2.unseal) {
            Some(ctx) => ctx,
            None => {
                let cipher = aes_gcm().map_err(|_| CoreError::Unseal)?;
                let mut ctx = CipherCtx::new().map_err(fail)?;
                ctx.decrypt_init(Some(cipher), Some(self.0.as_ref()), None)
                    .map_err(fail)?;
                ctx
            }
        };
        ctx.decrypt_init(None, None, Some(nonce)).map_err(fail)?;
        ctx.set_tag(tag).map_err(fail)?;
        ctx.cipher_update(aad, None).map_err(fail)?;
        let mut plain = Zeroizing::new(Vec::with_capacity(ct.len() + 16));
        ctx.cipher_update_vec(ct, &mut plain).map_err(fail)?;
        ctx.cipher_final_vec(&mut plain).map_err(fail)?;
        Contexts::give(&self.2.unseal, ctx);
        Ok(Secret::new(std::mem::take(&mut *plain)))
    }
}

fn key_file_error(path: &Path, e: SealError) -> CoreError {
    CoreError::MasterKeyFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// The data directory's files that say which custody holds its master key.
pub(crate) const KEY_FILE: &str = "master.key";
pub(crate) const CHECK_FILE: &str = "master.check";
pub(crate) const SEALED_FILE: &str = "master.sealed";
/// The purpose root sealed under the current master key, once a rotation has replaced the
/// key it was first derived from.
pub(crate) const PURPOSE_FILE: &str = "master.purpose";
const PURPOSE_AAD: &[u8] = b"kmip-rs purpose root";
/// Written by `master-split`: that the key was split, into how many shares, and how many
/// open it (no secret), so that a missing key file is told apart from a split key.
pub(crate) const SPLIT_FILE: &str = "master.shares";

/// Why a custody could not keep or give back the master key. Messages name the file or the
/// option to look at; none carries key material or a PIN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Nothing was there to unseal (and, where it matters, why that is not a first start).
    #[error("{0}")]
    Missing(String),
    /// The data directory's master key is kept by another custody than the one configured.
    #[error("{0}")]
    OtherCustody(String),
    /// A master key came back that is not this data directory's.
    #[error("{0}")]
    WrongKey(String),
    /// The configuration is incomplete or contradicts itself.
    #[error("{option}: {reason}")]
    Config {
        /// The option to look at.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The PKCS#11 module or token refused, or did not have what was asked of it.
    #[error("{option}: {reason}")]
    Token {
        /// The option that names what was refused.
        option: &'static str,
        /// What the token said, or did not have.
        reason: String,
    },
    /// A file of the custody could not be read or written.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file holding the master key or a share of it that other users may read or write.
    #[error(
        "{path} is open to other users (mode {mode:03o}): a file that holds the master key or \
         a share of it must be readable by its owner only. Fix it with: chmod 600 {path}"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key core failed (generating, sealing or checking the key).
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The store failed while records were re-sealed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl SealError {
    pub(crate) fn file(path: &Path, e: impl std::fmt::Display) -> SealError {
        SealError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    }
}

/// A custody of the master key: where it is kept between starts and what brings it back.
/// Each custody keeps the value that checks the key (a seal of a fixed text under it), so that
/// a wrong key refuses to start instead of failing on every object.
pub trait Seal {
    /// What holds the key, for messages and the log (a path, a token and key label; never a
    /// secret).
    fn describe(&self) -> String;
    /// Whether the data directory already has a master key in this custody. An error when
    /// its files say the key is kept elsewhere (another custody, or a file that went
    /// missing): a first start there would seal a new key and orphan every object.
    fn is_sealed(&self) -> Result<bool, SealError>;
    /// The master key of a data directory that has none yet: a new random key, unless the
    /// custody brings its own (shares of a key split elsewhere).
    fn first_key(&self) -> Result<MasterKey, SealError> {
        Ok(MasterKey::generate()?)
    }
    /// Keep `key` in this custody, with its check value.
    fn seal(&self, key: &MasterKey) -> Result<(), SealError>;
    /// Bring the key back (not yet checked: [`Seal::check`]).
    fn unseal(&self) -> Result<MasterKey, SealError>;
    /// `Ok` when `key` is the master key this custody keeps.
    fn check(&self, key: &MasterKey) -> Result<(), SealError>;
    /// Keep `key` in place of the key this custody holds (a rotation, a migration), each
    /// file replaced whole or not at all. Only once nothing is sealed under the old key.
    fn replace(&self, key: &MasterKey) -> Result<(), SealError> {
        self.seal(key)
    }
}

/// Refuse a file holding the master key or a share that group or others may read or write,
/// as OpenSSH refuses such a private key: a copy anyone can read is a copy of every key.
pub(crate) fn check_private(path: &Path) -> Result<(), SealError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| SealError::file(path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(SealError::Exposed {
                path: path.to_path_buf(),
                mode: mode & 0o777,
            });
        }
    }
    Ok(())
}

/// The master key at a server's start: unsealed and checked, or, on a data directory that has
/// none, made and sealed before anything is sealed under it.
pub fn open(seal: &dyn Seal) -> Result<MasterKey, SealError> {
    if seal.is_sealed()? {
        open_existing(seal)
    } else {
        let key = seal.first_key()?;
        seal.seal(&key)?;
        Ok(key)
    }
}

/// The master key of a data directory that has one; never creates one (tools that read).
pub fn open_existing(seal: &dyn Seal) -> Result<MasterKey, SealError> {
    if !seal.is_sealed()? {
        return Err(SealError::Missing(format!(
            "no master key yet ({})",
            seal.describe()
        )));
    }
    let key = seal.unseal()?;
    seal.check(&key)?;
    Ok(key)
}

/// Write `bytes` to a new file at `path` as a whole or not at all (a temporary file renamed
/// over it, both synced), readable by the owner only when `private`: a crash while sealing
/// leaves either no file, and a first start again, or the whole file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), SealError> {
    use std::io::Write;
    let fail = |e: std::io::Error| SealError::file(path, e);
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("seal")
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(&tmp).map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(fail)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail)
}

/// The check value stored beside the data: write it unless it is there; when it is there, it
/// must be this key's.
pub(crate) fn check_against_file(path: &Path, key: &MasterKey) -> Result<(), SealError> {
    match std::fs::read(path) {
        Ok(check) if key.check(&check) => Ok(()),
        Ok(_) => Err(SealError::WrongKey(format!(
            "the master key does not open this data directory (checked against {})",
            path.display()
        ))),
        Err(e) => Err(SealError::file(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_share_files_open_to_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let seal = FileSeal::new(dir.path());
        let key = open(&seal).unwrap();
        let p = dir.path().join("master.key");
        for mode in [0o640, 0o604, 0o620, 0o602] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = open(&seal).err().unwrap();
            assert!(matches!(e, SealError::Exposed { .. }), "{e}");
            let text = e.to_string();
            assert!(
                text.contains(&format!("chmod 600 {}", p.display())),
                "{text}"
            );
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(open(&seal).unwrap().expose(), key.expose());
        let share = dir.path().join("share-1");
        std::fs::write(&share, key.split(2, 2).unwrap()[0].to_text().as_bytes()).unwrap();
        std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_share_file(&share),
            Err(SealError::Exposed { .. })
        ));
        std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_share_file(&share).unwrap().x, 1);
    }

    #[test]
    fn a_missing_key_file_is_told_apart_from_a_split_key() {
        let dir = tempfile::tempdir().unwrap();
        let seal = FileSeal::new(dir.path());
        open(&seal).unwrap();
        std::fs::remove_file(dir.path().join("master.key")).unwrap();
        let missing = open(&seal).err().unwrap().to_string();
        assert!(missing.contains("master.key is missing"), "{missing}");
        assert!(missing.contains("Put back"), "{missing}");
        write_split(
            dir.path(),
            Split {
                threshold: 2,
                shares: 3,
            },
        )
        .unwrap();
        let split = open(&seal).err().unwrap().to_string();
        assert!(split.contains("split into shares"), "{split}");
        assert!(split.contains("any 2 of 3"), "{split}");
        assert!(split.contains("--master-share-file"), "{split}");
        assert!(!split.contains("Put back"), "{split}");
    }

    #[test]
    fn purpose_keys_are_those_of_plain_hkdf() {
        // what releases before rotation derived, in one HKDF call: the audit keys of existing
        // logs must not change
        let k = MasterKey::generate().unwrap();
        let fail = |_| CoreError::Crypto("HKDF");
        let plain = (|| -> Result<Vec<u8>, CoreError> {
            let mut ctx =
                openssl::pkey_ctx::PkeyCtx::new_id(openssl::pkey::Id::HKDF).map_err(fail)?;
            ctx.derive_init().map_err(fail)?;
            ctx.set_hkdf_md(openssl::md::Md::sha256()).map_err(fail)?;
            ctx.set_hkdf_salt(b"kmip-rs purpose key").map_err(fail)?;
            ctx.set_hkdf_key(k.expose()).map_err(fail)?;
            ctx.add_hkdf_info(b"label").map_err(fail)?;
            let mut out = vec![0u8; 32];
            ctx.derive(Some(&mut out)).map_err(fail)?;
            Ok(out)
        })()
        .unwrap();
        assert_eq!(
            k.derive_purpose_key(b"label", 32).unwrap().expose(),
            &plain[..]
        );
    }

    /// Contexts are reused across seals and unseals, after failed unseals too: each nonce,
    /// tag and identifier still counts.
    #[test]
    fn reused_contexts_seal_and_unseal_alike() {
        let k = MasterKey::generate().unwrap();
        let sealed: Vec<_> = (0..20)
            .map(|i| k.seal(i.to_string().as_bytes(), &[i as u8; 40]).unwrap())
            .collect();
        assert_ne!(sealed[0][1..13], sealed[1][1..13], "a nonce per seal");
        for (i, s) in sealed.iter().enumerate() {
            let mut bad = s.clone();
            bad[30] ^= 1;
            assert!(matches!(
                k.unseal(i.to_string().as_bytes(), &bad),
                Err(CoreError::Unseal)
            ));
            assert!(matches!(k.unseal(b"other", s), Err(CoreError::Unseal)));
            let plain = k.unseal(i.to_string().as_bytes(), s).unwrap();
            assert_eq!(plain.expose(), &[i as u8; 40]);
        }
        let fresh = MasterKey::from_bytes(k.expose()).unwrap();
        assert_eq!(fresh.unseal(b"3", &sealed[3]).unwrap().expose(), &[3u8; 40]);
    }

    #[test]
    fn seal_binds_the_identifier() {
        let k = MasterKey::generate().unwrap();
        let s = k.seal(b"17", b"key bytes").unwrap();
        assert!(!s.windows(9).any(|w| w == b"key bytes"));
        assert_eq!(k.unseal(b"17", &s).unwrap().expose(), b"key bytes");
        assert!(matches!(k.unseal(b"18", &s), Err(CoreError::Unseal)));
        let other = MasterKey::generate().unwrap();
        assert!(matches!(other.unseal(b"17", &s), Err(CoreError::Unseal)));
        let mut tampered = s.clone();
        tampered[20] ^= 1;
        assert!(matches!(k.unseal(b"17", &tampered), Err(CoreError::Unseal)));
    }

    #[test]
    fn shares_rebuild_the_key_and_too_few_do_not() {
        let k = MasterKey::generate().unwrap();
        let check = k.check_value().unwrap();
        let shares = k.split(3, 5).unwrap();
        let back = MasterKey::from_shares(&shares[1..4]).unwrap();
        assert!(back.check(&check));
        let sealed = k.seal(b"9", b"object").unwrap();
        assert_eq!(back.unseal(b"9", &sealed).unwrap().expose(), b"object");
        let short = MasterKey::from_shares(&shares[..2]).unwrap();
        assert!(!short.check(&check), "M-1 shares must not unseal");
        assert!(short.unseal(b"9", &sealed).is_err());
    }

    #[test]
    fn key_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        let a = MasterKey::load_or_create(&p).unwrap();
        let b = MasterKey::load_or_create(&p).unwrap();
        assert_eq!(a.expose(), b.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(&p, b"short").unwrap();
        assert!(MasterKey::load_or_create(&p).is_err());
    }

    #[test]
    fn file_seal_opens_a_directory_made_before_seals() {
        // what earlier releases left: master.key (raw 32 bytes) and master.check
        let dir = tempfile::tempdir().unwrap();
        let old = MasterKey::generate().unwrap();
        write_atomic(&dir.path().join("master.key"), old.expose(), true).unwrap();
        std::fs::write(dir.path().join("master.check"), old.check_value().unwrap()).unwrap();
        let opened = open(&FileSeal::new(dir.path())).unwrap();
        assert_eq!(opened.expose(), old.expose());
        // and a directory older than check values gets one
        std::fs::remove_file(dir.path().join("master.check")).unwrap();
        let opened = open(&FileSeal::new(dir.path())).unwrap();
        assert_eq!(opened.expose(), old.expose());
        assert!(old.check(&std::fs::read(dir.path().join("master.check")).unwrap()));
    }

    #[test]
    fn file_seal_first_start_and_wrong_or_missing_key() {
        let dir = tempfile::tempdir().unwrap();
        let seal = FileSeal::new(dir.path());
        assert!(!seal.is_sealed().unwrap());
        let first = open(&seal).unwrap();
        assert!(seal.is_sealed().unwrap());
        assert_eq!(open(&seal).unwrap().expose(), first.expose());
        let other = MasterKey::generate().unwrap();
        std::fs::write(dir.path().join("master.key"), other.expose()).unwrap();
        assert!(matches!(open(&seal), Err(SealError::WrongKey(_))));
        std::fs::remove_file(dir.path().join("master.key")).unwrap();
        let e = open(&seal).err().unwrap();
        assert!(matches!(e, SealError::Missing(_)), "{e}");
        assert!(e.to_string().contains("--unseal-share"), "{e}");
    }

    #[test]
    fn share_seal_rebuilds_and_refuses_too_few() {
        let dir = tempfile::tempdir().unwrap();
        let key = open(&FileSeal::new(dir.path())).unwrap();
        let shares: Vec<String> = key
            .split(2, 3)
            .unwrap()
            .iter()
            .map(|s| s.to_text().to_string())
            .collect();
        std::fs::remove_file(dir.path().join("master.key")).unwrap();
        let seal = ShareSeal::new(dir.path(), &shares[1..]).unwrap();
        assert_eq!(open(&seal).unwrap().expose(), key.expose());
        let other = MasterKey::generate().unwrap();
        let foreign: Vec<String> = other
            .split(2, 2)
            .unwrap()
            .iter()
            .map(|s| s.to_text().to_string())
            .collect();
        let seal = ShareSeal::new(dir.path(), &foreign).unwrap();
        assert!(matches!(open(&seal), Err(SealError::WrongKey(_))));
        assert!(ShareSeal::new(dir.path(), &[]).is_err());
    }

    #[test]
    fn a_custody_refuses_another_custodys_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("master.sealed"), b"x").unwrap();
        assert!(matches!(
            FileSeal::new(dir.path()).is_sealed(),
            Err(SealError::OtherCustody(_))
        ));
        let share = MasterKey::generate().unwrap().split(2, 2).unwrap()[0]
            .to_text()
            .to_string();
        assert!(matches!(
            ShareSeal::new(dir.path(), &[share]).unwrap().is_sealed(),
            Err(SealError::OtherCustody(_))
        ));
    }
}
