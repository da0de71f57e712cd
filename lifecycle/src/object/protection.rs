//! The two promises no request may take back, whoever asks (owner, grantee or administrator):
//!
//! - **Protection only tightens.** Extractable may go from True to False and never back;
//!   Sensitive from False to True and never back (KMIP 2.1 §4.23, §4.55 with §4.3 and §4.33:
//!   Always Sensitive and Never Extractable record that history, which would mean nothing if
//!   the flags could be reset). A replacement made by Re-key is protected at least as its
//!   predecessor was. The Cryptographic Usage Mask is the server's (clients may not modify it,
//!   §4.17), so a CA key made for Certificate Sign never learns to sign arbitrary data.
//! - **Who may use an object is its owner's decision.** Object Group and Application Specific
//!   Information hand objects to whole groups (`--group-grant`, `--namespace-grant`) and Links
//!   tie keys to certificates and CAs. A grantee allowed to add attributes would otherwise
//!   widen its own grant, silently, without the owner's grant list changing.

use super::*;
use kmip_codec::vocab::enums::cryptographic_usage_mask as um;

fn flag(attrs: &[Ttlv], t: Tag) -> Option<bool> {
    attrs.iter().find(|a| a.tag == t).and_then(Ttlv::as_bool)
}

fn usage_mask(attrs: &[Ttlv]) -> Option<u32> {
    get_int(attrs, tag::CRYPTOGRAPHIC_USAGE_MASK).map(|m| m as u32)
}

/// Refuses `after` when it is less protected than `before`: an object that was not
/// extractable becoming extractable (or losing the attribute, which defaults to True), a
/// Sensitive one ceasing to be, or a usage mask gaining a bit or disappearing.
pub(super) fn only_tightens(before: &[Ttlv], after: &[Ttlv]) -> Result<(), LifecycleError> {
    if flag(before, tag::EXTRACTABLE) == Some(false) && flag(after, tag::EXTRACTABLE) != Some(false)
    {
        return Err(LifecycleError::PermissionDenied(
            "Extractable may change from True to False only".into(),
        ));
    }
    if flag(before, tag::SENSITIVE) == Some(true) && flag(after, tag::SENSITIVE) != Some(true) {
        return Err(LifecycleError::PermissionDenied(
            "Sensitive may change from False to True only".into(),
        ));
    }
    if let Some(was) = usage_mask(before) {
        if usage_mask(after).is_none_or(|now| now & !was != 0) {
            return Err(LifecycleError::PermissionDenied(
                "the Cryptographic Usage Mask may not be widened".into(),
            ));
        }
    }
    Ok(())
}

/// The Extractable, Sensitive and usage mask a replacement made from `old` must keep: a
/// client's own attributes for the replacement may tighten them, never loosen them.
pub(super) fn inherit_protection(old: &[Ttlv], new: &[Ttlv]) -> Result<(), LifecycleError> {
    let keep = |t: Tag, v: bool| flag(old, t) != Some(v) || flag(new, t) == Some(v);
    let mask_kept = match (usage_mask(old), usage_mask(new)) {
        (Some(was), Some(now)) => now & !was == 0,
        (Some(_), None) => false,
        (None, _) => true,
    };
    if keep(tag::EXTRACTABLE, false) && keep(tag::SENSITIVE, true) && mask_kept {
        Ok(())
    } else {
        Err(LifecycleError::PermissionDenied(
            "a replacement may not be less protected than the key it replaces (Extractable, \
             Sensitive, Cryptographic Usage Mask)"
                .into(),
        ))
    }
}

/// Attributes that decide who may use an object, beyond its grant list.
pub(super) fn confers_access(t: Tag) -> bool {
    matches!(
        t,
        tag::OBJECT_GROUP | tag::APPLICATION_SPECIFIC_INFORMATION | tag::LINK
    )
}

/// The server attribute (`y-trusted-wrapping-key`) an administrator sets on a wrapping key.
const TRUSTED: &str = "trusted-wrapping-key";

fn trusted_mark() -> Ttlv {
    Ttlv::structure(
        tag::ATTRIBUTE,
        vec![
            text(tag::VENDOR_IDENTIFICATION, "y"),
            text(tag::ATTRIBUTE_NAME, TRUSTED),
            boolean(tag::ATTRIBUTE_VALUE, true),
        ],
    )
}

/// Whether an administrator marked `r` a trusted wrapping key.
pub(crate) fn is_trusted(r: &Record) -> bool {
    r.attributes.contains(&trusted_mark())
}

impl Txn {
    /// Mark (or unmark) `id` as a trusted wrapping key: only an administrator may. A secret
    /// or private key must itself be non-extractable, or the trust would extend to whoever
    /// can fetch it; a public key qualifies as it is (its private half lives elsewhere, in the
    /// HSM or KMS the keys are exported to).
    pub fn trust_wrapping_key(
        &self,
        id: &str,
        trusted: bool,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        if self.caller.as_ref().is_some_and(|c| !c.admin) {
            return Err(LifecycleError::PermissionDenied(
                "only an administrator marks trusted wrapping keys".into(),
            ));
        }
        let mut r = self.get(id, now)?;
        if trusted {
            // a key that can also decrypt, unwrap, encrypt chosen data (CTR keystreams) or
            // derive would let its holders undo what it wrapped: a symmetric or private
            // trusted key only wraps, and its mask can never widen again (only_tightens)
            let wrap_only = usage_mask(&r.attributes).is_some_and(|m| m & !um::WRAP_KEY == 0);
            let kind_ok = match r.object_type {
                ot::PUBLIC_KEY => true,
                ot::SYMMETRIC_KEY | ot::PRIVATE_KEY => {
                    flag(&r.attributes, tag::EXTRACTABLE) == Some(false) && wrap_only
                }
                _ => false,
            };
            if !kind_ok {
                return Err(LifecycleError::InvalidField(
                    "a trusted wrapping key is a public key, or a symmetric or private key with \
                     Extractable = False whose Cryptographic Usage Mask is Wrap Key alone"
                        .into(),
                ));
            }
        }
        r.attributes.retain(|a| *a != trusted_mark());
        if trusted {
            r.attributes.push(trusted_mark());
        }
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.put(&r)?;
        Ok(r)
    }

    /// Under [`Policy::wrap_trusted_only`], a Sensitive `r` leaves wrapped only by a trusted
    /// `wrapping` key.
    pub(super) fn may_wrap(&self, r: &Record, wrapping: &Record) -> Result<(), LifecycleError> {
        if self.policy.wrap_trusted_only
            && flag(&r.attributes, tag::SENSITIVE) == Some(true)
            && !is_trusted(wrapping)
        {
            return Err(LifecycleError::PermissionDenied(
                "a Sensitive key leaves only wrapped by a trusted wrapping key".into(),
            ));
        }
        Ok(())
    }

    /// What Derive Key may not be made into. HASH of a key under SHA-256 is the key's own
    /// Digest attribute, readable by whoever reads its attributes, so it derives nothing
    /// secret. ENCRYPT derivation is an encryption of the caller's data under the base key
    /// (ECB or CBC blocks, from which CTR and GCM keystreams follow): a grantee needs a grant
    /// of Encrypt too, or a Derive Key grant would be an encryption oracle; NIST 800-108
    /// counter mode and PBKDF2 are HMACs under the base key, and take a grant of MAC. The
    /// usage mask needs only Derive Key, as KMIP says (PyKMIP's suite derives so).
    pub(super) fn may_derive(
        &self,
        base: &Record,
        d: &crate::core::Derivation<'_>,
        now: i64,
    ) -> Result<(), LifecycleError> {
        use kmip_codec::vocab::enums::{derivation_method as dm, hashing_algorithm as ha};
        match d.method {
            dm::HASH
                if d.params.hashing_algorithm.unwrap_or(ha::SHA_256) == ha::SHA_256
                    && base.attribute(tag::DIGEST).is_some() =>
            {
                Err(LifecycleError::InvalidField(
                    "the SHA-256 of this key is its Digest attribute: HASH derivation would \
                     make a key that is not secret (choose another Hashing Algorithm)"
                        .into(),
                ))
            }
            dm::ENCRYPT => self
                .with_operation(kmip_codec::vocab::enums::operation::ENCRYPT)
                .get(&base.id, now)
                .map(|_| ()),
            // HMAC under the base key of the caller's data (a counter then the data; the salt
            // then a counter with one iteration): MAC tags that MAC Verify accepts
            dm::NIST800_108_C | dm::PBKDF2 => self
                .with_operation(kmip_codec::vocab::enums::operation::MAC)
                .get(&base.id, now)
                .map(|_| ()),
            _ => Ok(()),
        }
    }

    /// Changing an attribute of `r` that confers access (see [`confers_access`]) takes the
    /// owner's or an administrator's authority; a grantee (or a group member) may not.
    /// Under `--unique-names` neither may it name the object: names are unique among the
    /// owner's objects, so whether a name is taken would tell the grantee of the owner's
    /// objects it cannot see (an existence oracle), whatever the refusal said.
    pub(super) fn may_change_access(&self, r: &Record, t: Tag) -> Result<(), LifecycleError> {
        if confers_access(t) && !self.owns(r) {
            return Err(LifecycleError::PermissionDenied(
                "only the owner or an administrator changes who may use an object (Object \
                 Group, Application Specific Information, Link)"
                    .into(),
            ));
        }
        if t == tag::NAME && self.store.names_unique() && !self.owns(r) {
            return Err(LifecycleError::PermissionDenied(
                "under --unique-names only the owner or an administrator names an object".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(t: Tag, v: bool) -> Ttlv {
        boolean(t, v)
    }

    fn mask(m: i32) -> Ttlv {
        Ttlv::new(tag::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(m))
    }

    #[test]
    fn extractable_and_sensitive_are_one_way() {
        let no_export = [b(tag::EXTRACTABLE, false)];
        assert!(only_tightens(&no_export, &[b(tag::EXTRACTABLE, true)]).is_err());
        assert!(only_tightens(&no_export, &[]).is_err(), "absent means True");
        assert!(only_tightens(&[b(tag::EXTRACTABLE, true)], &no_export).is_ok());
        let sensitive = [b(tag::SENSITIVE, true)];
        assert!(only_tightens(&sensitive, &[b(tag::SENSITIVE, false)]).is_err());
        assert!(
            only_tightens(&sensitive, &[]).is_err(),
            "absent means False"
        );
        assert!(only_tightens(&[], &sensitive).is_ok());
    }

    #[test]
    fn usage_mask_only_narrows() {
        assert!(only_tightens(&[mask(0x1 | 0x4)], &[mask(0x1)]).is_ok());
        assert!(only_tightens(&[mask(0x1)], &[mask(0x1 | 0x4)]).is_err());
        assert!(only_tightens(&[mask(0x1)], &[]).is_err());
        assert!(only_tightens(&[], &[mask(0x1)]).is_ok());
    }

    #[test]
    fn replacements_keep_protection() {
        let old = [b(tag::EXTRACTABLE, false), b(tag::SENSITIVE, true)];
        assert!(inherit_protection(&old, &old).is_ok());
        assert!(inherit_protection(&old, &[b(tag::EXTRACTABLE, false)]).is_err());
        assert!(inherit_protection(&[], &[b(tag::SENSITIVE, true)]).is_ok());
    }
}
