//! The core's use of stored keys. The object layer holds a key only as [`Sealed`] (its
//! identifier and sealed bytes) and new material only as [`Material`], which it can seal and
//! nothing else; every operation that needs plaintext is a method of [`Core`] here.

use super::crypto::{self, CipherInput, CipherStream, CryptoParams, Derivation, Encrypted};
use super::generate::{key_object, secret_data_object, zeroize_tree};
use super::pki::{self, IssuerKey, SubjectKey};
use super::stream::{Stream, StreamState};
use super::{Core, CoreError, Secret};
use kmip_codec::vocab::tag;
use kmip_codec::{Limits, Ttlv, Value};
use openssl::symm::Mode;
use rcgen::{CertificateParams, CertificateRevocationListParams};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A stored object's sealed key material and the identifier it is sealed to: all the object
/// layer holds of a key. Opening it takes the core.
#[derive(Clone)]
pub struct Sealed {
    id: String,
    bytes: Vec<u8>,
}

impl Sealed {
    /// The sealed bytes of object `id`, as the store keeps them.
    pub fn new(id: &str, bytes: Vec<u8>) -> Sealed {
        Sealed {
            id: id.to_owned(),
            bytes,
        }
    }

    /// The object's identifier.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({}, <{} bytes>)", self.id, self.bytes.len())
    }
}

/// An encoded managed object not yet sealed: a generated or derived key, or what a client
/// registers. It can be sealed ([`Core::seal_new`]) and nothing else; no reader exists.
pub struct Material(pub(in crate::core) Secret);

impl Material {
    /// The object a client supplies (Register, a certificate the server made): encoded here,
    /// and from then on readable only by the core.
    pub(crate) fn of_object(object: &Ttlv) -> Material {
        Material(Secret::new(kmip_codec::encode(object)))
    }
}

// the core's unit tests read generated material; nothing else can
#[cfg(test)]
impl std::ops::Deref for Material {
    type Target = Secret;
    fn deref(&self) -> &Secret {
        &self.0
    }
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Material(<{} bytes>)", self.0.len())
    }
}

/// What a new object says of itself, read while it is sealed so that nothing decodes it
/// again: its attributes as the key block or certificate states them.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// Cryptographic Algorithm from the key block.
    pub(crate) algorithm: Option<Ttlv>,
    /// Cryptographic Length from the key block.
    pub(crate) length: Option<Ttlv>,
    /// Digest of a key: SHA-256 of its key material as stored, with its Key Format Type (not
    /// for Secret Data, where a digest of a password would invite a dictionary attack).
    pub(crate) digest: Option<Ttlv>,
    /// A certificate's Certificate Type.
    pub(crate) certificate_type: Option<Ttlv>,
    /// A certificate's DER (public).
    pub(crate) certificate: Option<Vec<u8>>,
}

/// Whether an object may leave the server, and how: read from its attributes (Extractable,
/// Sensitive) and enforced by the core at export.
#[derive(Clone, Copy, Debug)]
pub struct ExportRule {
    extractable: bool,
    sensitive: bool,
}

impl ExportRule {
    /// The rule of an object with `attributes`: not Extractable never leaves; Sensitive leaves
    /// only wrapped.
    pub fn of(attributes: &[Ttlv]) -> ExportRule {
        let flag = |t| {
            attributes
                .iter()
                .find(|a| a.tag == t)
                .and_then(Ttlv::as_bool)
        };
        ExportRule {
            extractable: flag(tag::EXTRACTABLE) != Some(false),
            sensitive: flag(tag::SENSITIVE) == Some(true),
        }
    }

    /// `Ok` when the object may leave, `wrapped` or in the clear. The core checks it again at
    /// export; the object layer asks first, before it spends anything on the export.
    pub fn permits(&self, wrapped: bool) -> Result<(), CoreError> {
        if !self.extractable {
            return Err(CoreError::NotExtractable);
        }
        if self.sensitive && !wrapped {
            return Err(CoreError::Sensitive);
        }
        Ok(())
    }
}

/// Keys kept opened, by object identifier: OpenSSL 3 spends hundreds of microseconds per
/// parse of an asymmetric key, more than an ECDSA signature, and a symmetric key's unseal and
/// decode cost an Encrypt of a few blocks more than its cipher. Each entry remembers the sealed bytes
/// it was opened from, so a record re-sealed (a master-key rotation) or replaced under the same
/// identifier is opened again. Bounded in number, and in time: an entry unused for
/// [`PARSED_IDLE`] goes, so that a key destroyed where this core cannot see it (through
/// another node, or while a use raced the Destroy) does not stay parsed in memory for good.
/// [`Core::forget`] drops an entry without opening anything.
#[derive(Default)]
pub(crate) struct ParsedKeys {
    keys: Mutex<HashMap<String, Entry>>,
    /// Uses since the last sweep of idle entries.
    uses: std::sync::atomic::AtomicU32,
}

/// The sealed bytes an entry was opened from, the opened key, and when it was last used.
type Entry = (Vec<u8>, Arc<crypto::KeyMaterial>, Instant);

const PARSED_MAX: usize = 4096;

/// How long a parsed key stays unused before it is dropped.
pub(crate) const PARSED_IDLE: Duration = Duration::from_secs(60);

/// Uses between sweeps of idle entries (and every insertion sweeps).
const SWEEP_EVERY: u32 = 256;

impl ParsedKeys {
    fn get(&self, key: &Sealed) -> Option<Arc<crypto::KeyMaterial>> {
        let mut m = self.keys.lock().ok()?;
        let now = Instant::now();
        if self.uses.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SWEEP_EVERY == 0 {
            sweep(&mut m, now);
        }
        m.get_mut(&key.id)
            .filter(|(sealed, _, _)| *sealed == key.bytes)
            .map(|(_, k, used)| {
                *used = now;
                k.clone()
            })
    }

    fn put(&self, key: &Sealed, material: Arc<crypto::KeyMaterial>) {
        if let Ok(mut m) = self.keys.lock() {
            let now = Instant::now();
            sweep(&mut m, now);
            if m.len() >= PARSED_MAX && !m.contains_key(&key.id) {
                if let Some(first) = m.keys().next().cloned() {
                    m.remove(&first);
                }
            }
            m.insert(key.id.clone(), (key.bytes.clone(), material, now));
        }
    }

    fn forget(&self, id: &str) {
        if let Ok(mut m) = self.keys.lock() {
            m.remove(id);
        }
    }

    /// Drop the entries unused since `now - idle` (the test's clock).
    #[cfg(test)]
    pub(crate) fn age(&self, idle: Duration) {
        if let Ok(mut m) = self.keys.lock() {
            for (_, _, used) in m.values_mut() {
                *used = used.checked_sub(idle).unwrap_or(*used);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn holds(&self, id: &str) -> bool {
        self.keys
            .lock()
            .map(|m| m.contains_key(id))
            .unwrap_or(false)
    }
}

/// Drop the entries idle for [`PARSED_IDLE`] or longer.
fn sweep(m: &mut HashMap<String, Entry>, now: Instant) {
    m.retain(|_, (_, _, used)| now.duration_since(*used) < PARSED_IDLE);
}

impl Core {
    /// Seal new object `id`: its sealed bytes, and what it says of itself.
    pub(crate) fn seal_new(
        &self,
        id: &str,
        material: &Material,
    ) -> Result<(Vec<u8>, Facts), CoreError> {
        let (mut obj, _) = kmip_codec::decode(material.0.expose(), &Limits::default())
            .map_err(|_| CoreError::InvalidField("object".into()))?;
        let mut facts = Facts::default();
        if obj.tag == tag::CERTIFICATE {
            facts.certificate_type = obj.child(tag::CERTIFICATE_TYPE).cloned();
            facts.certificate = obj
                .child(tag::CERTIFICATE_VALUE)
                .and_then(Ttlv::as_bytes)
                .map(<[u8]>::to_vec);
        }
        let kb = obj.child(tag::KEY_BLOCK);
        if matches!(
            obj.tag,
            tag::SYMMETRIC_KEY | tag::PRIVATE_KEY | tag::PUBLIC_KEY
        ) {
            let km = kb
                .and_then(|k| k.child(tag::KEY_VALUE))
                .and_then(|v| v.child(tag::KEY_MATERIAL))
                .and_then(Ttlv::as_bytes);
            let format = kb.and_then(|k| k.child(tag::KEY_FORMAT_TYPE)).cloned();
            if let (Some(km), Some(format)) = (km, format) {
                facts.digest = Some(Ttlv::structure(
                    tag::DIGEST,
                    vec![
                        Ttlv::new(
                            tag::HASHING_ALGORITHM,
                            Value::Enumeration(
                                kmip_codec::vocab::enums::hashing_algorithm::SHA_256,
                            ),
                        ),
                        Ttlv::new(
                            tag::DIGEST_VALUE,
                            Value::ByteString(super::sha256(km).to_vec()),
                        ),
                        format,
                    ],
                ));
            }
        }
        if let Some(kb) = kb {
            facts.algorithm = kb.child(tag::CRYPTOGRAPHIC_ALGORITHM).cloned();
            facts.length = kb.child(tag::CRYPTOGRAPHIC_LENGTH).cloned();
        }
        zeroize_tree(&mut obj);
        Ok((self.seal(id, &material.0)?, facts))
    }

    /// Whether `key` opens under this core's master key (its identifier bound in).
    pub fn opens(&self, key: &Sealed) -> bool {
        self.unseal(&key.id, &key.bytes).is_ok()
    }

    /// Seal and open a probe: the master key is loaded and AES-GCM works.
    pub fn ready(&self) -> Result<(), CoreError> {
        let probe = Secret::new(b"readiness".to_vec());
        let sealed = self.seal("readiness probe", &probe)?;
        self.unseal("readiness probe", &sealed).map(drop)
    }

    /// Drop whatever the core keeps of object `id` (its parsed key): at Destroy, with nothing
    /// opened.
    pub fn forget(&self, id: &str) {
        self.parsed.forget(id);
    }

    /// The key of `key`, opened: from the parsed-key cache, or unsealed and cached.
    fn key(&self, key: &Sealed) -> Result<Arc<crypto::KeyMaterial>, CoreError> {
        if let Some(k) = self.parsed.get(key) {
            return Ok(k);
        }
        let plain = self.unseal(&key.id, &key.bytes)?;
        let m = Arc::new(crypto::key_material(&plain)?);
        self.parsed.put(key, m.clone());
        Ok(m)
    }

    /// Encrypt with `key`.
    pub(crate) fn encrypt(
        &self,
        key: &Sealed,
        input: &CipherInput<'_>,
    ) -> Result<Encrypted, CoreError> {
        crypto::encrypt(&*self.key(key)?, input)
    }

    /// Decrypt with `key`; the plaintext is the client's data.
    pub(crate) fn decrypt(
        &self,
        key: &Sealed,
        input: &CipherInput<'_>,
    ) -> Result<Secret, CoreError> {
        crypto::decrypt(&*self.key(key)?, input)
    }

    /// Sign `data` with private key `key`.
    pub(crate) fn sign(
        &self,
        key: &Sealed,
        p: &CryptoParams,
        data: &[u8],
    ) -> Result<Vec<u8>, CoreError> {
        crypto::sign(&*self.key(key)?, p, data)
    }

    /// Whether `signature` is valid for `data` under public key `key`.
    pub(crate) fn verify(
        &self,
        key: &Sealed,
        p: &CryptoParams,
        data: &[u8],
        signature: &[u8],
    ) -> Result<bool, CoreError> {
        crypto::verify(&*self.key(key)?, p, data, signature)
    }

    /// The MAC of `data` under `key`.
    pub(crate) fn mac(
        &self,
        key: &Sealed,
        p: &CryptoParams,
        data: &[u8],
    ) -> Result<Vec<u8>, CoreError> {
        crypto::mac(&*self.key(key)?, p, data)
    }

    /// Derive from `key` (or password) a new object of `object_type`: a Symmetric Key (Raw)
    /// of `algorithm`, or Secret Data (Opaque). Its material, and its length in bits.
    pub(crate) fn derive(
        &self,
        key: &Sealed,
        d: &Derivation<'_>,
        object_type: u32,
        algorithm: Option<u32>,
    ) -> Result<(Material, u32), CoreError> {
        use kmip_codec::vocab::enums::object_type as ot;
        let bytes = crypto::derive(&*self.key(key)?, d)?;
        let bits = (bytes.len() * 8) as u32;
        let object = match object_type {
            ot::SYMMETRIC_KEY => key_object(
                tag::SYMMETRIC_KEY,
                kmip_codec::vocab::enums::key_format_type::RAW,
                bytes.expose(),
                algorithm.ok_or_else(|| {
                    CoreError::InvalidField("Cryptographic Algorithm is required".into())
                })?,
                bits,
            ),
            ot::SECRET_DATA => secret_data_object(bytes.expose()),
            other => {
                return Err(CoreError::InvalidField(format!(
                    "Derive Key makes Symmetric Keys or Secret Data, not 0x{other:X}"
                )))
            }
        };
        Ok((Material(object), bits))
    }

    /// The object of `key` as it leaves the server in the clear (Get), converted to `format`
    /// when one is asked for, if `rule` lets it leave unwrapped.
    pub(crate) fn export(
        &self,
        key: &Sealed,
        rule: ExportRule,
        format: Option<u32>,
    ) -> Result<Ttlv, CoreError> {
        rule.permits(false)?;
        let mut plain = self.unseal(&key.id, &key.bytes)?;
        if let Some(f) = format {
            plain = super::convert::convert(&plain, f)?;
        }
        let (obj, _) = kmip_codec::decode(plain.expose(), &Limits::default())
            .map_err(|_| CoreError::InvalidField("stored object".into()))?;
        Ok(obj)
    }

    /// The object of `key` with its Key Value wrapped under `wrapping` (Get with a Key
    /// Wrapping Specification, method Encrypt), and the Key Wrapping Data that says how, if
    /// `rule` lets it leave wrapped. `ttlv` is the Encoding Option: TTLV Encoding wraps the
    /// whole Key Value structure, which then travels as a Byte String; No Encoding wraps only
    /// the Key Material.
    pub(crate) fn export_wrapped(
        &self,
        key: &Sealed,
        rule: ExportRule,
        wrapping: &Sealed,
        p: &CryptoParams,
        ttlv: bool,
    ) -> Result<Ttlv, CoreError> {
        use kmip_codec::vocab::enums::encoding_option;
        rule.permits(true)?;
        let wkey = self.key(wrapping)?;
        let plain = self.unseal(&key.id, &key.bytes)?;
        let (mut obj, _) = kmip_codec::decode(plain.expose(), &Limits::default())
            .map_err(|_| CoreError::InvalidField("stored object".into()))?;
        let wrapped = (|| {
            if ttlv {
                let kv = obj
                    .child(tag::KEY_BLOCK)
                    .and_then(|kb| kb.child(tag::KEY_VALUE))
                    .ok_or_else(|| CoreError::InvalidField("a key value to wrap".into()))?;
                let encoded = Secret::new(kmip_codec::encode(kv));
                crypto::wrap(&wkey, p, encoded.expose())
            } else {
                let inner = crypto::key_material(&plain)?;
                crypto::wrap(&wkey, p, inner.bytes.expose())
            }
        })();
        let wrapped = match wrapped {
            Ok(w) => w,
            Err(e) => {
                zeroize_tree(&mut obj);
                return Err(e);
            }
        };
        let mut cp = Vec::new();
        if let Some(m) = p.block_cipher_mode {
            cp.push(Ttlv::new(tag::BLOCK_CIPHER_MODE, Value::Enumeration(m)));
        }
        let wrapping_data = Ttlv::structure(
            tag::KEY_WRAPPING_DATA,
            vec![
                Ttlv::new(
                    tag::WRAPPING_METHOD,
                    Value::Enumeration(kmip_codec::vocab::enums::wrapping_method::ENCRYPT),
                ),
                Ttlv::structure(
                    tag::ENCRYPTION_KEY_INFORMATION,
                    vec![
                        Ttlv::new(
                            tag::UNIQUE_IDENTIFIER,
                            Value::TextString(wrapping.id.clone()),
                        ),
                        Ttlv::structure(tag::CRYPTOGRAPHIC_PARAMETERS, cp),
                    ],
                ),
            ]
            .into_iter()
            // an absent Encoding Option means TTLV Encoding
            .chain((!ttlv).then(|| {
                Ttlv::new(
                    tag::ENCODING_OPTION,
                    Value::Enumeration(encoding_option::NO_ENCODING),
                )
            }))
            .collect(),
        );
        if let Some(kb) = obj
            .children_mut()
            .and_then(|c| c.iter_mut().find(|c| c.tag == tag::KEY_BLOCK))
        {
            let Some(children) = kb.children_mut() else {
                zeroize_tree(&mut obj);
                return Err(CoreError::InvalidField("stored object".into()));
            };
            for kv in children.iter_mut().filter(|c| c.tag == tag::KEY_VALUE) {
                if ttlv {
                    zeroize_tree(kv);
                    *kv = Ttlv::new(tag::KEY_VALUE, Value::ByteString(wrapped.clone()));
                    continue;
                }
                // No Encoding (KMIP 1.4 §2.1.5): the Key Value stays a structure and only its
                // Key Material is replaced by the wrapped bytes
                for km in kv
                    .children_mut()
                    .into_iter()
                    .flatten()
                    .filter(|c| c.tag == tag::KEY_MATERIAL)
                {
                    zeroize_tree(km);
                    *km = Ttlv::new(tag::KEY_MATERIAL, Value::ByteString(wrapped.clone()));
                }
            }
            children.push(wrapping_data);
        }
        Ok(obj)
    }

    /// Sign a certificate for `subject` with `params`, by private key `issuer` and its
    /// certificate's parameters (`None`: self-signed); its DER.
    pub(crate) fn sign_certificate(
        &self,
        issuer: &Sealed,
        issuer_params: Option<CertificateParams>,
        subject: &SubjectKey,
        params: &CertificateParams,
    ) -> Result<Vec<u8>, CoreError> {
        let key = self.key(issuer)?;
        pki::sign_certificate(
            IssuerKey {
                key: &key,
                params: issuer_params,
            },
            subject,
            params,
        )
    }

    /// Sign a CRL by private key `issuer` with its certificate's parameters; its DER.
    pub(crate) fn sign_crl(
        &self,
        issuer: &Sealed,
        issuer_params: CertificateParams,
        crl: &CertificateRevocationListParams,
    ) -> Result<Vec<u8>, CoreError> {
        let key = self.key(issuer)?;
        pki::sign_crl(
            IssuerKey {
                key: &key,
                params: Some(issuer_params),
            },
            crl,
        )
    }

    /// A PKCS#10 request for private key `key`'s public key, signed by it; its DER.
    pub(crate) fn sign_request(
        &self,
        key: &Sealed,
        params: &CertificateParams,
    ) -> Result<Vec<u8>, CoreError> {
        pki::sign_request(&*self.key(key)?, params)
    }

    /// A streamed Encrypt or Decrypt with `key`, set up (key schedule, IV, AAD) and fed its
    /// first part: the stream, its output so far, and the IV the server generated.
    pub(crate) fn cipher_stream(
        &self,
        key: &Sealed,
        owner: Option<String>,
        operation: u32,
        input: &CipherInput<'_>,
        encrypt: bool,
    ) -> Result<(Stream, Encrypted), CoreError> {
        let mode = if encrypt {
            Mode::Encrypt
        } else {
            Mode::Decrypt
        };
        let (mut c, generated_iv) = CipherStream::start(&*self.key(key)?, input, mode)?;
        let data = c.update(input.data)?;
        let s = Stream::new(
            owner,
            key.id.clone(),
            operation,
            input.params.clone(),
            StreamState::Cipher(c),
        );
        Ok((
            s,
            Encrypted {
                data,
                generated_iv,
                tag: None,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{KeySpec, MasterKey};
    use kmip_codec::vocab::enums::cryptographic_algorithm as alg;

    fn sealed(core: &Core, id: &str, m: &Material) -> Sealed {
        Sealed::new(id, core.seal_new(id, m).unwrap().0)
    }

    /// A parsed key is cached by identifier and dropped by identifier, without opening the
    /// record; a record re-sealed under the same identifier is opened again.
    #[test]
    fn parsed_keys_are_cached_by_identifier_and_forgotten_unopened() {
        let core = Core::new(MasterKey::generate().unwrap());
        let pair = core.generate(KeySpec::Ed25519).unwrap();
        let key = sealed(&core, "k1", &pair.object);
        let p = CryptoParams::default();
        let sig = core.sign(&key, &p, b"data").unwrap();
        assert!(core.parsed.holds("k1"));
        let public = sealed(&core, "p1", pair.public.as_ref().unwrap());
        assert!(core.verify(&public, &p, b"data", &sig).unwrap());
        core.forget("k1");
        assert!(!core.parsed.holds("k1"));
        // another key under the same identifier: the cache does not answer for it
        let other = core.generate(KeySpec::Ed25519).unwrap();
        let key2 = sealed(&core, "k1", &other.object);
        let sig2 = core.sign(&key, &p, b"data").unwrap();
        let _ = core.sign(&key2, &p, b"data").unwrap();
        assert!(!core
            .verify(
                &public,
                &p,
                b"data",
                &core.sign(&key2, &p, b"data").unwrap()
            )
            .unwrap());
        assert!(core.verify(&public, &p, b"data", &sig2).unwrap());
        // symmetric keys are kept as well, and forgotten alike
        let aes = core
            .generate(KeySpec::symmetric(alg::AES, 256).unwrap())
            .unwrap();
        let s = sealed(&core, "s1", &aes.object);
        core.mac(
            &s,
            &CryptoParams {
                cryptographic_algorithm: Some(alg::HMAC_SHA256),
                ..Default::default()
            },
            b"x",
        )
        .unwrap();
        assert!(core.parsed.holds("s1"));
        core.forget("s1");
        assert!(!core.parsed.holds("s1"));
    }

    /// A parsed key no one uses for [`PARSED_IDLE`] goes at the next use of the cache: a key
    /// destroyed where this core cannot see it does not stay parsed for good.
    #[test]
    fn idle_parsed_keys_go() {
        let core = Core::new(MasterKey::generate().unwrap());
        let p = CryptoParams::default();
        let old = core.generate(KeySpec::Ed25519).unwrap();
        let old = sealed(&core, "idle", &old.object);
        core.sign(&old, &p, b"data").unwrap();
        assert!(core.parsed.holds("idle"));
        core.parsed.age(PARSED_IDLE);
        let other = core.generate(KeySpec::Ed25519).unwrap();
        core.sign(&sealed(&core, "busy", &other.object), &p, b"data")
            .unwrap();
        assert!(!core.parsed.holds("idle"), "an idle key stayed parsed");
        assert!(core.parsed.holds("busy"));
    }

    #[test]
    fn export_follows_the_rule() {
        let core = Core::new(MasterKey::generate().unwrap());
        let k = core
            .generate(KeySpec::symmetric(alg::AES, 128).unwrap())
            .unwrap();
        let key = sealed(&core, "e1", &k.object);
        let b = |t, v| Ttlv::new(t, Value::Boolean(v));
        let open = ExportRule::of(&[]);
        assert!(core.export(&key, open, None).is_ok());
        let not = ExportRule::of(&[b(tag::EXTRACTABLE, false)]);
        assert!(matches!(
            core.export(&key, not, None),
            Err(CoreError::NotExtractable)
        ));
        let sensitive = ExportRule::of(&[b(tag::SENSITIVE, true)]);
        assert!(matches!(
            core.export(&key, sensitive, None),
            Err(CoreError::Sensitive)
        ));
        let kek = core
            .generate(KeySpec::symmetric(alg::AES, 256).unwrap())
            .unwrap();
        let kek = sealed(&core, "w1", &kek.object);
        let p = CryptoParams::default();
        assert!(core.export_wrapped(&key, sensitive, &kek, &p, true).is_ok());
        assert!(matches!(
            core.export_wrapped(&key, not, &kek, &p, true),
            Err(CoreError::NotExtractable)
        ));
    }
}
