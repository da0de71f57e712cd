//! Certificates and CRLs signed inside the core. A CA's private key never leaves: rcgen lays out
//! the structures (to-be-signed certificate or CRL) and asks `CoreSigner` for the signature,
//! which OpenSSL makes with the key unsealed here. What goes into a certificate is decided
//! before this module (profiles, name constraints, validity); here it is only signed.

use super::crypto::KeyMaterial;
use super::CoreError;
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, Private, Public};
use rcgen::{
    CertificateParams, CertificateRevocationListParams, Issuer, PublicKeyData, SignatureAlgorithm,
    SigningKey,
};

fn rcgen_err(e: rcgen::Error) -> CoreError {
    CoreError::Unsupported(format!("certificate: {e}"))
}

/// The signature algorithm a key signs certificates with, and the contents of its
/// SubjectPublicKeyInfo's BIT STRING (what rcgen calls the public key's DER).
fn algorithm_of(key: &PKey<Public>) -> Result<(&'static SignatureAlgorithm, Vec<u8>), CoreError> {
    Ok(match key.id() {
        Id::RSA => (
            &rcgen::PKCS_RSA_SHA256,
            key.rsa()?.public_key_to_der_pkcs1()?,
        ),
        Id::EC => {
            let ec = key.ec_key()?;
            let alg = match ec.group().curve_name() {
                Some(openssl::nid::Nid::X9_62_PRIME256V1) => &rcgen::PKCS_ECDSA_P256_SHA256,
                Some(openssl::nid::Nid::SECP384R1) => &rcgen::PKCS_ECDSA_P384_SHA384,
                _ => return Err(CoreError::Unsupported("CA keys on this curve".into())),
            };
            let mut ctx = openssl::bn::BigNumContext::new()?;
            let point = ec.public_key().to_bytes(
                ec.group(),
                openssl::ec::PointConversionForm::UNCOMPRESSED,
                &mut ctx,
            )?;
            (alg, point)
        }
        Id::ED25519 => (&rcgen::PKCS_ED25519, key.raw_public_key()?),
        _ => return Err(CoreError::Unsupported("key type for certificates".into())),
    })
}

/// A public key to certify, from its SubjectPublicKeyInfo.
pub struct SubjectKey {
    bits: Vec<u8>,
    algorithm: &'static SignatureAlgorithm,
}

impl SubjectKey {
    /// The algorithm and size of a DER SubjectPublicKeyInfo.
    pub fn from_spki(spki: &[u8]) -> Result<SubjectKey, CoreError> {
        let key = PKey::public_key_from_der(spki)?;
        let (algorithm, bits) = algorithm_of(&key)?;
        Ok(SubjectKey { bits, algorithm })
    }

    /// The key identifier (RFC 5280 section 4.2.1.2, method 1: SHA-1 of the key's bits).
    pub fn key_id(&self) -> Result<Vec<u8>, CoreError> {
        Ok(openssl::hash::hash(MessageDigest::sha1(), &self.bits)?.to_vec())
    }
}

impl PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bits
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }
}

/// A CA's private key, unsealed for one signature and dropped after.
struct CoreSigner {
    key: PKey<Private>,
    public: SubjectKey,
}

impl CoreSigner {
    fn new(m: &KeyMaterial) -> Result<CoreSigner, CoreError> {
        let key = m.private_key()?;
        let spki = key.public_key_to_der()?;
        Ok(CoreSigner {
            public: SubjectKey::from_spki(&spki)?,
            key,
        })
    }
}

impl PublicKeyData for CoreSigner {
    fn der_bytes(&self) -> &[u8] {
        &self.public.bits
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.public.algorithm
    }
}

impl SigningKey for CoreSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let fail = |_| rcgen::Error::RemoteKeyError;
        let digest = if self.public.algorithm == &rcgen::PKCS_ED25519 {
            None
        } else if self.public.algorithm == &rcgen::PKCS_ECDSA_P384_SHA384 {
            Some(MessageDigest::sha384())
        } else {
            Some(MessageDigest::sha256())
        };
        match digest {
            None => openssl::sign::Signer::new_without_digest(&self.key)
                .and_then(|mut s| s.sign_oneshot_to_vec(msg))
                .map_err(fail),
            Some(md) => openssl::sign::Signer::new(md, &self.key)
                .and_then(|mut s| {
                    s.update(msg)?;
                    s.sign_to_vec()
                })
                .map_err(fail),
        }
    }
}

/// Who signs: the CA's private key object, and its certificate's name and key identifier
/// (`params` carries them; `None` signs the subject's own certificate, self-signed).
pub(super) struct IssuerKey<'a> {
    /// The issuer's private key.
    pub(crate) key: &'a KeyMaterial,
    /// The issuer's certificate parameters (its name and key identifier); `None` to self-sign.
    pub(crate) params: Option<CertificateParams>,
}

/// Sign a certificate for `subject` with `params`; its DER.
pub(super) fn sign_certificate(
    issuer: IssuerKey<'_>,
    subject: &SubjectKey,
    params: &CertificateParams,
) -> Result<Vec<u8>, CoreError> {
    let signer = CoreSigner::new(issuer.key)?;
    let cert = match issuer.params {
        None => {
            if signer.public.bits != subject.bits {
                return Err(CoreError::Unsupported(
                    "a self-signed certificate must certify its signer's own key".into(),
                ));
            }
            params.self_signed(&signer)
        }
        Some(p) => params.signed_by(subject, &Issuer::new(p, &signer)),
    }
    .map_err(rcgen_err)?;
    Ok(cert.der().to_vec())
}

/// A PKCS#10 request for the key's own public key, signed by it (for a CA whose certificate an
/// external root will issue); its DER.
pub(super) fn sign_request(
    key: &KeyMaterial,
    params: &CertificateParams,
) -> Result<Vec<u8>, CoreError> {
    let signer = CoreSigner::new(key)?;
    let csr = params.serialize_request(&signer).map_err(rcgen_err)?;
    Ok(csr.der().to_vec())
}

/// Sign a CRL; its DER.
pub(super) fn sign_crl(
    issuer: IssuerKey<'_>,
    crl: &CertificateRevocationListParams,
) -> Result<Vec<u8>, CoreError> {
    let signer = CoreSigner::new(issuer.key)?;
    let params = issuer
        .params
        .ok_or_else(|| CoreError::Unsupported("a CRL needs its issuer's certificate".into()))?;
    let crl = crl
        .signed_by(&Issuer::new(params, &signer))
        .map_err(rcgen_err)?;
    Ok(crl.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::crypto::key_material;
    use crate::core::{Core, KeySpec, MasterKey, Secret};
    use kmip_codec::vocab::enums::cryptographic_algorithm as alg;
    use rcgen::{BasicConstraints, DnType, IsCa, KeyIdMethod, SerialNumber};

    fn spki_of(object: &Secret) -> Vec<u8> {
        let m = key_material(object).unwrap();
        m.private_key().unwrap().public_key_to_der().unwrap()
    }

    /// A root signs itself and then a leaf; OpenSSL verifies the chain and the CRL.
    #[test]
    fn a_root_signs_a_leaf_and_a_crl_that_openssl_accepts() {
        let core = Core::new(MasterKey::generate().unwrap());
        for (algorithm, bits) in [(alg::RSA, 2048), (alg::EC, 256)] {
            let root = core
                .generate(KeySpec::key_pair(algorithm, Some(bits), None).unwrap())
                .unwrap();
            let root_key = SubjectKey::from_spki(&spki_of(&root.object)).unwrap();
            let mut rp = CertificateParams::default();
            rp.distinguished_name = rcgen::DistinguishedName::new();
            rp.distinguished_name.push(DnType::CommonName, "Test Root");
            rp.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
            rp.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::CrlSign,
            ];
            rp.key_identifier_method = KeyIdMethod::PreSpecified(root_key.key_id().unwrap());
            rp.serial_number = Some(SerialNumber::from_slice(&[1, 2, 3]));
            let root_der = sign_certificate(
                IssuerKey {
                    key: &key_material(&root.object).unwrap(),
                    params: None,
                },
                &root_key,
                &rp,
            )
            .unwrap();

            let leaf = core
                .generate(KeySpec::key_pair(alg::EC, Some(256), None).unwrap())
                .unwrap();
            let leaf_key = SubjectKey::from_spki(&spki_of(&leaf.object)).unwrap();
            let mut lp = CertificateParams::new(vec!["leaf.example".to_owned()]).unwrap();
            lp.distinguished_name
                .push(DnType::CommonName, "leaf.example");
            lp.is_ca = IsCa::ExplicitNoCa;
            lp.use_authority_key_identifier_extension = true;
            lp.key_identifier_method = KeyIdMethod::PreSpecified(leaf_key.key_id().unwrap());
            lp.serial_number = Some(SerialNumber::from_slice(&[9, 9]));
            let leaf_der = sign_certificate(
                IssuerKey {
                    key: &key_material(&root.object).unwrap(),
                    params: Some(rp.clone()),
                },
                &leaf_key,
                &lp,
            )
            .unwrap();

            let root_x = openssl::x509::X509::from_der(&root_der).unwrap();
            let leaf_x = openssl::x509::X509::from_der(&leaf_der).unwrap();
            assert!(root_x.verify(&root_x.public_key().unwrap()).unwrap());
            assert!(leaf_x.verify(&root_x.public_key().unwrap()).unwrap());
            assert_eq!(
                leaf_x.issuer_name().to_der().unwrap(),
                root_x.subject_name().to_der().unwrap(),
                "issuer name is byte-identical to the root's subject"
            );

            let crl = CertificateRevocationListParams {
                this_update: time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
                next_update: time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
                crl_number: SerialNumber::from_slice(&[1]),
                issuing_distribution_point: None,
                revoked_certs: vec![rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&[9, 9]),
                    revocation_time: time::OffsetDateTime::from_unix_timestamp(1_700_000_000)
                        .unwrap(),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                }],
                key_identifier_method: KeyIdMethod::PreSpecified(root_key.key_id().unwrap()),
            };
            let crl_der = sign_crl(
                IssuerKey {
                    key: &key_material(&root.object).unwrap(),
                    params: Some(rp),
                },
                &crl,
            )
            .unwrap();
            let crl_x = openssl::x509::X509Crl::from_der(&crl_der).unwrap();
            assert!(crl_x.verify(&root_x.public_key().unwrap()).unwrap());
            assert_eq!(crl_x.get_revoked().map(|r| r.len()), Some(1));
        }
    }

    #[test]
    fn self_signing_another_key_is_refused() {
        let core = Core::new(MasterKey::generate().unwrap());
        let a = core
            .generate(KeySpec::key_pair(alg::EC, Some(256), None).unwrap())
            .unwrap();
        let b = core
            .generate(KeySpec::key_pair(alg::EC, Some(256), None).unwrap())
            .unwrap();
        let other = SubjectKey::from_spki(&spki_of(&b.object)).unwrap();
        assert!(sign_certificate(
            IssuerKey {
                key: &key_material(&a.object).unwrap(),
                params: None
            },
            &other,
            &CertificateParams::default()
        )
        .is_err());
    }
}
