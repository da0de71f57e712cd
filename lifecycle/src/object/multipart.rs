//! Multi-part cryptographic operations (KMIP 2.1 section 6.1.20): a stream of data over
//! several requests, tied together by the Correlation Value of the first response. Encrypt and
//! Decrypt process each part as it arrives; Sign, Signature Verify, MAC and MAC Verify gather
//! the parts in the core and do the whole operation on the final one. Each part checks the key
//! again, so a key revoked mid-stream stops the stream.

use super::*;
use crate::core::{CipherInput, CoreError, CryptoParams, Encrypted, Stream};
use crate::state::Usage;
use kmip_codec::vocab::enums::{cryptographic_usage_mask as um, operation as op};

/// Where one request stands in a (possibly) multi-part operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// A single request: no indicators, or both with no Correlation Value.
    Whole,
    /// Init Indicator: opens a stream.
    First,
    /// A Correlation Value: continues the stream, and closes it with the Final Indicator.
    Next {
        /// The stream's Correlation Value.
        correlation: &'a [u8],
        /// The Final Indicator: this part closes the stream.
        last: bool,
    },
}

impl<'a> Part<'a> {
    /// Where a request stands, from its Correlation Value, Init Indicator and Final Indicator.
    pub fn of(
        correlation: Option<&'a [u8]>,
        init: Option<bool>,
        last: Option<bool>,
    ) -> Result<Part<'a>, LifecycleError> {
        let (init, last) = (init == Some(true), last == Some(true));
        match (correlation, init, last) {
            (None, true, false) => Ok(Part::First),
            (None, false, false) | (None, true, true) => Ok(Part::Whole),
            (Some(correlation), false, last) => Ok(Part::Next { correlation, last }),
            (None, false, true) => Err(CoreError::InvalidCorrelation.into()),
            (Some(_), true, _) => Err(LifecycleError::InvalidField(
                "an Init Indicator opens a stream; it cannot carry a Correlation Value".into(),
            )),
        }
    }
}

/// What a buffered stream's part gives: more to come, or the whole data to process.
pub enum Gathered {
    /// The part was taken; the stream stays open.
    More {
        /// The key of the stream.
        id: String,
    },
    /// The last part: the stream is closed and its data is whole.
    Done {
        /// The key of the stream.
        id: String,
        /// The Cryptographic Parameters the stream was opened with.
        params: CryptoParams,
        /// Every part's data, in order.
        data: Secret,
    },
}

/// Which use, usage-mask bit and direction each streamed operation makes of its key.
fn key_use(operation: u32) -> Result<(Usage, u32), LifecycleError> {
    Ok(match operation {
        op::ENCRYPT => (Usage::Protect, um::ENCRYPT),
        op::DECRYPT => (Usage::Process, um::DECRYPT),
        op::SIGN => (Usage::Protect, um::SIGN),
        op::SIGNATURE_VERIFY => (Usage::Process, um::VERIFY),
        op::MAC => (Usage::Protect, um::MAC_GENERATE),
        op::MAC_VERIFY => (Usage::Process, um::MAC_VERIFY),
        other => {
            return Err(LifecycleError::NotSupported(format!(
                "multi-part operation 0x{other:X}"
            )))
        }
    })
}

impl Txn {
    fn owner(&self) -> Option<String> {
        self.caller.as_ref().map(|c| c.identity.clone())
    }

    /// Check the key again for a later part, counting the part's bytes against Usage Limits.
    fn recheck(
        &self,
        operation: u32,
        id: &str,
        bytes: usize,
        now: i64,
    ) -> Result<(), LifecycleError> {
        let (usage, bit) = key_use(operation)?;
        let (r, _) = self.key_for(id, usage, bit, now)?;
        if usage == Usage::Protect {
            self.count_use(r, bytes, false)?;
        }
        Ok(())
    }

    /// The first part of a streamed Encrypt or Decrypt: the output so far (and a generated
    /// IV), and the Correlation Value for the next parts.
    pub fn cipher_first(
        &self,
        operation: u32,
        id: &str,
        params: CryptoParams,
        input: (&[u8], Option<&[u8]>, Option<&[u8]>),
        now: i64,
    ) -> Result<(Encrypted, Vec<u8>), LifecycleError> {
        let (data, iv, aad) = input;
        let (r, key) = match key_use(operation)? {
            (Usage::Protect, bit) => self.key_to_protect(id, bit, data.len(), now)?,
            (usage, bit) => self.key_for(id, usage, bit, now)?,
        };
        let p = Self::params(&r, params);
        let input = CipherInput {
            params: &p,
            data,
            iv,
            aad,
            tag: None,
        };
        let (s, out) = self.core.cipher_stream(
            &key,
            self.owner(),
            operation,
            &input,
            operation == op::ENCRYPT,
        )?;
        let correlation = self.core.streams().open(s)?;
        Ok((out, correlation))
    }

    /// A later part of a streamed Encrypt or Decrypt: its output, the key's identifier, and
    /// on the last part the GCM tag (Encrypt) or the tag checked (Decrypt).
    pub fn cipher_next(
        &self,
        operation: u32,
        correlation: &[u8],
        last: bool,
        data: &[u8],
        tag: Option<&[u8]>,
        now: i64,
    ) -> Result<(String, Encrypted), LifecycleError> {
        let streams = self.core.streams();
        let mut s = streams.take(correlation, self.owner().as_deref(), operation)?;
        self.recheck(operation, &s.key_id, data.len(), now)?;
        let mut out = s.update(data)?;
        let id = s.key_id.clone();
        if !last {
            streams.put(correlation.to_vec(), s)?;
            return Ok((
                id,
                Encrypted {
                    data: out,
                    ..Default::default()
                },
            ));
        }
        let (rest, tag) = s.finish(tag)?;
        out.extend_from_slice(&rest);
        Ok((
            id,
            Encrypted {
                data: out,
                generated_iv: None,
                tag,
            },
        ))
    }

    /// The first part of a streamed Sign, Signature Verify, MAC or MAC Verify: the key is
    /// checked now, the data kept; the Correlation Value is returned.
    pub fn gather_first(
        &self,
        operation: u32,
        id: &str,
        params: CryptoParams,
        data: &[u8],
        now: i64,
    ) -> Result<Vec<u8>, LifecycleError> {
        let (usage, bit) = key_use(operation)?;
        let (r, _) = self.key_for(id, usage, bit, now)?;
        let mut s = Stream::gathering(self.owner(), r.id, operation, params);
        s.gather(data)?;
        Ok(self.core.streams().open(s)?)
    }

    /// A later part of a gathered stream; the last one hands back everything for the
    /// operation itself, which checks and counts the key as a single request does.
    pub fn gather_next(
        &self,
        operation: u32,
        correlation: &[u8],
        last: bool,
        data: &[u8],
        now: i64,
    ) -> Result<Gathered, LifecycleError> {
        let streams = self.core.streams();
        let mut s = streams.take(correlation, self.owner().as_deref(), operation)?;
        let (usage, bit) = key_use(operation)?;
        self.key_for(&s.key_id, usage, bit, now)?;
        s.gather(data)?;
        let id = s.key_id.clone();
        if !last {
            streams.put(correlation.to_vec(), s)?;
            return Ok(Gathered::More { id });
        }
        let (params, data) = s.into_data()?;
        Ok(Gathered::Done { id, params, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::MasterKey;
    use crate::store::MemoryStore;
    use kmip_codec::vocab::enums::{block_cipher_mode as bcm, cryptographic_algorithm as alg};

    fn manager(identity: &str) -> Txn {
        Manager::new(
            Arc::new(MemoryStore::new()),
            Core::new(MasterKey::generate().unwrap()),
        )
        .autocommit(None)
        .for_caller(Caller {
            identity: identity.into(),
            admin: false,
            operation: None,
            groups: vec![],
            namespaces: vec![],
        })
    }

    fn active_aes(m: &Txn, extra: Vec<Ttlv>) -> String {
        let mut attrs = vec![
            Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
            Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
            date(tag::ACTIVATION_DATE, 1),
        ];
        attrs.extend(extra);
        m.create(ot::SYMMETRIC_KEY, attrs, 2).unwrap().id
    }

    fn gcm() -> CryptoParams {
        CryptoParams {
            block_cipher_mode: Some(bcm::GCM),
            ..Default::default()
        }
    }

    #[test]
    fn parts_are_recognised() {
        assert_eq!(Part::of(None, None, None).unwrap(), Part::Whole);
        assert_eq!(Part::of(None, Some(true), Some(true)).unwrap(), Part::Whole);
        assert_eq!(Part::of(None, Some(true), None).unwrap(), Part::First);
        assert_eq!(
            Part::of(Some(b"c"), None, Some(true)).unwrap(),
            Part::Next {
                correlation: b"c",
                last: true
            }
        );
        assert!(Part::of(None, None, Some(true)).is_err());
        assert!(Part::of(Some(b"c"), Some(true), None).is_err());
    }

    /// Three parts of AES-GCM give the same ciphertext and tag as one request, and decrypt
    /// back in three other parts.
    #[test]
    fn streamed_gcm_equals_one_shot() {
        let m = manager("alice");
        let id = active_aes(&m, vec![]);
        let plain: Vec<u8> = (0..100u8).collect();
        let iv = [7u8; 12];
        let whole = m
            .encrypt(&id, gcm(), &plain, Some(&iv), Some(b"aad"), 3)
            .unwrap();
        let (first, corr) = m
            .cipher_first(
                op::ENCRYPT,
                &id,
                gcm(),
                (&plain[..10], Some(&iv), Some(b"aad")),
                3,
            )
            .unwrap();
        let (_, mid) = m
            .cipher_next(op::ENCRYPT, &corr, false, &plain[10..60], None, 3)
            .unwrap();
        let (kid, end) = m
            .cipher_next(op::ENCRYPT, &corr, true, &plain[60..], None, 3)
            .unwrap();
        assert_eq!(kid, id);
        let streamed = [first.data, mid.data, end.data].concat();
        assert_eq!(streamed, whole.data);
        assert_eq!(end.tag, whole.tag);
        // the stream is closed
        assert!(m
            .cipher_next(op::ENCRYPT, &corr, true, b"", None, 3)
            .is_err());

        let (d1, corr) = m
            .cipher_first(
                op::DECRYPT,
                &id,
                gcm(),
                (&streamed[..50], Some(&iv), Some(b"aad")),
                3,
            )
            .unwrap();
        let (_, d2) = m
            .cipher_next(
                op::DECRYPT,
                &corr,
                true,
                &streamed[50..],
                whole.tag.as_deref(),
                3,
            )
            .unwrap();
        assert_eq!([d1.data, d2.data].concat(), plain);
    }

    #[test]
    fn a_wrong_tag_fails_at_the_last_part() {
        let m = manager("alice");
        let id = active_aes(&m, vec![]);
        let iv = [1u8; 12];
        let e = m
            .encrypt(&id, gcm(), b"secret data", Some(&iv), None, 3)
            .unwrap();
        let (_, corr) = m
            .cipher_first(op::DECRYPT, &id, gcm(), (&e.data[..4], Some(&iv), None), 3)
            .unwrap();
        let bad = vec![0u8; 16];
        assert!(m
            .cipher_next(op::DECRYPT, &corr, true, &e.data[4..], Some(&bad), 3)
            .is_err());
    }

    #[test]
    fn another_identity_cannot_continue_a_stream() {
        let m = manager("alice");
        let id = active_aes(&m, vec![]);
        let (_, corr) = m
            .cipher_first(op::ENCRYPT, &id, gcm(), (b"abc", Some(&[0u8; 12]), None), 3)
            .unwrap();
        let mallory = m.for_caller(Caller {
            identity: "mallory".into(),
            admin: false,
            operation: None,
            groups: vec![],
            namespaces: vec![],
        });
        let err = mallory
            .cipher_next(op::ENCRYPT, &corr, true, b"d", None, 3)
            .unwrap_err();
        assert_eq!(
            err.result_reason(),
            kmip_codec::vocab::enums::result_reason::INVALID_CORRELATION_VALUE
        );
        // a Decrypt cannot continue an Encrypt either, and alice's stream is still there
        assert!(m
            .cipher_next(op::DECRYPT, &corr, true, b"d", None, 3)
            .is_err());
        assert!(m
            .cipher_next(op::ENCRYPT, &corr, true, b"d", None, 3)
            .is_ok());
    }

    /// A key revoked between parts stops the stream.
    #[test]
    fn a_key_revoked_mid_stream_stops_it() {
        let m = manager("alice");
        let id = active_aes(&m, vec![]);
        let corr = m
            .gather_first(op::MAC, &id, CryptoParams::default(), b"part one", 3)
            .unwrap();
        m.revoke(&id, rrc::CESSATION_OF_OPERATION, None, None, 4)
            .unwrap();
        assert!(matches!(
            m.gather_next(op::MAC, &corr, true, b"part two", 5),
            Err(LifecycleError::NotUsable(State::Deactivated))
        ));
    }

    #[test]
    fn gathered_mac_equals_one_shot() {
        let m = manager("alice");
        let id = active_aes(&m, vec![]);
        let whole = m
            .mac(&id, CryptoParams::default(), b"one two three", 3)
            .unwrap();
        let corr = m
            .gather_first(op::MAC, &id, CryptoParams::default(), b"one ", 3)
            .unwrap();
        assert!(matches!(
            m.gather_next(op::MAC, &corr, false, b"two ", 3).unwrap(),
            Gathered::More { .. }
        ));
        let Gathered::Done {
            id: kid,
            params,
            data,
        } = m.gather_next(op::MAC, &corr, true, b"three", 3).unwrap()
        else {
            panic!("the last part completes the stream")
        };
        assert_eq!(m.mac(&kid, params, data.expose(), 3).unwrap(), whole);
    }
}
