//! Add, Modify and Delete Attribute, under the attribute rules (`crate::attributes`) and the
//! protection rules (`protection.rs`).

use super::*;

impl Txn {
    /// Add one instance of an attribute a client may set.
    pub fn add_attribute(&self, id: &str, item: Ttlv, now: i64) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        let rule = attributes::rule_for(&item)?;
        if !rule.client_sets && !rule.client_modifies {
            return Err(LifecycleError::ReadOnlyAttribute(item.tag));
        }
        if !rule.multiple && r.attributes.iter().any(|a| same_attribute(a, &item)) {
            // VAST adds the Operation Policy Name it created the key with: adding the value
            // the object already has changes nothing and succeeds
            if r.attributes.contains(&item) {
                return Ok(r);
            }
            return Err(LifecycleError::SingleValuedAttribute(item.tag));
        }
        self.may_change_access(&r, item.tag)?;
        self.check_names(id, &r.attributes, std::slice::from_ref(&item))?;
        let before = r.attributes.clone();
        r.attributes.push(item);
        protection::only_tightens(&before, &r.attributes)?;
        implicit::follow_flags(&mut r.attributes);
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.put(&r)?;
        Ok(r)
    }

    /// Replace instance `index` (0 when absent) of the attribute, or, with `current`, the
    /// instance equal to it.
    pub fn modify_attribute(
        &self,
        id: &str,
        current: Option<&Ttlv>,
        new: Ttlv,
        index: usize,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        let rule = attributes::rule_for(&new)?;
        if !rule.client_modifies {
            return Err(LifecycleError::ReadOnlyAttribute(new.tag));
        }
        let pos = match current {
            Some(c) => r.attributes.iter().position(|a| a == c),
            None => r
                .attributes
                .iter()
                .enumerate()
                .filter(|(_, a)| same_attribute(a, &new))
                .nth(index)
                .map(|(i, _)| i),
        }
        .ok_or(LifecycleError::AttributeNotFound)?;
        // a Current Attribute names the instance to replace, of the attribute being modified:
        // every rule below reads the new value's attribute, so replacing another attribute
        // (a read-only one, an Object Group, a CA's issuer link) would delete it unchecked
        if !same_attribute(&r.attributes[pos], &new) {
            return Err(LifecycleError::InvalidField(
                "the Current Attribute and the New Attribute are different attributes".into(),
            ));
        }
        if matches!(new.tag, tag::ACTIVATION_DATE | tag::DEACTIVATION_DATE)
            && r.state != State::PreActive
            && !(new.tag == tag::DEACTIVATION_DATE && r.state == State::Active)
        {
            return Err(LifecycleError::NotUsable(r.state));
        }
        self.may_change_access(&r, new.tag)?;
        let mut others = r.attributes.clone();
        others.remove(pos);
        self.check_names(id, &others, std::slice::from_ref(&new))?;
        let before = r.attributes.clone();
        r.attributes[pos] = new;
        protection::only_tightens(&before, &r.attributes)?;
        implicit::follow_flags(&mut r.attributes);
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.put(&r)?;
        self.get(id, now)
    }

    /// Delete instance `index` of the attribute `target` (matched by tag, or vendor and name),
    /// or the instance equal to `target` when `exact`.
    pub fn delete_attribute(
        &self,
        id: &str,
        target: &Ttlv,
        exact: bool,
        index: usize,
        now: i64,
    ) -> Result<Record, LifecycleError> {
        let mut r = self.get(id, now)?;
        let rule = attributes::rule_for(target)?;
        if !rule.client_deletes {
            return Err(LifecycleError::ReadOnlyAttribute(target.tag));
        }
        let pos = if exact {
            r.attributes.iter().position(|a| a == target)
        } else {
            r.attributes
                .iter()
                .enumerate()
                .filter(|(_, a)| same_attribute(a, target))
                .nth(index)
                .map(|(i, _)| i)
        }
        .ok_or(LifecycleError::AttributeNotFound)?;
        self.may_change_access(&r, target.tag)?;
        let before = r.attributes.clone();
        r.attributes.remove(pos);
        protection::only_tightens(&before, &r.attributes)?;
        set_single(&mut r.attributes, date(tag::LAST_CHANGE_DATE, now));
        self.put(&r)?;
        Ok(r)
    }
}
