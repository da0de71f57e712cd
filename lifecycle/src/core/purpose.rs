//! Keys the master key derives for the server's own use (the audit log's MAC and signing
//! keys), handed out only as things that MAC or sign: their bytes never leave the core.

use super::{CoreError, MasterKey, Secret};
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::sha::Sha256;

const AUDIT_MAC_LABEL: &[u8] = b"kmip-rs audit log MAC key v1";
const AUDIT_SIGNING_LABEL: &[u8] = b"kmip-rs audit log Ed25519 signing key v1";

/// HMAC-SHA256 under the audit log's MAC key, with the key's inner and outer states computed
/// once: a record's MAC costs two SHA-256 runs, about what its hash costs.
#[derive(Clone)]
pub struct AuditMac {
    inner: Sha256,
    outer: Sha256,
}

impl AuditMac {
    fn new(key: &[u8]) -> AuditMac {
        let mut ipad = vec![0x36u8; 64];
        let mut opad = vec![0x5cu8; 64];
        for (i, k) in key.iter().take(64).enumerate() {
            ipad[i] ^= k;
            opad[i] ^= k;
        }
        let (mut inner, mut outer) = (Sha256::new(), Sha256::new());
        inner.update(&ipad);
        outer.update(&opad);
        // the pads are the key: keep them in zeroizing buffers until dropped
        drop(Secret::new(ipad));
        drop(Secret::new(opad));
        AuditMac { inner, outer }
    }

    /// The MAC of `data`.
    pub fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut i = self.inner.clone();
        i.update(data);
        let mut o = self.outer.clone();
        o.update(&i.finish());
        o.finish()
    }
}

impl std::fmt::Debug for AuditMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditMac")
    }
}

/// The audit log's Ed25519 signing key: it signs, and shows its public key.
pub struct AuditSigner {
    signing: PKey<Private>,
}

impl AuditSigner {
    /// An Ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CoreError> {
        let mut s = openssl::sign::Signer::new_without_digest(&self.signing)?;
        Ok(s.sign_oneshot_to_vec(message)?)
    }

    /// The public key that verifies the signatures.
    pub fn public_key(&self) -> Result<PKey<Public>, CoreError> {
        let raw = self.signing.raw_public_key()?;
        Ok(PKey::public_key_from_raw_bytes(&raw, Id::ED25519)?)
    }
}

impl std::fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditSigner")
    }
}

impl MasterKey {
    /// The audit log's MAC key (HKDF from the master key, a label of its own): the same at
    /// every start, written nowhere.
    pub fn audit_mac(&self) -> Result<AuditMac, CoreError> {
        Ok(AuditMac::new(
            self.derive_purpose_key(AUDIT_MAC_LABEL, 32)?.expose(),
        ))
    }

    /// The audit log's Ed25519 signing key, derived as [`MasterKey::audit_mac`] is.
    pub fn audit_signer(&self) -> Result<AuditSigner, CoreError> {
        let seed = self.derive_purpose_key(AUDIT_SIGNING_LABEL, 32)?;
        let signing = PKey::private_key_from_raw_bytes(seed.expose(), Id::ED25519)
            .map_err(|_| CoreError::Crypto("Ed25519 key"))?;
        Ok(AuditSigner { signing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purpose_keys_are_stable_and_distinct() {
        let m = MasterKey::generate().unwrap();
        let a = m.derive_purpose_key(b"a", 32).unwrap();
        assert_eq!(a.expose(), m.derive_purpose_key(b"a", 32).unwrap().expose());
        assert_ne!(a.expose(), m.derive_purpose_key(b"b", 32).unwrap().expose());
        assert_eq!(
            m.audit_mac().unwrap().mac(b"x"),
            m.audit_mac().unwrap().mac(b"x")
        );
        let other = MasterKey::generate().unwrap();
        assert_ne!(
            m.audit_mac().unwrap().mac(b"x"),
            other.audit_mac().unwrap().mac(b"x")
        );
    }

    /// The precomputed pads give what a plain HMAC-SHA256 gives.
    #[test]
    fn audit_mac_is_hmac_sha256() {
        let m = MasterKey::generate().unwrap();
        let key = m.derive_purpose_key(AUDIT_MAC_LABEL, 32).unwrap();
        let pkey = PKey::hmac(key.expose()).unwrap();
        let mut s =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &pkey).unwrap();
        s.update(b"record").unwrap();
        assert_eq!(
            s.sign_to_vec().unwrap(),
            m.audit_mac().unwrap().mac(b"record")
        );
    }
}
