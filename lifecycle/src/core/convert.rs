//! Key Format Type conversions for Get: the same key in another format (KMIP 1.4 §9.1.3.2.3).
//!
//! Symmetric keys: Raw <-> Transparent Symmetric Key. RSA: PKCS#1 <-> PKCS#8 (private),
//! PKCS#1 <-> X.509 SubjectPublicKeyInfo (public), and the Transparent RSA forms. EC: PKCS#8 <->
//! ECPrivateKey (SEC 1), X.509, and the Transparent EC forms. Anything else is refused.

use super::generate::zeroize_tree;
use super::{CoreError, Secret};
use kmip_codec::vocab::enums::{key_format_type as kft, recommended_curve as rc};
use kmip_codec::vocab::tag;
use kmip_codec::{Tag, Ttlv, Value};
use openssl::bn::{BigNumContext, BigNumRef};
use openssl::ec::{EcKey, PointConversionForm};
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::rsa::Rsa;

fn unsupported(from: u32, to: u32) -> CoreError {
    CoreError::KeyFormat { from, to }
}

/// A KMIP Big Integer from an unsigned big number: two's complement, so a leading 0x00 when the
/// top bit is set, then widened to a multiple of eight bytes.
fn big(t: Tag, n: &BigNumRef) -> Ttlv {
    let mut b = n.to_vec();
    if b.first().is_some_and(|x| x & 0x80 != 0) || b.is_empty() {
        b.insert(0, 0);
    }
    Ttlv::new(t, Value::BigInteger(kmip_codec::text::sign_extend(b)))
}

fn curve_of(nid: Option<Nid>) -> Option<u32> {
    Some(match nid? {
        Nid::X9_62_PRIME256V1 => rc::P_256,
        Nid::SECP384R1 => rc::P_384,
        Nid::SECP521R1 => rc::P_521,
        Nid::SECP256K1 => rc::SECP256K1,
        _ => return None,
    })
}

fn key_material_of(obj: &Ttlv) -> Option<(&Ttlv, u32)> {
    let kb = obj.child(tag::KEY_BLOCK)?;
    let format = kb.child(tag::KEY_FORMAT_TYPE)?.as_enum()?;
    let km = kb.child(tag::KEY_VALUE)?.child(tag::KEY_MATERIAL)?;
    Some((km, format))
}

fn bn(km: &Ttlv, t: Tag) -> Option<openssl::bn::BigNum> {
    match &km.child(t)?.value {
        Value::BigInteger(b) => openssl::bn::BigNum::from_slice(b).ok(),
        _ => None,
    }
}

fn group_of(km: &Ttlv) -> Result<openssl::ec::EcGroup, CoreError> {
    let nid = match km.child(tag::RECOMMENDED_CURVE).and_then(Ttlv::as_enum) {
        Some(rc::P_256) => Nid::X9_62_PRIME256V1,
        Some(rc::P_384) => Nid::SECP384R1,
        Some(rc::P_521) => Nid::SECP521R1,
        Some(rc::SECP256K1) => Nid::SECP256K1,
        _ => return Err(CoreError::Unsupported("curve".into())),
    };
    Ok(openssl::ec::EcGroup::from_curve_name(nid)?)
}

/// A private key from its Key Material: DER bytes (PKCS#1, SEC 1 or PKCS#8) or the
/// Transparent RSA / EC structures.
fn private_pkey(km: &Ttlv, format: u32) -> Result<PKey<Private>, CoreError> {
    let missing = || unsupported(format, format);
    Ok(match format {
        kft::TRANSPARENT_RSA_PRIVATE_KEY => {
            let part = |t| bn(km, t).ok_or_else(missing);
            let mut b = openssl::rsa::RsaPrivateKeyBuilder::new(
                part(tag::MODULUS)?,
                part(tag::PUBLIC_EXPONENT)?,
                part(tag::PRIVATE_EXPONENT)?,
            )?;
            if let (Some(p), Some(q)) = (bn(km, tag::P), bn(km, tag::Q)) {
                b = b.set_factors(p, q)?;
            }
            if let (Some(dp), Some(dq), Some(qi)) = (
                bn(km, tag::PRIME_EXPONENT_P),
                bn(km, tag::PRIME_EXPONENT_Q),
                bn(km, tag::CRT_COEFFICIENT),
            ) {
                b = b.set_crt_params(dp, dq, qi)?;
            }
            PKey::from_rsa(b.build())?
        }
        kft::TRANSPARENT_EC_PRIVATE_KEY => {
            let group = group_of(km)?;
            let d = bn(km, tag::D).ok_or_else(missing)?;
            let mut ctx = BigNumContext::new()?;
            let mut q = openssl::ec::EcPoint::new(&group)?;
            q.mul_generator2(&group, &d, &mut ctx)?;
            PKey::from_ec_key(EcKey::from_private_components(&group, &d, &q)?)?
        }
        _ => {
            let der = km.as_bytes().ok_or_else(missing)?;
            match format {
                kft::PKCS_1 => PKey::from_rsa(Rsa::private_key_from_der(der)?)?,
                kft::ECPRIVATEKEY => PKey::from_ec_key(EcKey::private_key_from_der(der)?)?,
                _ => PKey::private_key_from_pkcs8(der)?,
            }
        }
    })
}

/// A public key from its Key Material: DER bytes (PKCS#1 or SubjectPublicKeyInfo) or the
/// Transparent RSA / EC structures.
fn public_pkey(km: &Ttlv, format: u32) -> Result<PKey<Public>, CoreError> {
    let missing = || unsupported(format, format);
    Ok(match format {
        kft::TRANSPARENT_RSA_PUBLIC_KEY => {
            let part = |t| bn(km, t).ok_or_else(missing);
            PKey::from_rsa(Rsa::from_public_components(
                part(tag::MODULUS)?,
                part(tag::PUBLIC_EXPONENT)?,
            )?)?
        }
        kft::TRANSPARENT_EC_PUBLIC_KEY => {
            let group = group_of(km)?;
            let q = km
                .child(tag::Q_STRING)
                .and_then(Ttlv::as_bytes)
                .ok_or_else(missing)?;
            let mut ctx = BigNumContext::new()?;
            let point = openssl::ec::EcPoint::from_bytes(&group, q, &mut ctx)?;
            PKey::from_ec_key(EcKey::from_public_key(&group, &point)?)?
        }
        _ => {
            let der = km.as_bytes().ok_or_else(missing)?;
            match format {
                kft::PKCS_1 => PKey::from_rsa(Rsa::public_key_from_der_pkcs1(der)?)?,
                _ => PKey::public_key_from_der(der)?,
            }
        }
    })
}

/// The new Key Material for `want`, from the current one.
fn material(object: Tag, km: &Ttlv, from: u32, want: u32) -> Result<Value, CoreError> {
    let bytes = || km.as_bytes().ok_or_else(|| unsupported(from, want));
    let der = |v: Vec<u8>| Ok(Value::ByteString(v));
    // RSA and EC keys convert from any of their forms, transparent ones included
    match object {
        tag::SYMMETRIC_KEY => match (from, want) {
            (kft::RAW, kft::TRANSPARENT_SYMMETRIC_KEY) => Ok(Value::Structure(vec![Ttlv::new(
                tag::KEY,
                Value::ByteString(bytes()?.to_vec()),
            )])),
            (kft::TRANSPARENT_SYMMETRIC_KEY, kft::RAW) => km
                .child(tag::KEY)
                .and_then(Ttlv::as_bytes)
                .map(|b| Value::ByteString(b.to_vec()))
                .ok_or_else(|| unsupported(from, want)),
            _ => Err(unsupported(from, want)),
        },
        tag::PRIVATE_KEY => {
            let k = private_pkey(km, from)?;
            match (k.id(), want) {
                (Id::RSA, kft::PKCS_1) => der(k.rsa()?.private_key_to_der()?),
                (_, kft::PKCS_8) => der(k.private_key_to_pkcs8()?),
                (Id::EC, kft::ECPRIVATEKEY) => der(k.ec_key()?.private_key_to_der()?),
                (Id::RSA, kft::TRANSPARENT_RSA_PRIVATE_KEY) => {
                    let r = k.rsa()?;
                    let mut v = vec![
                        big(tag::MODULUS, r.n()),
                        big(tag::PRIVATE_EXPONENT, r.d()),
                        big(tag::PUBLIC_EXPONENT, r.e()),
                    ];
                    for (t, n) in [
                        (tag::P, r.p()),
                        (tag::Q, r.q()),
                        (tag::PRIME_EXPONENT_P, r.dmp1()),
                        (tag::PRIME_EXPONENT_Q, r.dmq1()),
                        (tag::CRT_COEFFICIENT, r.iqmp()),
                    ] {
                        if let Some(n) = n {
                            v.push(big(t, n));
                        }
                    }
                    Ok(Value::Structure(v))
                }
                (Id::EC, kft::TRANSPARENT_EC_PRIVATE_KEY) => {
                    let ec = k.ec_key()?;
                    let curve =
                        curve_of(ec.group().curve_name()).ok_or_else(|| unsupported(from, want))?;
                    Ok(Value::Structure(vec![
                        Ttlv::new(tag::RECOMMENDED_CURVE, Value::Enumeration(curve)),
                        big(tag::D, ec.private_key()),
                    ]))
                }
                _ => Err(unsupported(from, want)),
            }
        }
        tag::PUBLIC_KEY => {
            let k = public_pkey(km, from)?;
            match (k.id(), want) {
                (Id::RSA, kft::PKCS_1) => der(k.rsa()?.public_key_to_der_pkcs1()?),
                (_, kft::X_509) => der(k.public_key_to_der()?),
                (Id::RSA, kft::TRANSPARENT_RSA_PUBLIC_KEY) => {
                    let r = k.rsa()?;
                    Ok(Value::Structure(vec![
                        big(tag::MODULUS, r.n()),
                        big(tag::PUBLIC_EXPONENT, r.e()),
                    ]))
                }
                (Id::EC, kft::TRANSPARENT_EC_PUBLIC_KEY) => {
                    let ec = k.ec_key()?;
                    let curve =
                        curve_of(ec.group().curve_name()).ok_or_else(|| unsupported(from, want))?;
                    let mut ctx = BigNumContext::new()?;
                    let q = ec.public_key().to_bytes(
                        ec.group(),
                        PointConversionForm::UNCOMPRESSED,
                        &mut ctx,
                    )?;
                    Ok(Value::Structure(vec![
                        Ttlv::new(tag::RECOMMENDED_CURVE, Value::Enumeration(curve)),
                        Ttlv::new(tag::Q_STRING, Value::ByteString(q)),
                    ]))
                }
                _ => Err(unsupported(from, want)),
            }
        }
        _ => Err(unsupported(from, want)),
    }
}

/// The object (an encoded KMIP object structure) with its key in format `want`.
pub(super) fn convert(object: &Secret, want: u32) -> Result<Secret, CoreError> {
    let limits = kmip_codec::Limits::default();
    let (mut t, _) =
        kmip_codec::decode(object.expose(), &limits).map_err(|_| CoreError::Crypto("object"))?;
    let result = (|| -> Result<Option<Secret>, CoreError> {
        let (km, from) = key_material_of(&t).ok_or_else(|| unsupported(0, want))?;
        if from == want {
            return Ok(None);
        }
        let mut value = material(t.tag, km, from, want)?;
        let mut out = t.clone();
        if let Some(kb) = out
            .children_mut()
            .and_then(|c| c.iter_mut().find(|c| c.tag == tag::KEY_BLOCK))
        {
            for c in kb.children_mut().into_iter().flatten() {
                if c.tag == tag::KEY_FORMAT_TYPE {
                    c.value = Value::Enumeration(want);
                }
                if c.tag == tag::KEY_VALUE {
                    for m in c
                        .children_mut()
                        .into_iter()
                        .flatten()
                        .filter(|m| m.tag == tag::KEY_MATERIAL)
                    {
                        zeroize_tree(m);
                        m.value = std::mem::replace(&mut value, Value::Boolean(false));
                    }
                }
            }
        }
        let encoded = Secret::new(kmip_codec::encode(&out));
        zeroize_tree(&mut out);
        Ok(Some(encoded))
    })();
    zeroize_tree(&mut t);
    match result? {
        Some(s) => Ok(s),
        None => Ok(Secret::new(object.expose().to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Core, KeySpec, MasterKey};
    use kmip_codec::vocab::enums::cryptographic_algorithm as alg;

    fn km(s: &Secret) -> (u32, Ttlv) {
        let (t, _) = kmip_codec::decode(s.expose(), &kmip_codec::Limits::default()).unwrap();
        let (m, f) = key_material_of(&t).unwrap();
        (f, m.clone())
    }

    #[test]
    fn formats_round_trip() {
        let core = Core::new(MasterKey::generate().unwrap());
        let rsa = core
            .generate(KeySpec::key_pair(alg::RSA, Some(2048), None).unwrap())
            .unwrap();
        let p8 = convert(&rsa.object, kft::PKCS_8).unwrap();
        assert_eq!(km(&p8).0, kft::PKCS_8);
        let der = km(&p8).1.as_bytes().unwrap().to_vec();
        assert!(PKey::private_key_from_pkcs8(&der).is_ok());
        let back = convert(&p8, kft::PKCS_1).unwrap();
        assert_eq!(
            km(&back).1,
            km(&rsa.object).1,
            "PKCS#1 -> PKCS#8 -> PKCS#1 is lossless"
        );
        let t = convert(&rsa.object, kft::TRANSPARENT_RSA_PRIVATE_KEY).unwrap();
        let (_, m) = km(&t);
        let n = m.child(tag::MODULUS).unwrap();
        assert!(matches!(&n.value, Value::BigInteger(b) if b.len() % 8 == 0 && b.len() >= 256));
        let public = rsa.public.unwrap();
        let spki = convert(&public, kft::X_509).unwrap();
        assert!(PKey::public_key_from_der(km(&spki).1.as_bytes().unwrap()).is_ok());
        let ec = core
            .generate(KeySpec::key_pair(alg::ECDSA, Some(256), None).unwrap())
            .unwrap();
        let sec1 = convert(&ec.object, kft::ECPRIVATEKEY).unwrap();
        assert!(EcKey::private_key_from_der(km(&sec1).1.as_bytes().unwrap()).is_ok());
        let tq = convert(ec.public.as_ref().unwrap(), kft::TRANSPARENT_EC_PUBLIC_KEY).unwrap();
        let q = km(&tq).1;
        assert_eq!(
            q.child(tag::RECOMMENDED_CURVE).and_then(Ttlv::as_enum),
            Some(rc::P_256)
        );
        assert_eq!(
            q.child(tag::Q_STRING)
                .and_then(Ttlv::as_bytes)
                .map(<[u8]>::len),
            Some(65)
        );
        let aes = core
            .generate(KeySpec::symmetric(alg::AES, 128).unwrap())
            .unwrap();
        let ts = convert(&aes.object, kft::TRANSPARENT_SYMMETRIC_KEY).unwrap();
        assert_eq!(km(&convert(&ts, kft::RAW).unwrap()).1, km(&aes.object).1);
        assert!(matches!(
            convert(&aes.object, kft::PKCS_8),
            Err(CoreError::KeyFormat { .. })
        ));
    }
}
