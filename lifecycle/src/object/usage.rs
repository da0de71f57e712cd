//! Cryptographic use of stored keys: every use checks state and usage mask first.

use super::*;
use crate::core::{CipherInput, CryptoParams, Derivation, Encrypted};
use crate::state::{may_use, Usage};
use kmip_codec::vocab::enums::cryptographic_usage_mask as um;

/// The lease every Obtain Lease grants, in seconds: clients re-check an object's state at
/// least this often, so a revocation reaches every client within the hour.
pub const LEASE_TIME: i64 = 3600;

/// The units left in an object's Usage Limits, if it has any.
pub fn usage_left(r: &Record) -> Option<i64> {
    let limits = r.attribute(tag::USAGE_LIMITS)?;
    let long = |t| match limits.child(t).map(|v| &v.value) {
        Some(Value::LongInteger(n)) => Some(*n),
        _ => None,
    };
    long(tag::USAGE_LIMITS_COUNT).or(long(tag::USAGE_LIMITS_TOTAL))
}

impl Txn {
    /// The key of `id` for one use: it must exist, be in a state that allows the use, and
    /// have the usage-mask bit (when it has a mask at all).
    pub(super) fn key_for(
        &self,
        id: &str,
        usage: Usage,
        mask_bit: u32,
        now: i64,
    ) -> Result<(Record, Sealed), LifecycleError> {
        let r = self.get(id, now)?;
        if r.state.is_destroyed() {
            // destroyed through another node, or while a use raced the Destroy here: what
            // this node's core kept of the key goes now
            self.core.forget(id);
            return Err(LifecycleError::Destroyed);
        }
        if is_archived(&r) {
            return Err(LifecycleError::Archived);
        }
        if !may_use(r.state, usage) {
            return Err(LifecycleError::NotUsable(r.state));
        }
        // the Protect Stop Date ends protection, the Process Start Date begins processing
        // (KMIP 1.4 §3.25-26)
        let window = match usage {
            Usage::Protect | Usage::DeriveFromPreActive => {
                get_date(&r.attributes, tag::PROTECT_STOP_DATE).is_none_or(|d| now < d)
            }
            Usage::Process => {
                get_date(&r.attributes, tag::PROCESS_START_DATE).is_none_or(|d| now >= d)
            }
        };
        if !window {
            // Wrong Key Lifecycle State in 2.x, Permission Denied for 1.x clients (the OASIS
            // test cases CS-BC-M-14 of both versions)
            return Err(LifecycleError::NotUsable(r.state));
        }
        if let Some(mask) = r
            .attribute(tag::CRYPTOGRAPHIC_USAGE_MASK)
            .and_then(Ttlv::as_i32)
        {
            if (mask as u32) & mask_bit == 0 {
                return Err(LifecycleError::IncompatibleUsageMask);
            }
        }
        let sealed = r.sealed.clone().ok_or(LifecycleError::Destroyed)?;
        let key = Sealed::new(&r.id, sealed);
        Ok((r, key))
    }

    /// The key of `id` for a protecting use of `bytes` bytes (encrypt, sign, MAC): checked
    /// as [`Txn::key_for`] does, then counted against its Usage Limits.
    pub(super) fn key_to_protect(
        &self,
        id: &str,
        mask_bit: u32,
        bytes: usize,
        now: i64,
    ) -> Result<(Record, Sealed), LifecycleError> {
        let (r, key) = self.key_for(id, Usage::Protect, mask_bit, now)?;
        Ok((self.count_use(r, bytes, true)?, key))
    }

    /// Count one protecting use of `bytes` bytes against the key's Usage Limits, if it has
    /// any: the count goes down by the bytes or by one object. A later part of a multi-part
    /// operation (`new_use` false) counts its bytes only.
    pub(super) fn count_use(
        &self,
        r: Record,
        bytes: usize,
        new_use: bool,
    ) -> Result<Record, LifecycleError> {
        use kmip_codec::vocab::enums::usage_limits_unit;
        let Some(limits) = r.attribute(tag::USAGE_LIMITS) else {
            return Ok(r);
        };
        let unit = limits.child(tag::USAGE_LIMITS_UNIT).and_then(Ttlv::as_enum);
        let cost = if unit == Some(usage_limits_unit::BYTE) {
            bytes as i64
        } else {
            i64::from(new_use)
        };
        self.take_usage(r, cost)
    }

    /// Take `cost` units from the Usage Limits Count; more than is left is refused
    /// (Permission Denied, as the OASIS test cases say).
    fn take_usage(&self, mut r: Record, cost: i64) -> Result<Record, LifecycleError> {
        let Some(left) = usage_left(&r) else {
            return Ok(r);
        };
        if cost == 0 {
            return Ok(r);
        }
        if cost < 0 || cost > left {
            return Err(LifecycleError::PermissionDenied(
                "the key's usage limit is exhausted".into(),
            ));
        }
        let Some(pos) = r.attributes.iter().position(|a| a.tag == tag::USAGE_LIMITS) else {
            return Ok(r);
        };
        let mut children: Vec<Ttlv> = r.attributes[pos]
            .children()
            .iter()
            .filter(|c| c.tag != tag::USAGE_LIMITS_COUNT)
            .cloned()
            .collect();
        children.push(Ttlv::new(
            tag::USAGE_LIMITS_COUNT,
            Value::LongInteger(left - cost),
        ));
        r.attributes[pos] = Ttlv::structure(tag::USAGE_LIMITS, children);
        self.put(&r)?;
        Ok(r)
    }

    /// Get Usage Allocation: `count` units of the key's Usage Limits handed to the client,
    /// which applies protection itself. Only for a key that may protect now and has limits.
    pub fn allocate_usage(&self, id: &str, count: i64, now: i64) -> Result<Record, LifecycleError> {
        let (r, _) = self.key_for(id, Usage::Protect, u32::MAX, now)?;
        if usage_left(&r).is_none() {
            return Err(LifecycleError::AttributeNotFound);
        }
        if count <= 0 {
            return Err(LifecycleError::InvalidField(
                "Usage Limits Count must be positive".into(),
            ));
        }
        self.take_usage(r, count)
    }

    /// Obtain Lease: how long the client may use (and cache) the object before asking again:
    /// [`LEASE_TIME`], for an object that may be used at all (Active, or Deactivated or
    /// Compromised for processing).
    pub fn lease(&self, id: &str, now: i64) -> Result<(Record, i64), LifecycleError> {
        let r = self.get(id, now)?;
        if r.state.is_destroyed() {
            return Err(LifecycleError::Destroyed);
        }
        if !may_use(r.state, Usage::Process) {
            return Err(LifecycleError::NotUsable(r.state));
        }
        Ok((r, LEASE_TIME))
    }

    /// The request's parameters, completed from the key's Cryptographic Parameters.
    pub(super) fn params(r: &Record, given: CryptoParams) -> CryptoParams {
        given.or(&CryptoParams::from_ttlv(
            r.attribute(tag::CRYPTOGRAPHIC_PARAMETERS),
        ))
    }

    /// Encrypt `data` with key `id`, which must be Active and allow Encrypt; the use counts against
    /// its Usage Limits.
    pub fn encrypt(
        &self,
        id: &str,
        params: CryptoParams,
        data: &[u8],
        iv: Option<&[u8]>,
        aad: Option<&[u8]>,
        now: i64,
    ) -> Result<Encrypted, LifecycleError> {
        let (r, key) = self.key_to_protect(id, um::ENCRYPT, data.len(), now)?;
        let p = Self::params(&r, params);
        Ok(self.core.encrypt(
            &key,
            &CipherInput {
                params: &p,
                data,
                iv,
                aad,
                tag: None,
            },
        )?)
    }

    /// Decrypt `data` with key `id`, which must allow Decrypt and be Active, Deactivated or
    /// Compromised.
    #[allow(clippy::too_many_arguments)]
    pub fn decrypt(
        &self,
        id: &str,
        params: CryptoParams,
        data: &[u8],
        iv: Option<&[u8]>,
        aad: Option<&[u8]>,
        auth_tag: Option<&[u8]>,
        now: i64,
    ) -> Result<Secret, LifecycleError> {
        let (r, key) = self.key_for(id, Usage::Process, um::DECRYPT, now)?;
        let p = Self::params(&r, params);
        Ok(self.core.decrypt(
            &key,
            &CipherInput {
                params: &p,
                data,
                iv,
                aad,
                tag: auth_tag,
            },
        )?)
    }

    /// Sign `data` with private key `id`, which must be Active and allow Sign; the use counts
    /// against its Usage Limits.
    pub fn sign(
        &self,
        id: &str,
        params: CryptoParams,
        data: &[u8],
        now: i64,
    ) -> Result<Vec<u8>, LifecycleError> {
        let (r, key) = self.key_to_protect(id, um::SIGN, data.len(), now)?;
        Ok(self.core.sign(&key, &Self::params(&r, params), data)?)
    }

    /// Whether `signature` is valid for `data` under public key `id`.
    pub fn verify(
        &self,
        id: &str,
        params: CryptoParams,
        data: &[u8],
        signature: &[u8],
        now: i64,
    ) -> Result<bool, LifecycleError> {
        let (r, key) = self.key_for(id, Usage::Process, um::VERIFY, now)?;
        Ok(self
            .core
            .verify(&key, &Self::params(&r, params), data, signature)?)
    }

    /// The MAC of `data` under key `id`, which must be Active and allow MAC Generate; the use
    /// counts against its Usage Limits.
    pub fn mac(
        &self,
        id: &str,
        params: CryptoParams,
        data: &[u8],
        now: i64,
    ) -> Result<Vec<u8>, LifecycleError> {
        let (r, key) = self.key_to_protect(id, um::MAC_GENERATE, data.len(), now)?;
        Ok(self.core.mac(&key, &Self::params(&r, params), data)?)
    }

    /// Whether `expected` is the MAC of `data` under key `id`.
    pub fn mac_verify(
        &self,
        id: &str,
        params: CryptoParams,
        data: &[u8],
        expected: &[u8],
        now: i64,
    ) -> Result<bool, LifecycleError> {
        let (r, key) = self.key_for(id, Usage::Process, um::MAC_VERIFY, now)?;
        let got = self.core.mac(&key, &Self::params(&r, params), data)?;
        Ok(got.len() == expected.len() && openssl::memcmp::eq(&got, expected))
    }

    /// Derive a new Symmetric Key or Secret Data from the key (or password) `base`.
    pub fn derive_key(
        &self,
        object_type: u32,
        base: &str,
        d: &Derivation<'_>,
        attrs: Vec<Ttlv>,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        attributes::check_client_attributes(&attrs)?;
        let usage = if self.policy.derive_from_pre_active {
            Usage::DeriveFromPreActive
        } else {
            Usage::Protect
        };
        let (r, key) = self.key_for(base, usage, um::DERIVE_KEY, now)?;
        self.may_derive(&r, d, now)?;
        // a derivation is a use of the base key, counted as an encryption is
        self.count_use(r, d.data.map_or(0, <[u8]>::len), true)?;
        let algorithm = attrs
            .iter()
            .find(|a| a.tag == tag::CRYPTOGRAPHIC_ALGORITHM)
            .and_then(Ttlv::as_enum);
        let (material, bits) = self.core.derive(&key, d, object_type, algorithm)?;
        let mut attrs = attrs;
        if !attrs.iter().any(|a| a.tag == tag::CRYPTOGRAPHIC_LENGTH)
            && object_type == ot::SYMMETRIC_KEY
        {
            attrs.push(Ttlv::new(
                tag::CRYPTOGRAPHIC_LENGTH,
                Value::Integer(bits as i32),
            ));
        }
        self.check_names("", &[], &attrs)?;
        let id = self.new_ids(1)?.remove(0);
        let record = self.new_record(&id, object_type, attrs, &material, now)?;
        self.store.commit(vec![Change::Put(record.clone())])?;
        Ok(record)
    }

    /// Get with a Key Wrapping Specification (Encrypt): the object with its Key Value
    /// wrapped under the wrapping key, and the Key Wrapping Data that says how. `encoding` is
    /// the Encoding Option: TTLV Encoding (the default) wraps the whole Key Value structure,
    /// which then travels as a Byte String; No Encoding wraps only the Key Material.
    pub fn export_wrapped(
        &self,
        id: &str,
        wrapping_id: &str,
        params: CryptoParams,
        encoding: u32,
        now: i64,
    ) -> Result<(Record, Ttlv), LifecycleError> {
        use kmip_codec::vocab::enums::encoding_option;
        let r = self.get(id, now)?;
        if r.state.is_destroyed() {
            return Err(LifecycleError::Destroyed);
        }
        // archived: neither used nor fetched, in any form, until it is recovered
        if is_archived(&r) {
            return Err(LifecycleError::Archived);
        }
        let rule = ExportRule::of(&r.attributes);
        rule.permits(true)?;
        // wrapping encrypts under the wrapping key: a grantee needs Encrypt on it (a grant of
        // Get on a KEK is not a grant to wrap with it), and the use counts against its limits
        let sealed = r.sealed.as_ref().ok_or(LifecycleError::Destroyed)?;
        let (wr, wkey) = self
            .with_operation(kmip_codec::vocab::enums::operation::ENCRYPT)
            .key_to_protect(wrapping_id, um::WRAP_KEY, sealed.len(), now)?;
        self.may_wrap(&r, &wr)?;
        let p = Self::params(&wr, params.clone());
        let obj = self.core.export_wrapped(
            &Sealed::new(&r.id, sealed.clone()),
            rule,
            &wkey,
            &p,
            encoding != encoding_option::NO_ENCODING,
        )?;
        Ok((r, obj))
    }
}

#[cfg(test)]
mod usage_limit_tests {
    use super::*;
    use crate::core::CryptoParams;
    use crate::core::MasterKey;
    use crate::store::MemoryStore;
    use kmip_codec::vocab::enums::{block_cipher_mode, usage_limits_unit};

    #[test]
    fn usage_limits_are_counted() {
        let m = Manager::new(
            Arc::new(MemoryStore::new()),
            Core::new(MasterKey::generate().unwrap()),
        )
        .autocommit(None);
        let limits = Ttlv::structure(
            tag::USAGE_LIMITS,
            vec![
                Ttlv::new(tag::USAGE_LIMITS_TOTAL, Value::LongInteger(2)),
                Ttlv::new(
                    tag::USAGE_LIMITS_UNIT,
                    Value::Enumeration(usage_limits_unit::OBJECT),
                ),
            ],
        );
        let attrs = vec![
            Ttlv::new(
                tag::CRYPTOGRAPHIC_ALGORITHM,
                Value::Enumeration(kmip_codec::vocab::enums::cryptographic_algorithm::AES),
            ),
            Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
            date(tag::ACTIVATION_DATE, 1),
            limits,
        ];
        let r = m.create(ot::SYMMETRIC_KEY, attrs, 2).unwrap();
        let p = || CryptoParams {
            block_cipher_mode: Some(block_cipher_mode::ECB),
            ..Default::default()
        };
        let block = [0u8; 16];
        assert!(m.encrypt(&r.id, p(), &block, None, None, 3).is_ok());
        assert!(m.encrypt(&r.id, p(), &block, None, None, 3).is_ok());
        assert!(matches!(
            m.encrypt(&r.id, p(), &block, None, None, 3),
            Err(LifecycleError::PermissionDenied(_))
        ));
        // processing is not counted
        assert!(m.decrypt(&r.id, p(), &block, None, None, None, 3).is_ok());
        let count = m
            .get(&r.id, 4)
            .unwrap()
            .attribute(tag::USAGE_LIMITS)
            .unwrap()
            .child(tag::USAGE_LIMITS_COUNT)
            .cloned();
        assert_eq!(count.map(|c| c.value), Some(Value::LongInteger(0)));
    }
}

#[cfg(test)]
mod derive_policy_tests {
    use super::*;
    use crate::core::MasterKey;
    use crate::core::{CryptoParams, Derivation};
    use crate::store::MemoryStore;
    use kmip_codec::vocab::enums::{
        cryptographic_algorithm as alg, derivation_method, hashing_algorithm,
    };

    /// A Pre-Active base key is refused unless the server policy allows it.
    #[test]
    fn derive_from_pre_active_only_under_the_policy() {
        let aes = |len: i32| {
            vec![
                Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
                Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(len)),
            ]
        };
        let d = Derivation {
            method: derivation_method::HMAC,
            params: CryptoParams {
                hashing_algorithm: Some(hashing_algorithm::SHA_256),
                ..Default::default()
            },
            iv: None,
            data: Some(b"context"),
            salt: None,
            iterations: None,
            length: 16,
        };
        for allow in [false, true] {
            let m = Manager::new(
                Arc::new(MemoryStore::new()),
                Core::new(MasterKey::generate().unwrap()),
            )
            .policy(Policy {
                derive_from_pre_active: allow,
                ..Policy::default()
            })
            .autocommit(None);
            let base = m.create(ot::SYMMETRIC_KEY, aes(256), 1).unwrap();
            assert_eq!(base.state, State::PreActive);
            let got = m.derive_key(ot::SYMMETRIC_KEY, &base.id, &d, aes(128), 2);
            assert_eq!(got.is_ok(), allow, "policy {allow}: {got:?}");
            // an Active base works either way; a Deactivated one never does
            m.activate(&base.id, 3).unwrap();
            assert!(m
                .derive_key(ot::SYMMETRIC_KEY, &base.id, &d, aes(128), 4)
                .is_ok());
            m.revoke(&base.id, rrc::CESSATION_OF_OPERATION, None, None, 5)
                .unwrap();
            assert!(m
                .derive_key(ot::SYMMETRIC_KEY, &base.id, &d, aes(128), 6)
                .is_err());
        }
    }
}
