//! Locate: candidates cut to what the caller reaches through the indexes, then each record
//! matched against the criteria, within the request's budget.

use super::*;

/// What Locate matches on, besides attribute equality.
#[derive(Clone, Debug, Default)]
pub struct LocateQuery {
    /// 2.x attribute items. Two instances of a date attribute give a range.
    pub attributes: Vec<Ttlv>,
    /// Return at most this many identifiers.
    pub maximum_items: Option<usize>,
    /// Skip this many matching objects first.
    pub offset_items: usize,
    /// Include destroyed objects (the 2.x Storage Status Mask bit "Destroyed storage"); by
    /// default Locate finds only objects that still exist.
    pub include_destroyed: bool,
    /// Include archived objects (Storage Status Mask "Archival storage").
    pub include_archived: bool,
    /// Leave out objects in on-line storage (a Storage Status Mask without "On-line storage").
    pub exclude_online: bool,
    /// Checked between records: a scan stops when its time is up or its client has gone.
    pub budget: crate::Budget,
}

/// Whether a record meets every criterion.
fn matches(r: &Record, criteria: &[Ttlv]) -> bool {
    let mut done: Vec<Tag> = Vec::new();
    for c in criteria {
        match c.tag {
            tag::UNIQUE_IDENTIFIER => {
                if c.as_text() != Some(r.id.as_str()) {
                    return false;
                }
            }
            tag::OBJECT_TYPE => {
                if c.as_enum() != Some(r.object_type) {
                    return false;
                }
            }
            tag::STATE => {
                if c.as_enum() != Some(r.state.to_kmip()) {
                    return false;
                }
            }
            tag::CRYPTOGRAPHIC_USAGE_MASK => {
                let want = c.as_i32().unwrap_or(0) as u32;
                let have = r.attribute(c.tag).and_then(Ttlv::as_i32).unwrap_or(0) as u32;
                if have & want != want {
                    return false;
                }
            }
            tag::NAME => {
                let want = c.child(tag::NAME_VALUE).and_then(Ttlv::as_text);
                let want_type = c.child(tag::NAME_TYPE).and_then(Ttlv::as_enum);
                let hit = r.attributes.iter().filter(|a| a.tag == tag::NAME).any(|a| {
                    a.child(tag::NAME_VALUE).and_then(Ttlv::as_text) == want
                        && want_type.is_none_or(|t| {
                            a.child(tag::NAME_TYPE).and_then(Ttlv::as_enum) == Some(t)
                        })
                });
                if !hit {
                    return false;
                }
            }
            _ if matches!(c.value, Value::DateTime(_)) => {
                if done.contains(&c.tag) {
                    continue;
                }
                done.push(c.tag);
                // two instances of a date criterion bound a range, one asks for equality
                let bounds: Vec<i64> = criteria
                    .iter()
                    .filter(|x| x.tag == c.tag)
                    .filter_map(Ttlv::as_datetime)
                    .collect();
                let (lo, hi) = match bounds.as_slice() {
                    [a, b] => (*a.min(b), *a.max(b)),
                    _ => (bounds[0], bounds[0]),
                };
                let Some(have) = r.attribute(c.tag).and_then(Ttlv::as_datetime) else {
                    return false;
                };
                if have < lo || have > hi {
                    return false;
                }
            }
            _ => {
                if !implicit::has_attribute(r, c) {
                    return false;
                }
            }
        }
    }
    true
}

impl Txn {
    /// Identifiers of the objects that match every criterion, newest first. An indexed
    /// criterion (Name, Object Type, State, algorithm, length, group, certificate type, custom
    /// attribute) narrows the candidates through the index before any record is read.
    pub fn locate(&self, q: &LocateQuery, now: i64) -> Result<Vec<String>, LifecycleError> {
        // every indexed criterion narrows in the store (one query where the engine is SQL);
        // a Name criterion may omit the Name Type, which the index does not need
        let mut narrowing: Vec<Vec<u8>> = q.attributes.iter().filter_map(item_index_key).collect();
        narrowing.sort();
        narrowing.dedup();
        // a caller that is not an administrator reaches only what it owns, was granted, or
        // was given by group: its candidates are cut to those through the indexes, so a
        // foreign record is never read, matched or counted (no oracle on others' values,
        // nor on their existence through time)
        let reach = self.reach_keys();
        let mut ids = self.store.search(&narrowing, reach.as_deref())?;
        ids.sort();
        ids.dedup();
        ids.sort_by_key(|id| std::cmp::Reverse(id.parse::<u64>().unwrap_or(0)));
        let mut out = Vec::new();
        if q.maximum_items == Some(0) {
            return Ok(out);
        }
        let mut skipped = 0;
        for (n, id) in ids.into_iter().enumerate() {
            if n % 64 == 0 {
                q.budget.check()?;
            }
            let Some(mut r) = self.store.peek(&id)? else {
                continue;
            };
            if self.dates_due(&r, now) {
                // written back: read as a change's base
                let Some(fresh) = self.store.get(&id)? else {
                    continue;
                };
                r = fresh;
                self.apply_due_dates(&mut r, now)?;
            }
            let storage_ok = if r.state.is_destroyed() {
                q.include_destroyed
            } else if is_archived(&r) {
                q.include_archived
            } else {
                !q.exclude_online
            };
            if !self.findable(&r) || !storage_ok || !matches(&r, &q.attributes) {
                continue;
            }
            if skipped < q.offset_items {
                skipped += 1;
                continue;
            }
            out.push(id);
            if q.maximum_items.is_some_and(|m| out.len() >= m) {
                break;
            }
        }
        Ok(out)
    }
}
