//! The KMIP object states and every permitted transition, in one table (KMIP 2.1 section 3.52,
//! "State"; KMIP 1.4 section 3.22). Nothing else in the crate decides a transition.

use kmip_codec::vocab::enums::{result_reason, state};
use thiserror::Error;

/// The states of a managed object (KMIP's State enumeration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Created, not yet usable.
    PreActive,
    /// Usable for everything its usage mask allows.
    Active,
    /// Usable to process (decrypt, verify), not to protect.
    Deactivated,
    /// Believed known to others: usable to process (decrypt, verify), never to protect.
    Compromised,
    /// Key material gone; the record and its attributes remain.
    Destroyed,
    /// Destroyed after it was compromised, or compromised after it was destroyed.
    DestroyedCompromised,
}

impl State {
    /// Every state, in the order of KMIP's State enumeration.
    pub const ALL: [State; 6] = [
        State::PreActive,
        State::Active,
        State::Deactivated,
        State::Compromised,
        State::Destroyed,
        State::DestroyedCompromised,
    ];

    /// The KMIP State enumeration value.
    pub fn to_kmip(self) -> u32 {
        match self {
            State::PreActive => state::PRE_ACTIVE,
            State::Active => state::ACTIVE,
            State::Deactivated => state::DEACTIVATED,
            State::Compromised => state::COMPROMISED,
            State::Destroyed => state::DESTROYED,
            State::DestroyedCompromised => state::DESTROYED_COMPROMISED,
        }
    }

    /// The state of a KMIP State value; `None` for a value that names none.
    pub fn from_kmip(v: u32) -> Option<State> {
        State::ALL.into_iter().find(|s| s.to_kmip() == v)
    }

    /// Whether the key material is gone.
    pub fn is_destroyed(self) -> bool {
        matches!(self, State::Destroyed | State::DestroyedCompromised)
    }
}

/// What asks for a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// Activate, or the Activation Date reached (transition 4).
    Activate,
    /// Revoke with a reason other than Key Compromise / CA Compromise, or the Deactivation
    /// Date reached (transition 6).
    Deactivate,
    /// Revoke with reason Key Compromise or CA Compromise (transitions 3, 5, 8, 10).
    Compromise,
    /// Destroy (transitions 2, 7, 9).
    Destroy,
}

/// `(from, event) -> to`: the specification's transitions 2 to 10. Transition 1 (creation) has
/// no source state and is [`initial_state`].
const TRANSITIONS: &[(State, Event, State)] = &[
    (State::PreActive, Event::Destroy, State::Destroyed), // 2
    (State::PreActive, Event::Compromise, State::Compromised), // 3
    (State::PreActive, Event::Activate, State::Active),   // 4
    (State::Active, Event::Compromise, State::Compromised), // 5
    (State::Active, Event::Deactivate, State::Deactivated), // 6
    (State::Deactivated, Event::Destroy, State::Destroyed), // 7
    (State::Deactivated, Event::Compromise, State::Compromised), // 8
    (
        State::Compromised,
        Event::Destroy,
        State::DestroyedCompromised,
    ), // 9
    (
        State::Destroyed,
        Event::Compromise,
        State::DestroyedCompromised,
    ), // 10
];

/// An event the state machine does not permit in a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("{event:?} is not permitted in state {from:?}")]
pub struct IllegalTransition {
    /// The state the object was in.
    pub from: State,
    /// The event refused.
    pub event: Event,
}

impl IllegalTransition {
    /// KMIP answers an illegal transition with Wrong Key Lifecycle State.
    pub fn result_reason(&self) -> u32 {
        result_reason::WRONG_KEY_LIFECYCLE_STATE
    }
}

/// The state an event leads to from `from`, or why it may not happen.
pub fn transition(from: State, event: Event) -> Result<State, IllegalTransition> {
    TRANSITIONS
        .iter()
        .find(|(f, e, _)| *f == from && *e == event)
        .map(|(_, _, to)| *to)
        .ok_or(IllegalTransition { from, event })
}

/// Transition 1, then 4 at once when the Activation Date has already come.
pub fn initial_state(activation_date: Option<i64>, now: i64) -> State {
    match activation_date {
        Some(d) if d <= now => State::Active,
        _ => State::PreActive,
    }
}

/// The state that the dates of an object put it in at `now`: the date-driven transitions 4
/// (Activation Date reached) and 6 (Deactivation Date reached), applied in order.
pub fn apply_dates(
    mut current: State,
    activation_date: Option<i64>,
    deactivation_date: Option<i64>,
    now: i64,
) -> State {
    if current == State::PreActive && activation_date.is_some_and(|d| d <= now) {
        current = State::Active;
    }
    if current == State::Active && deactivation_date.is_some_and(|d| d <= now) {
        current = State::Deactivated;
    }
    current
}

/// How an operation uses a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Usage {
    /// Applies protection: encrypt, sign, wrap, MAC generate, derive.
    Protect,
    /// Processes protected data: decrypt, verify, unwrap, MAC verify.
    Process,
    /// Derivation under the server policy `derive-from-pre-active`: as Protect, and also from
    /// a Pre-Active base object (PyKMIP's server and test suite expect this; the specification
    /// does not allow it, so the policy is off by default).
    DeriveFromPreActive,
}

/// Whether an object in `state` may be used so. Protection only while Active; processing also
/// while Deactivated or Compromised (the specification's "SHOULD only be used to process").
pub fn may_use(state: State, usage: Usage) -> bool {
    match usage {
        Usage::Protect => state == State::Active,
        Usage::DeriveFromPreActive => matches!(state, State::PreActive | State::Active),
        Usage::Process => matches!(
            state,
            State::Active | State::Deactivated | State::Compromised
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    /// Every (state, event) pair against the specification's list, written out independently.
    #[test]
    fn every_pair() {
        let expected = |s: State, e: Event| -> Option<State> {
            match (s, e) {
                (PreActive, Event::Activate) => Some(Active),
                (PreActive, Event::Destroy) => Some(Destroyed),
                (PreActive | Active | Deactivated, Event::Compromise) => Some(Compromised),
                (Destroyed, Event::Compromise) => Some(DestroyedCompromised),
                (Active, Event::Deactivate) => Some(Deactivated),
                (Deactivated, Event::Destroy) => Some(Destroyed),
                (Compromised, Event::Destroy) => Some(DestroyedCompromised),
                _ => None,
            }
        };
        let events = [
            Event::Activate,
            Event::Deactivate,
            Event::Compromise,
            Event::Destroy,
        ];
        let mut allowed = 0;
        for s in State::ALL {
            for e in events {
                assert_eq!(transition(s, e).ok(), expected(s, e), "{s:?} {e:?}");
                allowed += usize::from(expected(s, e).is_some());
            }
        }
        assert_eq!(allowed, 9, "transitions 2 to 10");
        // an Active key must be revoked before it is destroyed
        assert_eq!(
            transition(Active, Event::Destroy)
                .unwrap_err()
                .result_reason(),
            kmip_codec::vocab::enums::result_reason::WRONG_KEY_LIFECYCLE_STATE
        );
    }

    #[test]
    fn usage_by_state() {
        for s in State::ALL {
            assert_eq!(may_use(s, Usage::Protect), s == Active, "{s:?}");
            assert_eq!(
                may_use(s, Usage::DeriveFromPreActive),
                matches!(s, PreActive | Active),
                "{s:?}"
            );
            assert_eq!(
                may_use(s, Usage::Process),
                matches!(s, Active | Deactivated | Compromised),
                "{s:?}"
            );
        }
    }

    #[test]
    fn dates() {
        assert_eq!(initial_state(Some(99), 100), Active);
        assert_eq!(initial_state(Some(101), 100), PreActive);
        assert_eq!(initial_state(None, 100), PreActive);
        assert_eq!(apply_dates(PreActive, Some(10), Some(20), 15), Active);
        assert_eq!(apply_dates(PreActive, Some(10), Some(20), 25), Deactivated);
        assert_eq!(apply_dates(Active, None, Some(20), 19), Active);
        assert_eq!(apply_dates(Compromised, Some(1), Some(2), 3), Compromised);
        for s in State::ALL {
            assert_eq!(State::from_kmip(s.to_kmip()), Some(s));
        }
    }
}
