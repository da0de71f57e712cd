//! The master key and AES-256-GCM sealing of material at rest.
//!
//! Sealed format: `0x01 | nonce (12) | ciphertext | tag (16)`, associated data = the record's
//! identifier. The version byte lets a later release change the scheme.

use super::{CoreError, Secret};
use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;
use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;
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
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    pub fn generate() -> Result<MasterKey, CoreError> {
        let mut k = Zeroizing::new([0u8; 32]);
        openssl::rand::rand_bytes(k.as_mut())?;
        Ok(MasterKey(k))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, CoreError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CoreError::Unsupported("a master key is 32 bytes".into()))?;
        Ok(MasterKey(Zeroizing::new(arr)))
    }

    /// Read the key file, or create it (mode 0600, written before use) when it is absent.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, CoreError> {
        let err = |reason: String| CoreError::MasterKeyFile {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                MasterKey::from_bytes(&bytes).map_err(|_| err("not a 32-byte key".into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = MasterKey::generate()?;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(path).map_err(|e| err(e.to_string()))?;
                f.write_all(key.0.as_ref())
                    .map_err(|e| err(e.to_string()))?;
                f.sync_all().map_err(|e| err(e.to_string()))?;
                Ok(key)
            }
            Err(e) => Err(err(e.to_string())),
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
    pub fn derive_purpose_key(&self, label: &[u8], len: usize) -> Result<Secret, CoreError> {
        let fail = |_| CoreError::Crypto("HKDF");
        let mut ctx = openssl::pkey_ctx::PkeyCtx::new_id(openssl::pkey::Id::HKDF).map_err(fail)?;
        ctx.derive_init().map_err(fail)?;
        ctx.set_hkdf_md(openssl::md::Md::sha256()).map_err(fail)?;
        ctx.set_hkdf_salt(b"kmip-rs purpose key").map_err(fail)?;
        ctx.set_hkdf_key(self.0.as_ref()).map_err(fail)?;
        ctx.add_hkdf_info(label).map_err(fail)?;
        let mut out = Zeroizing::new(vec![0u8; len]);
        ctx.derive(Some(&mut out)).map_err(fail)?;
        Ok(Secret::new(std::mem::take(&mut *out)))
    }

    pub(super) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CoreError> {
        let mut nonce = [0u8; NONCE];
        openssl::rand::rand_bytes(&mut nonce)?;
        let mut tag = [0u8; TAG];
        let mut ct = Vec::with_capacity(plaintext.len() + 16);
        let fail = |_| CoreError::Crypto("seal");
        let mut ctx = CipherCtx::new().map_err(fail)?;
        ctx.encrypt_init(Some(aes_gcm()?), Some(self.0.as_ref()), Some(&nonce))
            .map_err(fail)?;
        ctx.cipher_update(aad, None).map_err(fail)?;
        ctx.cipher_update_vec(plaintext, &mut ct).map_err(fail)?;
        ctx.cipher_final_vec(&mut ct).map_err(fail)?;
        ctx.tag(&mut tag).map_err(fail)?;
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
        let cipher = aes_gcm().map_err(|_| CoreError::Unseal)?;
        let mut ctx = CipherCtx::new().map_err(fail)?;
        ctx.decrypt_init(Some(cipher), Some(self.0.as_ref()), Some(nonce))
            .map_err(fail)?;
        ctx.set_tag(tag).map_err(fail)?;
        ctx.cipher_update(aad, None).map_err(fail)?;
        let mut plain = Zeroizing::new(Vec::with_capacity(ct.len() + 16));
        ctx.cipher_update_vec(ct, &mut plain).map_err(fail)?;
        ctx.cipher_final_vec(&mut plain).map_err(fail)?;
        Ok(Secret::new(std::mem::take(&mut *plain)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
