//! State changes a request asks for: Activate, Revoke, Archive, Recover, Destroy, each a
//! row of the state table (`crate::state`).

use super::*;

impl Txn {
    pub(super) fn change_state(
        &self,
        r: &mut Record,
        event: Event,
        now: i64,
    ) -> Result<(), LifecycleError> {
        r.state = state::transition(r.state, event)?;
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        Ok(())
    }

    /// Make a Pre-Active object Active, and record its Activation Date.
    pub fn activate(&self, id: &str, now: i64) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        self.change_state(&mut r, Event::Activate, now)?;
        set_single(&mut r.attributes, date(tag::ACTIVATION_DATE, now));
        self.put(&r)?;
        Ok(r)
    }

    /// Revoke with a Revocation Reason Code (and message); key and CA compromise compromise the
    /// object, any other reason deactivates it.
    pub fn revoke(
        &self,
        id: &str,
        reason: u32,
        message: Option<&str>,
        compromise_occurrence: Option<i64>,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        let compromised = matches!(reason, rrc::KEY_COMPROMISE | rrc::CA_COMPROMISE);
        let event = if compromised {
            Event::Compromise
        } else {
            Event::Deactivate
        };
        self.change_state(&mut r, event, now)?;
        let mut rr = vec![Ttlv::new(
            tag::REVOCATION_REASON_CODE,
            Value::Enumeration(reason),
        )];
        if let Some(m) = message {
            rr.push(text(tag::REVOCATION_MESSAGE, m));
        }
        set_single(
            &mut r.attributes,
            Ttlv::structure(tag::REVOCATION_REASON, rr),
        );
        if compromised {
            set_single(&mut r.attributes, date(tag::COMPROMISE_DATE, now));
            set_single(
                &mut r.attributes,
                date(
                    tag::COMPROMISE_OCCURRENCE_DATE,
                    compromise_occurrence.unwrap_or(now),
                ),
            );
        } else {
            set_single(&mut r.attributes, date(tag::DEACTIVATION_DATE, now));
        }
        self.put(&r)?;
        Ok(r)
    }

    /// Move the object to archival storage: it keeps its metadata and material but cannot be
    /// used or fetched until it is recovered.
    pub fn archive(&self, id: &str, now: i64) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        if r.state.is_destroyed() {
            return Err(LifecycleError::Destroyed);
        }
        set_single(&mut r.attributes, date(tag::ARCHIVE_DATE, now));
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.put(&r)?;
        Ok(r)
    }

    /// Bring an archived object back on-line.
    pub fn recover(&self, id: &str, now: i64) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        r.attributes.retain(|a| a.tag != tag::ARCHIVE_DATE);
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.put(&r)?;
        Ok(r)
    }

    /// Destroy: the state changes, the Destroy Date is set, the sealed material is dropped.
    pub fn destroy(&self, id: &str, now: i64) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        self.change_state(&mut r, Event::Destroy, now)?;
        set_single(&mut r.attributes, date(tag::DESTROY_DATE, now));
        if r.sealed.take().is_some() {
            // the core's parsed copy goes with the material, dropped unopened
            self.core.forget(&r.id);
        }
        self.put(&r)?;
        Ok(r)
    }
}
