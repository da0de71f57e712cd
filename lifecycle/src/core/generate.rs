//! Key generation with OpenSSL's CSPRNG. Each key comes out as the KMIP object structure
//! (Symmetric Key, Private Key, Public Key, Secret Data) encoded as TTLV inside a [`Secret`].

use super::{Core, CoreError, Material, Secret};
use kmip_codec::vocab::enums::{
    cryptographic_algorithm as alg, key_format_type as fmt, object_type,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use zeroize::Zeroize;

/// What to generate, decided from the Cryptographic Algorithm and Length (or curve).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySpec {
    /// AES, HMAC and other symmetric algorithms: random bytes of the given bit length.
    Symmetric {
        /// The Cryptographic Algorithm the key is for.
        algorithm: u32,
        /// The key length in bits.
        bits: u32,
    },
    /// An RSA key pair.
    Rsa {
        /// The modulus length in bits.
        bits: u32,
    },
    /// ECDSA/ECDH/EC over a named curve (its OpenSSL NID) and its field size in bits.
    Ec {
        /// The Cryptographic Algorithm the key is for (ECDSA, ECDH, EC).
        algorithm: u32,
        /// The curve's OpenSSL NID.
        nid: i32,
        /// The curve's field size in bits.
        bits: u32,
    },
    /// An Ed25519 key pair.
    Ed25519,
    /// KMIP 2.1 has no X25519 algorithm: it is EC or ECDH over Curve25519.
    X25519 {
        /// The Cryptographic Algorithm the key is for (EC or ECDH).
        algorithm: u32,
    },
}

/// `b` with its low bit set so that it has an odd number of ones.
fn odd_parity(b: u8) -> u8 {
    let high = b & 0xFE;
    high | u8::from(high.count_ones() % 2 == 0)
}

impl KeySpec {
    /// A symmetric key of `algorithm` and `bits`, if we can generate it.
    pub fn symmetric(algorithm: u32, bits: i32) -> Result<KeySpec, CoreError> {
        let ok = match algorithm {
            alg::AES => matches!(bits, 128 | 192 | 256),
            alg::DES3 => matches!(bits, 112 | 168 | 192),
            alg::HMAC_SHA1
            | alg::HMAC_SHA224
            | alg::HMAC_SHA256
            | alg::HMAC_SHA384
            | alg::HMAC_SHA512
            | alg::HMAC_MD5 => bits >= 8 && bits % 8 == 0 && bits <= 4096,
            alg::CHACHA20 => bits == 256,
            alg::BLOWFISH | alg::IDEA | alg::CAMELLIA | alg::ARIA | alg::SEED | alg::SM4 => {
                bits >= 64 && bits % 8 == 0 && bits <= 448
            }
            _ => false,
        };
        if !ok {
            return Err(CoreError::Unsupported(format!(
                "symmetric algorithm 0x{algorithm:X} with length {bits}"
            )));
        }
        Ok(KeySpec::Symmetric {
            algorithm,
            bits: bits as u32,
        })
    }

    /// A key pair of `algorithm` with `bits` (RSA) or of the curve (EC: `curve` is a KMIP
    /// Recommended Curve, or derived from `bits` when absent).
    pub fn key_pair(
        algorithm: u32,
        bits: Option<i32>,
        curve: Option<u32>,
    ) -> Result<KeySpec, CoreError> {
        use kmip_codec::vocab::enums::recommended_curve as rc;
        let unsupported = || {
            CoreError::Unsupported(format!(
                "key pair algorithm 0x{algorithm:X}, length {bits:?}, curve {curve:?}"
            ))
        };
        match algorithm {
            alg::RSA => match bits {
                Some(b @ (1024 | 2048 | 3072 | 4096)) => Ok(KeySpec::Rsa { bits: b as u32 }),
                _ => Err(unsupported()),
            },
            alg::ED25519 => Ok(KeySpec::Ed25519),
            alg::EC | alg::ECDSA | alg::ECDH => {
                let curve = curve.or(match bits {
                    Some(256) => Some(rc::P_256),
                    Some(384) => Some(rc::P_384),
                    Some(521) => Some(rc::P_521),
                    _ => None,
                });
                let (nid, bits) = match curve {
                    Some(rc::P_256) => (Nid::X9_62_PRIME256V1, 256),
                    Some(rc::P_384) => (Nid::SECP384R1, 384),
                    Some(rc::P_521) => (Nid::SECP521R1, 521),
                    Some(rc::SECP256K1) => (Nid::SECP256K1, 256),
                    Some(rc::CURVE25519) => return Ok(KeySpec::X25519 { algorithm }),
                    _ => return Err(unsupported()),
                };
                Ok(KeySpec::Ec {
                    algorithm,
                    nid: nid.as_raw(),
                    bits,
                })
            }
            _ => Err(unsupported()),
        }
    }
}

fn int(t: kmip_codec::Tag, v: i32) -> Ttlv {
    Ttlv::new(t, Value::Integer(v))
}

fn en(t: kmip_codec::Tag, v: u32) -> Ttlv {
    Ttlv::new(t, Value::Enumeration(v))
}

/// `Object { KeyBlock { Key Format Type, Key Value { Key Material }, Algorithm, Length } }`,
/// encoded; the intermediate tree's bytes are zeroed.
pub(crate) fn key_object(
    object: kmip_codec::Tag,
    format: u32,
    material: &[u8],
    algorithm: u32,
    bits: u32,
) -> Secret {
    let mut tree = Ttlv::structure(
        object,
        vec![Ttlv::structure(
            tag::KEY_BLOCK,
            vec![
                en(tag::KEY_FORMAT_TYPE, format),
                Ttlv::structure(
                    tag::KEY_VALUE,
                    vec![Ttlv::new(
                        tag::KEY_MATERIAL,
                        Value::ByteString(material.to_vec()),
                    )],
                ),
                en(tag::CRYPTOGRAPHIC_ALGORITHM, algorithm),
                int(tag::CRYPTOGRAPHIC_LENGTH, bits as i32),
            ],
        )],
    );
    let out = Secret::new(kmip_codec::encode(&tree));
    zeroize_tree(&mut tree);
    out
}

/// `Secret Data { Secret Data Type Password, KeyBlock { Opaque, Key Value { Key Material } } }`.
pub(crate) fn secret_data_object(material: &[u8]) -> Secret {
    use kmip_codec::vocab::enums::secret_data_type;
    let mut tree = Ttlv::structure(
        tag::SECRET_DATA,
        vec![
            en(tag::SECRET_DATA_TYPE, secret_data_type::SEED),
            Ttlv::structure(
                tag::KEY_BLOCK,
                vec![
                    en(tag::KEY_FORMAT_TYPE, fmt::OPAQUE),
                    Ttlv::structure(
                        tag::KEY_VALUE,
                        vec![Ttlv::new(
                            tag::KEY_MATERIAL,
                            Value::ByteString(material.to_vec()),
                        )],
                    ),
                ],
            ),
        ],
    );
    let out = Secret::new(kmip_codec::encode(&tree));
    zeroize_tree(&mut tree);
    out
}

/// Zero every byte string of a tree that held secrets before it is dropped.
pub(crate) fn zeroize_tree(t: &mut Ttlv) {
    match &mut t.value {
        Value::ByteString(b) | Value::BigInteger(b) => b.zeroize(),
        Value::Structure(children) => children.iter_mut().for_each(zeroize_tree),
        Value::TextString(s) => s.zeroize(),
        _ => {}
    }
}

/// A generated key: one object, or a private and a public one, each to be sealed
/// ([`Core::seal_new`], which also reads its algorithm, length and digest).
#[derive(Debug)]
pub struct Generated {
    /// The Object Type of `object`: Symmetric Key, or Private Key for a pair.
    pub object_type: u32,
    /// The key object: the symmetric key, or the private key.
    pub object: Material,
    /// The public key object of a pair.
    pub public: Option<Material>,
}

struct Raw {
    object_type: u32,
    object: Secret,
    public: Option<Secret>,
}

impl Core {
    /// A fresh key as `spec` describes it, from OpenSSL's random generator.
    pub fn generate(&self, spec: KeySpec) -> Result<Generated, CoreError> {
        let raw = self.generate_raw(spec)?;
        Ok(Generated {
            object_type: raw.object_type,
            object: Material(raw.object),
            public: raw.public.map(Material),
        })
    }

    fn generate_raw(&self, spec: KeySpec) -> Result<Raw, CoreError> {
        match spec {
            KeySpec::Symmetric { algorithm, bits } => {
                let raw = if algorithm == alg::DES3 {
                    // the DES layout: 8 bytes per key of 56 bits, each byte's low bit making
                    // its parity odd (SP 800-67); two keys for 112 bits, three otherwise
                    let keys = if bits == 112 { 2 } else { 3 };
                    let raw = self.random(8 * keys)?;
                    Secret::new(raw.expose().iter().map(|b| odd_parity(*b)).collect())
                } else {
                    self.random(bits.div_ceil(8) as usize)?
                };
                Ok(Raw {
                    object_type: object_type::SYMMETRIC_KEY,
                    object: key_object(tag::SYMMETRIC_KEY, fmt::RAW, raw.expose(), algorithm, bits),
                    public: None,
                })
            }
            KeySpec::Rsa { bits } => {
                let rsa = Rsa::generate(bits).map_err(|_| CoreError::Crypto("RSA generation"))?;
                let private = Secret::new(rsa.private_key_to_der()?);
                let public = rsa.public_key_to_der_pkcs1()?;
                Ok(Raw {
                    object_type: object_type::PRIVATE_KEY,
                    object: key_object(
                        tag::PRIVATE_KEY,
                        fmt::PKCS_1,
                        private.expose(),
                        alg::RSA,
                        bits,
                    ),
                    public: Some(key_object(
                        tag::PUBLIC_KEY,
                        fmt::PKCS_1,
                        &public,
                        alg::RSA,
                        bits,
                    )),
                })
            }
            KeySpec::Ec {
                algorithm,
                nid,
                bits,
            } => {
                let group = EcGroup::from_curve_name(Nid::from_raw(nid))?;
                let ec = EcKey::generate(&group).map_err(|_| CoreError::Crypto("EC generation"))?;
                let pkey = PKey::from_ec_key(ec)?;
                let private = Secret::new(pkey.private_key_to_pkcs8()?);
                let public = pkey.public_key_to_der()?;
                Ok(Raw {
                    object_type: object_type::PRIVATE_KEY,
                    object: key_object(
                        tag::PRIVATE_KEY,
                        fmt::PKCS_8,
                        private.expose(),
                        algorithm,
                        bits,
                    ),
                    public: Some(key_object(
                        tag::PUBLIC_KEY,
                        fmt::X_509,
                        &public,
                        algorithm,
                        bits,
                    )),
                })
            }
            KeySpec::Ed25519 | KeySpec::X25519 { .. } => {
                let (pkey, algorithm) = match spec {
                    KeySpec::X25519 { algorithm } => (PKey::generate_x25519()?, algorithm),
                    _ => (PKey::generate_ed25519()?, alg::ED25519),
                };
                let private = Secret::new(pkey.private_key_to_pkcs8()?);
                let public = pkey.public_key_to_der()?;
                Ok(Raw {
                    object_type: object_type::PRIVATE_KEY,
                    object: key_object(
                        tag::PRIVATE_KEY,
                        fmt::PKCS_8,
                        private.expose(),
                        algorithm,
                        256,
                    ),
                    public: Some(key_object(
                        tag::PUBLIC_KEY,
                        fmt::X_509,
                        &public,
                        algorithm,
                        256,
                    )),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::MasterKey;
    use kmip_codec::Limits;

    fn material(s: &Material) -> Vec<u8> {
        let (t, _) = kmip_codec::decode(s.0.expose(), &Limits::default()).unwrap();
        let kb = t.child(tag::KEY_BLOCK).unwrap();
        kb.child(tag::KEY_VALUE)
            .unwrap()
            .child(tag::KEY_MATERIAL)
            .unwrap()
            .as_bytes()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn triple_des_keys_have_the_des_layout_and_work() {
        let core = Core::new(MasterKey::generate().unwrap());
        for (bits, len) in [(112, 16), (168, 24), (192, 24)] {
            let k = core
                .generate(KeySpec::symmetric(alg::DES3, bits).unwrap())
                .unwrap();
            let m = material(&k.object);
            assert_eq!(m.len(), len, "{bits} bits");
            assert!(
                m.iter().all(|b| b.count_ones() % 2 == 1),
                "odd parity: {m:02x?}"
            );
        }
        let k = core
            .generate(KeySpec::symmetric(alg::DES3, 168).unwrap())
            .unwrap();
        let m = material(&k.object);
        let ct = openssl::symm::encrypt(
            openssl::symm::Cipher::des_ede3_cbc(),
            &m,
            Some(&[0; 8]),
            b"x",
        )
        .unwrap();
        assert_eq!(ct.len(), 8);
    }

    #[test]
    fn generates_every_kind() {
        let core = Core::new(MasterKey::generate().unwrap());
        let a = core
            .generate(KeySpec::symmetric(alg::AES, 256).unwrap())
            .unwrap();
        let b = core
            .generate(KeySpec::symmetric(alg::AES, 256).unwrap())
            .unwrap();
        assert_eq!(material(&a.object).len(), 32);
        assert_ne!(material(&a.object), material(&b.object));
        assert!(KeySpec::symmetric(alg::AES, 100).is_err());
        let rsa = core
            .generate(KeySpec::key_pair(alg::RSA, Some(2048), None).unwrap())
            .unwrap();
        let der = material(&rsa.object);
        assert_eq!(Rsa::private_key_from_der(&der).unwrap().size(), 256);
        let public = material(rsa.public.as_ref().unwrap());
        assert!(Rsa::public_key_from_der_pkcs1(&public).is_ok());
        for curve in [256, 384, 521] {
            let ec = core
                .generate(KeySpec::key_pair(alg::ECDSA, Some(curve), None).unwrap())
                .unwrap();
            let pk = PKey::private_key_from_pkcs8(&material(&ec.object)).unwrap();
            assert_eq!(pk.bits(), curve as u32);
        }
        let k1 = KeySpec::key_pair(
            alg::EC,
            None,
            Some(kmip_codec::vocab::enums::recommended_curve::SECP256K1),
        )
        .unwrap();
        assert!(core.generate(k1).is_ok());
        assert!(core.generate(KeySpec::Ed25519).is_ok());
        let x = KeySpec::key_pair(
            alg::ECDH,
            None,
            Some(kmip_codec::vocab::enums::recommended_curve::CURVE25519),
        )
        .unwrap();
        assert!(core.generate(x).is_ok());
        assert!(KeySpec::key_pair(alg::RSA, Some(1000), None).is_err());
    }
}
