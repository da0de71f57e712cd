//! The hardened core: the only code that holds plaintext key bytes.
//!
//! Callers hold sealed records and identifiers; plaintext lives in [`Secret`] buffers that are
//! zeroed on drop and have no `Debug`, `Clone` or serialisation. Material at rest is sealed with
//! AES-256-GCM under the master key, with the object's identifier as associated data, so a
//! sealed record copied onto another record does not open.
//!
//! This module is the wall: its insides (`crypto`, `convert`, `pki`, `stream`, `shamir`,
//! `generate`, `seal`) are private, and what it exports carries no plaintext key and no parsed
//! key. The object layer holds keys as [`Sealed`] records and new objects as [`Material`],
//! and asks [`Core`] for every use, export and wrapped export (methods visible to this crate
//! only: another crate reaches keys through the lifecycle's operations, which check access,
//! state and usage first). Other crates get generation (opaque results), the RNG, the custody
//! API and parameters. `tests/core_api.txt` lists the public surface; a test keeps it so.
//!
//! What is public compiles from another crate:
//!
//! ```
//! fn check(core: &lifecycle::core::Core, key: &lifecycle::core::Sealed) -> bool {
//!     core.forget(key.id());
//!     core.opens(key)
//! }
//! let _ = lifecycle::core::CryptoParams::default();
//! ```
//!
//! and none of the following does:
//!
//! ```compile_fail,E0603
//! // the raw cryptographic functions are not reachable
//! let _ = lifecycle::core::crypto::encrypt;
//! ```
//!
//! ```compile_fail,E0624
//! // nor is opening a sealed record into its plaintext
//! fn open(core: &lifecycle::core::Core) {
//!     let _ = core.unseal("id", b"sealed");
//! }
//! ```
//!
//! ```compile_fail,E0425
//! // nor is a key's material, parsed or not
//! let _: Option<lifecycle::core::KeyMaterial> = None;
//! ```
//!
//! ```compile_fail,E0616
//! // nor the bytes of new material (generated, derived or registered)
//! fn peek(m: &lifecycle::core::Material) -> &[u8] {
//!     m.0.expose()
//! }
//! ```
//!
//! ```compile_fail,E0624
//! // nor an export that bypasses the lifecycle's checks
//! fn export(core: &lifecycle::core::Core, key: &lifecycle::core::Sealed) {
//!     let _ = core.export(key, lifecycle::core::ExportRule::of(&[]), None);
//! }
//! ```
//!
//! ```compile_fail,E0624
//! // nor any use of a key
//! fn sign(core: &lifecycle::core::Core, key: &lifecycle::core::Sealed) {
//!     let _ = core.sign(key, &Default::default(), b"data");
//! }
//! ```
//!
//! ```compile_fail,E0624
//! // nor a purpose key derived from the master key
//! fn purpose(m: &lifecycle::core::MasterKey) {
//!     let _ = m.derive_purpose_key(b"audit", 32);
//! }
//! ```

mod convert;
mod crypto;
mod ffi;
mod generate;
mod keys;
mod pki;
mod purpose;
mod seal;
mod shamir;
mod stream;

pub use crypto::{
    max_pbkdf2_iterations, set_max_pbkdf2_iterations, CipherInput, CryptoParams, Derivation,
    Encrypted, DEFAULT_MAX_PBKDF2_ITERATIONS,
};
pub use ffi::{harden_process, lock_memory, UNDUMPABLE};
pub use generate::{Generated, KeySpec};
pub use keys::{ExportRule, Material, Sealed};
pub use pki::SubjectKey;
pub use purpose::{AuditMac, AuditSigner};
pub use seal::{
    finish_rotation, open as open_seal, open_existing as open_existing_seal, read_share_file,
    read_split, rotate, rotation_pending, write_split, FileSeal, MasterKey, Pkcs11Options,
    Pkcs11Seal, Rotated, Seal, SealError, ShareSeal, Split, ROTATION_FILE,
};
pub use shamir::Share;
pub(crate) use stream::Stream;
pub use stream::{
    MAX_BUFFERED, MAX_BUFFERED_PER_OWNER, MAX_BUFFERED_TOTAL, MAX_STREAMS, MAX_STREAMS_PER_OWNER,
    STREAM_IDLE,
};

/// SHA-256 of `data`. OpenSSL 3's one-shot `SHA256()` looks the algorithm up by name on every
/// call (`EVP_Q_digest`), which cost more than the hashing itself on the audit log's hot path;
/// the incremental context does not.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h = openssl::sha::Sha256::new();
    h.update(data);
    h.finish()
}

/// Random bytes that will be public (IVs, nonces), from OpenSSL's DRBG a kilobyte at a time
/// per thread: each call to the DRBG pays a fixed cost (it rekeys itself after every request)
/// that was most of a 12-byte nonce's price. Key material never comes from here: it is drawn
/// directly ([`Core::random`]), so no future key waits in a buffer.
pub(crate) fn public_random(out: &mut [u8]) -> Result<(), CoreError> {
    const POOL: usize = 1024;
    if out.len() > POOL / 4 {
        openssl::rand::rand_bytes(out)?;
        return Ok(());
    }
    thread_local! {
        static BUF: std::cell::RefCell<(Box<[u8; POOL]>, usize)> =
            std::cell::RefCell::new((Box::new([0u8; POOL]), POOL));
    }
    BUF.with(|b| {
        let mut b = b.borrow_mut();
        let (buf, used) = &mut *b;
        if *used + out.len() > POOL {
            openssl::rand::rand_bytes(&mut buf[..])?;
            *used = 0;
        }
        out.copy_from_slice(&buf[*used..*used + out.len()]);
        // a byte handed out is not kept: no later read of the buffer finds it
        buf[*used..*used + out.len()].fill(0);
        *used += out.len();
        Ok(())
    })
}

use thiserror::Error;
use zeroize::Zeroizing;

/// What went wrong in the key core. Never carries key bytes.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CoreError {
    /// Deliberately without detail: OpenSSL's error queue can name the failing operation but
    /// never carries key bytes; we still keep it out of messages that reach clients.
    #[error("cryptographic failure in {0}")]
    Crypto(&'static str),
    /// Sealed material that does not open with this master key.
    #[error("sealed material does not open (wrong master key, or a record moved)")]
    Unseal,
    /// The master key file cannot be read, written or used.
    #[error("master key file {path}: {reason}")]
    MasterKeyFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key, algorithm or format this core does not handle.
    #[error("unsupported key: {0}")]
    Unsupported(String),
    /// A mode that needs an IV/Counter/Nonce was asked to decrypt without one.
    #[error("an IV/Counter/Nonce is required")]
    MissingIv,
    /// No conversion between these Key Format Types.
    #[error("no conversion from key format 0x{from:X} to 0x{to:X}")]
    KeyFormat {
        /// The format the key is in.
        from: u32,
        /// The format asked for.
        to: u32,
    },
    /// A Correlation Value that names no open multi-part operation of this client.
    #[error("invalid correlation value")]
    InvalidCorrelation,
    /// A limit of multi-part operations was reached (open streams, buffered bytes).
    #[error("limit reached: {0}")]
    StreamLimit(&'static str),
    /// An authentication tag length the mode does not allow.
    #[error("invalid authentication tag length {0}")]
    TagLength(i32),
    /// The object's Extractable attribute is false: it never leaves.
    #[error("the key may not leave the server: it is not extractable")]
    NotExtractable,
    /// The object is Sensitive: it leaves only wrapped.
    #[error("the key is sensitive and leaves the server only wrapped")]
    Sensitive,
    /// Cryptographic Parameters that do not fit the key, the mode or each other (an IV Length
    /// the mode does not take, padding in a mode without blocks, another algorithm's key).
    #[error("bad cryptographic parameters: {0}")]
    BadParameters(String),
    /// A request field of a size or value the parameters do not allow (an IV or tag of the
    /// wrong length, an Iteration Count beyond the server's maximum).
    #[error("invalid field: {0}")]
    InvalidField(String),
}

impl From<openssl::error::ErrorStack> for CoreError {
    fn from(_: openssl::error::ErrorStack) -> Self {
        CoreError::Crypto("openssl")
    }
}

/// Secret bytes: zeroed on drop, never printed, never cloned implicitly. Outside the core it
/// carries the clients' data (a decrypted plaintext, random bytes, data to sign), never a key.
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Take ownership of `bytes`, which are zeroed when the secret drops.
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }

    /// The bytes, for the call that needs them; never to keep.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// How many bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// The core: a master key and the operations that need plaintext.
pub struct Core {
    master: MasterKey,
    streams: stream::Streams,
    parsed: keys::ParsedKeys,
}

impl Core {
    /// A core that seals with `master`.
    pub fn new(master: MasterKey) -> Core {
        Core {
            master,
            streams: stream::Streams::default(),
            parsed: keys::ParsedKeys::default(),
        }
    }

    /// The multi-part operations in progress: they hold key schedules, so only this crate's
    /// operations, which check the key again at every part, reach them.
    pub(crate) fn streams(&self) -> &stream::Streams {
        &self.streams
    }

    /// Seal the encoded object of record `id`.
    fn seal(&self, id: &str, plaintext: &Secret) -> Result<Vec<u8>, CoreError> {
        self.master.seal(id.as_bytes(), plaintext.expose())
    }

    /// Open the sealed key material of object `id`: the identifier is bound in, so a record moved
    /// to another one does not open. Never leaves the core.
    fn unseal(&self, id: &str, sealed: &[u8]) -> Result<Secret, CoreError> {
        self.master.unseal(id.as_bytes(), sealed)
    }

    /// Mix client seed material into the CSPRNG (KMIP RNG Seed); returns the bytes used.
    pub fn seed(&self, data: &[u8]) -> usize {
        ffi::rand_add(data)
    }

    /// Random bytes from OpenSSL's CSPRNG.
    pub fn random(&self, n: usize) -> Result<Secret, CoreError> {
        let mut buf = Zeroizing::new(vec![0u8; n]);
        openssl::rand::rand_bytes(&mut buf)?;
        Ok(Secret(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_hides_bytes() {
        let s = Secret::new(b"hunter2-hunter2".to_vec());
        let d = format!("{s:?}");
        assert!(!d.contains("hunter2"), "{d}");
    }
}
