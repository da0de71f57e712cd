//! Model-based test: random sequences of create, activate, revoke, destroy and attribute
//! changes run against the Txn on the redb backend and against a plain reference model;
//! after every step the states, names and search results must agree.

use kmip_codec::vocab::enums::{
    cryptographic_algorithm as alg, object_type as ot, revocation_reason_code as rrc,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};
use lifecycle::core::{Core, MasterKey};
use lifecycle::state::State;
use lifecycle::store::RedbStore;
use lifecycle::{LocateQuery, Manager};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug)]
enum Step {
    Create { name: u8, active: bool },
    Activate(usize),
    Revoke { which: usize, compromise: bool },
    Destroy(usize),
    AddName { which: usize, name: u8 },
    DeleteName { which: usize, name: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..4, any::<bool>()).prop_map(|(name, active)| Step::Create { name, active }),
        (0usize..8).prop_map(Step::Activate),
        (0usize..8, any::<bool>())
            .prop_map(|(which, compromise)| Step::Revoke { which, compromise }),
        (0usize..8).prop_map(Step::Destroy),
        (0usize..8, 0u8..4).prop_map(|(which, name)| Step::AddName { which, name }),
        (0usize..8, 0u8..4).prop_map(|(which, name)| Step::DeleteName { which, name }),
    ]
}

/// The reference: states by the specification's list of transitions, names unique among
/// objects not destroyed.
#[derive(Default)]
struct Model {
    objects: BTreeMap<String, (State, Vec<u8>)>,
}

impl Model {
    fn name_taken(&self, name: u8) -> bool {
        self.objects
            .values()
            .any(|(st, names)| !st.is_destroyed() && names.contains(&name))
    }
}

fn name_item(n: u8) -> Ttlv {
    Ttlv::structure(
        tag::NAME,
        vec![
            Ttlv::new(tag::NAME_VALUE, Value::TextString(format!("name-{n}"))),
            Ttlv::new(tag::NAME_TYPE, Value::Enumeration(1)),
        ],
    )
}

fn next(s: State, what: &str) -> Option<State> {
    use State::*;
    Some(match (s, what) {
        (PreActive, "activate") => Active,
        (PreActive, "destroy") => Destroyed,
        (PreActive | Active | Deactivated, "compromise") => Compromised,
        (Destroyed, "compromise") => DestroyedCompromised,
        (Active, "deactivate") => Deactivated,
        (Deactivated, "destroy") => Destroyed,
        (Compromised, "destroy") => DestroyedCompromised,
        _ => return None,
    })
}

fn pick(m: &Model, i: usize) -> Option<String> {
    let n = m.objects.len();
    (n > 0).then(|| m.objects.keys().nth(i % n).cloned().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn manager_agrees_with_the_model(steps in proptest::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        // the model's names are unique (--unique-names; these objects have no owner, so one
        // owner's rule covers them all)
        let store = Arc::new(RedbStore::open(&dir.path().join("m.redb")).unwrap().unique_names(true));
        let m = Manager::new(store, Core::new(MasterKey::generate().unwrap())).autocommit(None);
        let mut model = Model::default();
        let now = 1_000;
        for s in steps {
            match s {
                Step::Create { name, active } => {
                    let mut attrs = vec![
                        Ttlv::new(tag::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(alg::AES)),
                        Ttlv::new(tag::CRYPTOGRAPHIC_LENGTH, Value::Integer(128)),
                        name_item(name),
                    ];
                    if active {
                        attrs.push(Ttlv::new(tag::ACTIVATION_DATE, Value::DateTime(now - 1)));
                    }
                    let got = m.create(ot::SYMMETRIC_KEY, attrs, now);
                    if model.name_taken(name) {
                        prop_assert!(got.is_err(), "name-{} taken twice", name);
                        continue;
                    }
                    let r = got.unwrap();
                    let st = if active { State::Active } else { State::PreActive };
                    prop_assert_eq!(r.state, st);
                    model.objects.insert(r.id, (st, vec![name]));
                }
                Step::Activate(i) | Step::Destroy(i) | Step::Revoke { which: i, .. } => {
                    let Some(id) = pick(&model, i) else { continue };
                    let (what, got) = match s {
                        Step::Activate(_) => ("activate", m.activate(&id, now)),
                        Step::Destroy(_) => ("destroy", m.destroy(&id, now)),
                        Step::Revoke { compromise: true, .. } => ("compromise", m.revoke(&id, rrc::KEY_COMPROMISE, None, None, now)),
                        _ => ("deactivate", m.revoke(&id, rrc::CESSATION_OF_OPERATION, None, None, now)),
                    };
                    let entry = model.objects.get_mut(&id).unwrap();
                    match next(entry.0, what) {
                        Some(to) => {
                            prop_assert_eq!(got.unwrap().state, to);
                            entry.0 = to;
                        }
                        None => prop_assert!(got.is_err(), "{} allowed from {:?}", what, entry.0),
                    }
                }
                Step::AddName { which, name } => {
                    let Some(id) = pick(&model, which) else { continue };
                    let got = m.add_attribute(&id, name_item(name), now);
                    if model.name_taken(name) || model.objects[&id].1.contains(&name) {
                        prop_assert!(got.is_err(), "name-{} taken twice", name);
                        continue;
                    }
                    got.unwrap();
                    model.objects.get_mut(&id).unwrap().1.push(name);
                }
                Step::DeleteName { which, name } => {
                    let Some(id) = pick(&model, which) else { continue };
                    let got = m.delete_attribute(&id, &name_item(name), true, 0, now);
                    let names = &mut model.objects.get_mut(&id).unwrap().1;
                    match names.iter().position(|n| *n == name) {
                        Some(p) => {
                            prop_assert!(got.is_ok());
                            names.remove(p);
                        }
                        None => prop_assert!(got.is_err()),
                    }
                }
            }
            // every object: state and names agree; material exists exactly until destroyed
            for (id, (st, names)) in &model.objects {
                let r = m.get(id, now).unwrap();
                prop_assert_eq!(r.state, *st);
                let mut have: Vec<String> = r.attributes.iter().filter(|a| a.tag == tag::NAME)
                    .filter_map(|a| a.child(tag::NAME_VALUE)?.as_text().map(str::to_owned)).collect();
                let mut want: Vec<String> = names.iter().map(|n| format!("name-{n}")).collect();
                have.sort();
                want.sort();
                prop_assert_eq!(have, want);
                prop_assert_eq!(r.sealed.is_some(), !st.is_destroyed());
            }
            // search by each name and by state agrees with the model
            for n in 0u8..4 {
                let q = LocateQuery { attributes: vec![name_item(n)], ..Default::default() };
                let mut got = m.locate(&q, now).unwrap();
                got.sort();
                let want: Vec<String> = model.objects.iter()
                    .filter(|(_, (st, names))| !st.is_destroyed() && names.contains(&n))
                    .map(|(id, _)| id.clone()).collect();
                prop_assert_eq!(got, want, "name-{}", n);
            }
            for st in State::ALL {
                let q = LocateQuery {
                    attributes: vec![Ttlv::new(tag::STATE, Value::Enumeration(st.to_kmip()))],
                    include_destroyed: true,
                    ..Default::default()
                };
                let got = m.locate(&q, now).unwrap().len();
                let want = model.objects.values().filter(|(s, _)| *s == st).count();
                prop_assert_eq!(got, want, "{:?}", st);
            }
        }
    }
}
