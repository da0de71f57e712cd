//! Master-key rotation on a stopped server: a new master key, every record's material
//! re-sealed under it, and the custody switched to it, such that a crash (SIGKILL, power) at
//! any point leaves a data directory that the same command, run again, finishes.
//!
//! The steps, each durable before the next:
//! 1. the journal, `master.rotation`: the new key (and the purpose root it inherits) sealed
//!    under the old key, and the new key's check value in clear. It is the only copy of the new
//!    key until the custody holds it, and it opens under the old key only, which the custody
//!    still gives back;
//! 2. the records, in batches of one store transaction each. A record that opens under the new
//!    key is done; one that opens under the old key is re-sealed. AES-GCM's tag makes "opens"
//!    exact, so no per-record marker is needed and nothing can be re-sealed twice;
//! 3. `master.purpose`, the purpose root sealed under the new key;
//! 4. the custody's own files, replaced ([`Seal::replace`]); a crash in between leaves a
//!    custody that gives back the new key, which the journal's check value recognises;
//! 5. the journal is deleted ([`finish`]), by the caller once it has done its part (printed
//!    new shares, written the audit record).
//!
//! A server refuses to start while the journal exists: records are then under two keys.

use super::{write_atomic, MasterKey, Seal, SealError, PURPOSE_AAD, PURPOSE_FILE};
use crate::store::{Change, Store};
use std::path::Path;
use zeroize::Zeroizing;

/// The journal of a rotation under way.
pub const ROTATION_FILE: &str = "master.rotation";
const JOURNAL_AAD: &[u8] = b"kmip-rs master rotation journal, format 1";

/// What a rotation did.
pub struct Rotated {
    /// The new master key, the custody's from now on (with its purpose root).
    pub key: MasterKey,
    /// Records in the store.
    pub records: u64,
    /// Records re-sealed by this run (fewer than those with material when it resumed).
    pub resealed: u64,
    /// Whether this run continued one that was interrupted.
    pub resumed: bool,
}

/// Whether `data_dir` has a rotation under way (its records may be under two keys).
pub fn rotation_pending(data_dir: &Path) -> bool {
    data_dir.join(ROTATION_FILE).exists()
}

struct Journal {
    new_check: Vec<u8>,
    sealed: Vec<u8>,
}

impl Journal {
    fn read(path: &Path) -> Result<Option<Journal>, SealError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SealError::file(path, e)),
        };
        let hex = |name: &str| {
            text.lines()
                .filter_map(|l| l.split_once(" = "))
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| kmip_codec::text::unhex(v.trim()))
                .ok_or_else(|| SealError::file(path, format!("not a rotation journal: no {name}")))
        };
        Ok(Some(Journal {
            new_check: hex("new-check")?,
            sealed: hex("sealed")?,
        }))
    }

    fn write(path: &Path, old: &MasterKey, new: &MasterKey) -> Result<(), SealError> {
        let mut plain = Zeroizing::new(Vec::with_capacity(64));
        plain.extend_from_slice(new.0.as_ref());
        plain.extend_from_slice(new.purpose_root()?.as_ref());
        let text = format!(
            "# kmip-server: a master-key rotation is under way; run kmip-server master-rotate \
             again to finish it. The new key is sealed under the old one.\nformat = 1\n\
             new-check = {}\nsealed = {}\n",
            kmip_codec::text::hex(&new.check_value()?),
            kmip_codec::text::hex(&old.seal(JOURNAL_AAD, &plain)?),
        );
        write_atomic(path, text.as_bytes(), true)
    }

    /// The new key, if `old` is the key this journal was sealed under.
    fn open(&self, old: &MasterKey) -> Option<MasterKey> {
        let plain = old.unseal(JOURNAL_AAD, &self.sealed).ok()?;
        let bytes = plain.expose();
        if bytes.len() != 64 {
            return None;
        }
        let mut key = MasterKey::from_bytes(&bytes[..32]).ok()?;
        // filled in place: no copy of the root on the stack outlives this
        let mut root = Zeroizing::new([0u8; 32]);
        root.copy_from_slice(&bytes[32..]);
        key.1 = Some(root);
        Some(key)
    }
}

/// Rotate `data_dir`'s master key, kept by `seal`, re-sealing every record of `store` in
/// transactions of `batch` records; `progress(done, total)` after each. Resumes a rotation
/// that was interrupted. The journal stays until [`finish`].
pub fn rotate(
    data_dir: &Path,
    seal: &dyn Seal,
    store: &dyn Store,
    batch: usize,
    mut progress: impl FnMut(u64, u64),
) -> Result<Rotated, SealError> {
    let journal_path = data_dir.join(ROTATION_FILE);
    let current = seal.unseal()?;
    let (old, new, resumed) = match Journal::read(&journal_path)? {
        None => {
            seal.check(&current)?;
            let old = current.with_purpose_root(data_dir)?;
            let new = old.successor()?;
            Journal::write(&journal_path, &old, &new)?;
            (Some(old), new, false)
        }
        Some(j) => match j.open(&current) {
            Some(new) => (Some(current), new, true),
            // the custody was switched before the interruption: every record is sealed
            // under the new key already, and the purpose root was written under it
            None if current.check(&j.new_check) => {
                (None, current.with_purpose_root(data_dir)?, true)
            }
            None => {
                return Err(SealError::WrongKey(format!(
                    "{} is a rotation under way, which the master key of {} is neither the old \
                     nor the new key of",
                    journal_path.display(),
                    seal.describe()
                )))
            }
        },
    };
    let mut ids = store.all_ids()?;
    ids.sort();
    let total = ids.len() as u64;
    let (mut done, mut resealed) = (0u64, 0u64);
    for chunk in ids.chunks(batch.max(1)) {
        let mut changes = Vec::new();
        for id in chunk {
            let Some(mut record) = store.get(id)? else {
                continue;
            };
            let Some(sealed) = &record.sealed else {
                continue;
            };
            if new.unseal(id.as_bytes(), sealed).is_ok() {
                continue;
            }
            let plain = old
                .as_ref()
                .and_then(|old| old.unseal(id.as_bytes(), sealed).ok())
                .ok_or_else(|| {
                    SealError::WrongKey(format!(
                        "record {id} opens under neither the old nor the new master key: \
                         nothing was changed for it, and the rotation stops here"
                    ))
                })?;
            record.sealed = Some(new.seal(id.as_bytes(), plain.expose())?);
            changes.push(Change::Put(record));
        }
        resealed += changes.len() as u64;
        if !changes.is_empty() {
            store.commit(changes)?;
        }
        done += chunk.len() as u64;
        progress(done, total);
    }
    write_atomic(
        &data_dir.join(PURPOSE_FILE),
        &new.seal(PURPOSE_AAD, new.purpose_root()?.as_ref())?,
        true,
    )?;
    seal.replace(&new)?;
    Ok(Rotated {
        key: new,
        records: total,
        resealed,
        resumed,
    })
}

/// End a rotation: delete its journal, the last copy of the new key sealed under the old one.
pub fn finish(data_dir: &Path) -> Result<(), SealError> {
    let path = data_dir.join(ROTATION_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(SealError::file(&path, e)),
    }
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SealError::file(data_dir, e))
}

#[cfg(test)]
mod tests {
    use super::super::{open, open_existing, FileSeal};
    use super::*;
    use crate::store::{MemoryStore, Record};

    fn record(id: &str, key: &MasterKey, material: &[u8]) -> Record {
        Record {
            id: id.into(),
            object_type: 2,
            state: crate::state::State::Active,
            attributes: Vec::new(),
            sealed: Some(key.seal(id.as_bytes(), material).unwrap()),
            owner: None,
            grants: Vec::new(),
            generated: true,
        }
    }

    #[test]
    fn rotation_reseals_everything_keeps_purpose_keys_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let seal = FileSeal::new(dir.path());
        let old = open(&seal).unwrap();
        let audit_key = old.derive_purpose_key(b"audit", 32).unwrap();
        let store = MemoryStore::default();
        let ids: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
        store
            .commit(
                ids.iter()
                    .map(|id| Change::Put(record(id, &old, id.as_bytes())))
                    .collect(),
            )
            .unwrap();
        // an interrupted run: the journal written and half the records re-sealed by hand
        let new = old.successor().unwrap();
        Journal::write(&dir.path().join(ROTATION_FILE), &old, &new).unwrap();
        for id in &ids[..5] {
            store
                .commit(vec![Change::Put(record(id, &new, id.as_bytes()))])
                .unwrap();
        }
        assert!(rotation_pending(dir.path()));
        let r = rotate(dir.path(), &seal, &store, 3, |_, _| {}).unwrap();
        assert!(r.resumed);
        assert_eq!((r.records, r.resealed), (10, 5));
        assert_eq!(
            r.key.expose(),
            new.expose(),
            "the journal's key, not another"
        );
        finish(dir.path()).unwrap();
        let opened = open_existing(&seal)
            .unwrap()
            .with_purpose_root(dir.path())
            .unwrap();
        assert_eq!(opened.expose(), new.expose());
        assert_eq!(
            opened.derive_purpose_key(b"audit", 32).unwrap().expose(),
            audit_key.expose(),
            "the audit keys survive the rotation"
        );
        for id in &ids {
            let r = store.get(id).unwrap().unwrap();
            let sealed = r.sealed.unwrap();
            assert_eq!(
                opened.unseal(id.as_bytes(), &sealed).unwrap().expose(),
                id.as_bytes()
            );
            assert!(old.unseal(id.as_bytes(), &sealed).is_err());
        }
        assert!(old.with_purpose_root(dir.path()).is_err());
        // once more, from the key file alone: a rotation after a rotation
        let again = rotate(dir.path(), &seal, &store, 4, |_, _| {}).unwrap();
        assert!(!again.resumed);
        assert_eq!(again.resealed, 10);
        assert_eq!(
            again.key.derive_purpose_key(b"audit", 32).unwrap().expose(),
            audit_key.expose()
        );
    }

    #[test]
    fn a_custody_switched_before_the_crash_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let seal = FileSeal::new(dir.path());
        let old = open(&seal).unwrap();
        let store = MemoryStore::default();
        store
            .commit(vec![Change::Put(record("1", &old, b"k"))])
            .unwrap();
        let new = old.successor().unwrap();
        Journal::write(&dir.path().join(ROTATION_FILE), &old, &new).unwrap();
        store
            .commit(vec![Change::Put(record("1", &new, b"k"))])
            .unwrap();
        write_atomic(
            &dir.path().join(PURPOSE_FILE),
            &new.seal(PURPOSE_AAD, new.purpose_root().unwrap().as_ref())
                .unwrap(),
            true,
        )
        .unwrap();
        // the key file replaced, its check value not yet
        write_atomic(&dir.path().join("master.key"), new.0.as_ref(), true).unwrap();
        let r = rotate(dir.path(), &seal, &store, 8, |_, _| {}).unwrap();
        assert_eq!(r.key.expose(), new.expose());
        finish(dir.path()).unwrap();
        assert_eq!(open_existing(&seal).unwrap().expose(), new.expose());
        // a key that is neither is refused, and changes nothing
        Journal::write(&dir.path().join(ROTATION_FILE), &old, &new).unwrap();
        std::fs::write(dir.path().join("master.key"), [9u8; 32]).unwrap();
        assert!(matches!(
            rotate(dir.path(), &seal, &store, 8, |_, _| {}),
            Err(SealError::WrongKey(_))
        ));
    }
}
