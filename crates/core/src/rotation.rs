//! The signing-key rotation timeline as rules: which key signs, which keys JWKS publishes,
//! and what must change at a given instant.
//!
//! Rotating without downtime means no verifier ever sees a token whose key it has not yet
//! fetched, or loses a key while tokens it signed are still valid (RFC 7517 §5 key sets;
//! OpenID Connect Core §10.1.1 on signing-key rollover). So a key is published as `Next` for
//! a pre-publication period before it signs, becomes `Active` at its activation time (the old
//! key retiring at that same instant), stays published as `Retired` until the last token it
//! can have signed has expired, and is then removed. A compromised key is `Revoked`: it
//! leaves JWKS at once and another key signs immediately.
//!
//! Everything is a pure function of the key timelines, the [`RotationPolicy`] and `now`:
//! the caller performs the [`Transition`]s (generating keys, updating the store, writing
//! audit events) and calls [`plan`] again whenever it likes — a plan for a timeline that
//! needs nothing is empty.

use crate::{CoreError, Kid, UnixTime};

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Published, not yet signing; signs from `activates_at`.
    Next,
    /// Signs new tokens; published.
    Active,
    /// No longer signs; published until its last token has expired.
    Retired,
    /// Compromised: never published, never signs; its tokens are invalid.
    Revoked,
}

/// A signing key's state as the key table records it: a place on the timeline
/// ([`KeyState`]), or `Removed` (its last token expired; kept as history so old audit
/// checkpoints stay verifiable). Parsed once where rows are read; never compared as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoredKeyState {
    Next,
    Active,
    Retired,
    Revoked,
    Removed,
}

impl StoredKeyState {
    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
            Self::Removed => "removed",
        }
    }

    /// Reads the stored spelling.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        match s {
            "next" => Ok(Self::Next),
            "active" => Ok(Self::Active),
            "retired" => Ok(Self::Retired),
            "revoked" => Ok(Self::Revoked),
            "removed" => Ok(Self::Removed),
            other => Err(CoreError::invalid(
                "key state",
                format!("unknown key state {other:?}"),
            )),
        }
    }

    /// Its place on the timeline; `None` for a removed key.
    pub const fn on_timeline(self) -> Option<KeyState> {
        match self {
            Self::Next => Some(KeyState::Next),
            Self::Active => Some(KeyState::Active),
            Self::Retired => Some(KeyState::Retired),
            Self::Revoked => Some(KeyState::Revoked),
            Self::Removed => None,
        }
    }
}

impl From<KeyState> for StoredKeyState {
    fn from(state: KeyState) -> Self {
        match state {
            KeyState::Next => Self::Next,
            KeyState::Active => Self::Active,
            KeyState::Retired => Self::Retired,
            KeyState::Revoked => Self::Revoked,
        }
    }
}

impl std::fmt::Display for StoredKeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One signing key's place on the timeline (all times in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTimeline {
    /// The key's id.
    pub kid: Kid,
    /// Its current state.
    pub state: KeyState,
    /// When it was generated.
    pub created_at: UnixTime,
    /// When it starts (or started) signing; a `Next` key without one waits for an operator.
    pub activates_at: Option<UnixTime>,
    /// When it stopped signing (`Retired`) or was revoked (`Revoked`).
    pub retired_at: Option<UnixTime>,
}

impl KeyTimeline {
    /// When this key began signing: its activation time, else its creation.
    fn active_since(&self) -> UnixTime {
        self.activates_at.unwrap_or(self.created_at)
    }
}

/// How keys rotate; parsed once from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// How long a new key is published before it signs, so every JWKS cache has it.
    /// Default 86400 (24 h).
    pub prepublish_secs: i64,
    /// Scheduled rotation: a key signs for this long before its successor takes over.
    /// Default `None` (rotate only on demand). Must exceed `prepublish_secs`.
    pub rotate_every_secs: Option<i64>,
    /// The longest lifetime of any token a key signs; a retired key stays published this
    /// long. Default 86400 (24 h).
    pub max_token_ttl_secs: i64,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        RotationPolicy {
            prepublish_secs: 86_400,
            rotate_every_secs: None,
            max_token_ttl_secs: 86_400,
        }
    }
}

impl RotationPolicy {
    /// Checks the policy makes sense: no negative periods, and a rotation interval longer
    /// than pre-publication (else a key's successor would be due the moment it activates).
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.prepublish_secs < 0 {
            return Err(CoreError::invalid(
                "prepublish_secs",
                "must not be negative",
            ));
        }
        if self.max_token_ttl_secs < 0 {
            return Err(CoreError::invalid(
                "max_token_ttl_secs",
                "must not be negative",
            ));
        }
        if let Some(every) = self.rotate_every_secs {
            if every <= self.prepublish_secs {
                return Err(CoreError::invalid(
                    "rotate_every_secs",
                    "must be longer than the pre-publication period",
                ));
            }
        }
        Ok(())
    }

    /// Whether a retired key's tokens may still be valid at `now`. A key without a
    /// retirement time is kept, since its last token cannot be dated.
    fn still_verifies(&self, key: &KeyTimeline, now: UnixTime) -> bool {
        key.retired_at
            .is_none_or(|retired| now < retired.saturating_add(self.max_token_ttl_secs))
    }
}

/// One change the caller must make now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Generate a key and publish it as `Next`, signing from `activates_at`.
    CreateNext { activates_at: UnixTime },
    /// Generate a key and make it `Active` at once (no successor was published: there is no
    /// active key, or the active one was compromised).
    CreateAndActivate { at: UnixTime },
    /// `Next` → `Active`: the key signs from `at`.
    Activate { kid: Kid, at: UnixTime },
    /// `Active` (or a superseded `Next`) → `Retired` at `at`: it stops signing and stays
    /// published until `at + max_token_ttl_secs`.
    Retire { kid: Kid, at: UnixTime },
    /// Remove a retired key whose tokens have all expired: out of JWKS, key material
    /// destroyed.
    Remove { kid: Kid },
    /// → `Revoked` at `at`: out of JWKS at once; tokens it signed introspect as inactive.
    Revoke { kid: Kid, at: UnixTime },
}

/// The newest key (by activation, then creation, then kid) among `keys`.
fn newest<'k>(keys: impl Iterator<Item = &'k KeyTimeline>) -> Option<&'k KeyTimeline> {
    keys.max_by(|a, b| {
        (a.active_since(), a.created_at, &a.kid).cmp(&(b.active_since(), b.created_at, &b.kid))
    })
}

/// What must happen at `now`: promote a due `Next` key (retiring the active one at the same
/// instant), make sure one key is always active, schedule the next key when rotation is
/// due and none is pending, and remove retired keys whose tokens have all expired.
pub fn plan(keys: &[KeyTimeline], policy: &RotationPolicy, now: UnixTime) -> Vec<Transition> {
    let mut transitions = Vec::new();
    let in_state = |state| keys.iter().filter(move |k| k.state == state);
    let due_next = in_state(KeyState::Next).filter(|k| k.activates_at.is_some_and(|at| at <= now));

    // Who signs after this plan: the newest due Next key, else the newest Active one, else
    // (never zero active keys) the newest pending Next key, its pre-publication cut short.
    let active = newest(in_state(KeyState::Active));
    let promoted = newest(due_next.clone()).or_else(|| match active {
        Some(_) => None,
        None => newest(in_state(KeyState::Next)),
    });
    let signer = match promoted {
        Some(next) => {
            transitions.push(Transition::Activate {
                kid: next.kid.clone(),
                at: now,
            });
            Some((next.kid.clone(), now))
        }
        None => active.map(|k| (k.kid.clone(), k.active_since())),
    };
    // Every other key that is or would be signing retires now: the previous Active key at
    // the switch, and Next keys overtaken by a later one while nobody ran the plan.
    for key in in_state(KeyState::Active).chain(due_next) {
        if signer.as_ref().is_some_and(|(kid, _)| *kid != key.kid) {
            transitions.push(Transition::Retire {
                kid: key.kid.clone(),
                at: now,
            });
        }
    }

    match &signer {
        None => transitions.push(Transition::CreateAndActivate { at: now }),
        Some((kid, active_since)) => {
            let pending = in_state(KeyState::Next)
                .any(|k| k.kid != *kid && k.activates_at.is_some_and(|at| at > now));
            if let Some(every) = policy.rotate_every_secs {
                // Created `prepublish` before the switch so the switch lands on schedule;
                // when late, pre-publication is never cut short — the switch moves instead.
                let due_at = active_since
                    .saturating_add(every)
                    .saturating_sub(policy.prepublish_secs);
                if !pending && now >= due_at {
                    transitions.push(Transition::CreateNext {
                        activates_at: now.saturating_add(policy.prepublish_secs),
                    });
                }
            }
        }
    }

    for key in in_state(KeyState::Retired) {
        if !policy.still_verifies(key, now) {
            transitions.push(Transition::Remove {
                kid: key.kid.clone(),
            });
        }
    }
    transitions
}

/// On-demand rotation (`portcullis key rotate`): publish a new `Next` key that signs after
/// the pre-publication period, unless one is already pending.
pub fn rotate(keys: &[KeyTimeline], policy: &RotationPolicy, now: UnixTime) -> Vec<Transition> {
    let pending = keys
        .iter()
        .any(|k| k.state == KeyState::Next && k.activates_at.is_some_and(|at| at > now));
    if pending {
        return Vec::new();
    }
    vec![Transition::CreateNext {
        activates_at: now.saturating_add(policy.prepublish_secs),
    }]
}

/// The configured kind of key (algorithm or custody backend) changed and no key of the new
/// kind is pending: a new key signs at once and every `Active` and `Next` key retires now,
/// staying published until its tokens have expired. (A verifier that has not yet fetched the
/// new key refetches JWKS on the unknown `kid`; scheduling the change with `rotate` instead
/// avoids even that.)
pub fn replace(keys: &[KeyTimeline], now: UnixTime) -> Vec<Transition> {
    let mut transitions = vec![Transition::CreateAndActivate { at: now }];
    transitions.extend(
        keys.iter()
            .filter(|k| matches!(k.state, KeyState::Active | KeyState::Next))
            .map(|k| Transition::Retire {
                kid: k.kid.clone(),
                at: now,
            }),
    );
    transitions
}

/// The kids JWKS publishes at `now`: every `Next` and `Active` key and the `Retired` keys
/// whose tokens may still be valid; never a `Revoked` one.
pub fn published(keys: &[KeyTimeline], policy: &RotationPolicy, now: UnixTime) -> Vec<Kid> {
    keys.iter()
        .filter(|k| match k.state {
            KeyState::Next | KeyState::Active => true,
            KeyState::Retired => policy.still_verifies(k, now),
            KeyState::Revoked => false,
        })
        .map(|k| k.kid.clone())
        .collect()
}

/// The key that signs new tokens: the newest `Active` one.
pub fn signing_key(keys: &[KeyTimeline]) -> Option<&Kid> {
    newest(keys.iter().filter(|k| k.state == KeyState::Active)).map(|k| &k.kid)
}

/// Emergency rotation after `kid` is suspected compromised: it is revoked at once; if it
/// was signing, the newest `Next` key signs from now on, or a new key is created to.
/// Revoking an already revoked key changes nothing.
pub fn compromise(
    keys: &[KeyTimeline],
    kid: &Kid,
    now: UnixTime,
) -> Result<Vec<Transition>, CoreError> {
    let key = keys
        .iter()
        .find(|k| k.kid == *kid)
        .ok_or_else(|| CoreError::invalid("kid", "no key has this kid"))?;
    if key.state == KeyState::Revoked {
        return Ok(Vec::new());
    }
    let mut transitions = vec![Transition::Revoke {
        kid: kid.clone(),
        at: now,
    }];
    let other_active = keys
        .iter()
        .any(|k| k.state == KeyState::Active && k.kid != *kid);
    if key.state == KeyState::Active && !other_active {
        let successor = newest(
            keys.iter()
                .filter(|k| k.state == KeyState::Next && k.kid != *kid),
        );
        transitions.push(match successor {
            Some(next) => Transition::Activate {
                kid: next.kid.clone(),
                at: now,
            },
            None => Transition::CreateAndActivate { at: now },
        });
    }
    Ok(transitions)
}

/// Retires `kid` on an operator's request. A pending `Next` key is withdrawn (published
/// until `max_token_ttl_secs`, though it never signed, harmlessly). The `Active` key may go
/// only if a published successor takes over at once; with none, the operator must first
/// publish one (`rotate`) so verifiers have it before it signs.
pub fn retire(
    keys: &[KeyTimeline],
    kid: &Kid,
    now: UnixTime,
) -> Result<Vec<Transition>, CoreError> {
    let key = keys
        .iter()
        .find(|k| k.kid == *kid)
        .ok_or_else(|| CoreError::invalid("kid", "no key has this kid"))?;
    match key.state {
        KeyState::Next => Ok(vec![Transition::Retire {
            kid: kid.clone(),
            at: now,
        }]),
        KeyState::Active => {
            let other_active = keys
                .iter()
                .any(|k| k.state == KeyState::Active && k.kid != *kid);
            if other_active {
                return Ok(vec![Transition::Retire {
                    kid: kid.clone(),
                    at: now,
                }]);
            }
            let successor = newest(keys.iter().filter(|k| k.state == KeyState::Next));
            match successor {
                Some(next) => Ok(vec![
                    Transition::Activate { kid: next.kid.clone(), at: now },
                    Transition::Retire { kid: kid.clone(), at: now },
                ]),
                None => Err(CoreError::conflict(
                    "kid",
                    "this key is the only one signing: publish a successor first (key rotate), then retire it",
                )),
            }
        }
        KeyState::Retired | KeyState::Revoked => Ok(Vec::new()),
    }
}

/// The timelines after `transitions`, as the caller's store should hold them; new keys get
/// their ids from `new_kid`. Removed keys disappear.
pub fn apply(
    keys: &[KeyTimeline],
    transitions: &[Transition],
    now: UnixTime,
    new_kid: &mut dyn FnMut() -> Kid,
) -> Vec<KeyTimeline> {
    let mut keys = keys.to_vec();
    for transition in transitions {
        let mut set = |kid: &Kid, state, activates_at: Option<UnixTime>, retired_at| {
            if let Some(key) = keys.iter_mut().find(|k| k.kid == *kid) {
                key.state = state;
                key.activates_at = activates_at.or(key.activates_at);
                key.retired_at = retired_at;
            }
        };
        match transition {
            Transition::Activate { kid, at } => set(kid, KeyState::Active, Some(*at), None),
            Transition::Retire { kid, at } => set(kid, KeyState::Retired, None, Some(*at)),
            Transition::Revoke { kid, at } => set(kid, KeyState::Revoked, None, Some(*at)),
            Transition::Remove { kid } => keys.retain(|k| k.kid != *kid),
            Transition::CreateNext { activates_at } => keys.push(KeyTimeline {
                kid: new_kid(),
                state: KeyState::Next,
                created_at: now,
                activates_at: Some(*activates_at),
                retired_at: None,
            }),
            Transition::CreateAndActivate { at } => keys.push(KeyTimeline {
                kid: new_kid(),
                state: KeyState::Active,
                created_at: now,
                activates_at: Some(*at),
                retired_at: None,
            }),
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    #[test]
    fn stored_key_states_round_trip_and_unknown_ones_are_refused() {
        for state in [
            StoredKeyState::Next,
            StoredKeyState::Active,
            StoredKeyState::Retired,
            StoredKeyState::Revoked,
            StoredKeyState::Removed,
        ] {
            assert_eq!(StoredKeyState::parse(state.as_str()), Ok(state));
        }
        assert!(StoredKeyState::parse("Active").is_err());
        assert_eq!(StoredKeyState::Removed.on_timeline(), None);
        assert_eq!(
            StoredKeyState::from(KeyState::Retired).on_timeline(),
            Some(KeyState::Retired)
        );
    }

    use super::*;

    const HOUR: i64 = 3_600;
    const DAY: i64 = 86_400;

    fn kid(name: &str) -> Kid {
        Kid::parse(name).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn policy() -> RotationPolicy {
        RotationPolicy {
            prepublish_secs: DAY,
            rotate_every_secs: Some(30 * DAY),
            max_token_ttl_secs: DAY,
        }
    }

    fn key(name: &str, state: KeyState, activates_at: Option<i64>) -> KeyTimeline {
        KeyTimeline {
            kid: kid(name),
            state,
            created_at: 0,
            activates_at,
            retired_at: None,
        }
    }

    /// A store of timelines driven by an injected clock; new keys are k2, k3, ...
    struct Timeline {
        keys: Vec<KeyTimeline>,
        created: u32,
        policy: RotationPolicy,
    }

    impl Timeline {
        fn starting_with_k1_active_at_zero(policy: RotationPolicy) -> Timeline {
            Timeline {
                keys: vec![key("k1", KeyState::Active, Some(0))],
                created: 1,
                policy,
            }
        }

        /// Plans at `now`, applies the plan and returns it.
        fn tick(&mut self, now: i64) -> Vec<Transition> {
            let transitions = plan(&self.keys, &self.policy, now);
            self.apply(&transitions, now);
            transitions
        }

        fn apply(&mut self, transitions: &[Transition], now: i64) {
            let created = &mut self.created;
            let mut new_kid = || {
                *created += 1;
                kid(&format!("k{created}"))
            };
            self.keys = apply(&self.keys, transitions, now, &mut new_kid);
        }

        fn published(&self, now: i64) -> Vec<String> {
            published(&self.keys, &self.policy, now)
                .into_iter()
                .map(String::from)
                .collect()
        }

        fn signing(&self) -> Option<&str> {
            signing_key(&self.keys).map(Kid::as_str)
        }
    }

    #[test]
    fn empty_key_set_gets_a_key_that_signs_at_once() {
        let transitions = plan(&[], &RotationPolicy::default(), 1_000);
        assert_eq!(
            transitions,
            vec![Transition::CreateAndActivate { at: 1_000 }]
        );
    }

    #[test]
    fn scheduled_rotation_prepublishes_switches_and_removes_the_old_key_after_its_tokens_expire() {
        let mut t = Timeline::starting_with_k1_active_at_zero(policy());

        // Before: nothing to do, k1 signs alone.
        assert_eq!(t.tick(28 * DAY), vec![]);
        assert_eq!(t.published(28 * DAY), ["k1"]);

        // Rotation due one pre-publication period before the switch: k2 is published.
        assert_eq!(
            t.tick(29 * DAY),
            vec![Transition::CreateNext {
                activates_at: 30 * DAY
            }]
        );
        assert_eq!(t.signing(), Some("k1"));
        assert_eq!(t.published(29 * DAY), ["k1", "k2"]);

        // During pre-publication: still k1, and no second successor.
        for now in [29 * DAY + HOUR, 30 * DAY - 1] {
            assert_eq!(t.tick(now), vec![], "at {now}");
            assert_eq!(t.signing(), Some("k1"));
        }

        // At the switch: k2 signs, k1 retires at the same instant and stays published.
        assert_eq!(
            t.tick(30 * DAY),
            vec![
                Transition::Activate {
                    kid: kid("k2"),
                    at: 30 * DAY
                },
                Transition::Retire {
                    kid: kid("k1"),
                    at: 30 * DAY
                },
            ]
        );
        assert_eq!(t.signing(), Some("k2"));
        assert_eq!(t.published(30 * DAY), ["k1", "k2"]);
        assert_eq!(t.tick(31 * DAY - 1), vec![]);
        assert_eq!(t.published(31 * DAY - 1), ["k1", "k2"]);

        // The last token k1 can have signed has expired: k1 goes.
        assert_eq!(t.published(31 * DAY), ["k2"]);
        assert_eq!(
            t.tick(31 * DAY),
            vec![Transition::Remove { kid: kid("k1") }]
        );
        assert_eq!(t.published(31 * DAY), ["k2"]);

        // The cadence continues from k2's activation.
        assert_eq!(t.tick(59 * DAY - 1), vec![]);
        assert_eq!(
            t.tick(59 * DAY),
            vec![Transition::CreateNext {
                activates_at: 60 * DAY
            }]
        );
    }

    #[test]
    fn a_late_scheduler_never_cuts_pre_publication_short() {
        let mut t = Timeline::starting_with_k1_active_at_zero(policy());
        let late = 29 * DAY + 12 * HOUR;
        assert_eq!(
            t.tick(late),
            vec![Transition::CreateNext {
                activates_at: late + DAY
            }]
        );
        assert_eq!(t.tick(30 * DAY), vec![]);
        assert_eq!(t.signing(), Some("k1"));
    }

    #[test]
    fn without_a_rotation_interval_keys_rotate_only_on_demand() {
        let policy = RotationPolicy::default();
        let mut t = Timeline::starting_with_k1_active_at_zero(policy);
        assert_eq!(t.tick(3_650 * DAY), vec![]);

        let now = 3_650 * DAY;
        let rotation = rotate(&t.keys, &policy, now);
        assert_eq!(
            rotation,
            vec![Transition::CreateNext {
                activates_at: now + DAY
            }]
        );
        t.apply(&rotation, now);
        // A second request while one is pending changes nothing.
        assert_eq!(rotate(&t.keys, &policy, now + HOUR), vec![]);
        assert_eq!(t.tick(now + DAY - 1), vec![]);
        assert_eq!(t.tick(now + DAY).len(), 2);
        assert_eq!(t.signing(), Some("k2"));
    }

    #[test]
    fn next_keys_overtaken_while_no_plan_ran_retire_and_the_newest_signs() {
        let keys = [
            key("k1", KeyState::Active, Some(0)),
            key("k2", KeyState::Next, Some(10)),
            key("k3", KeyState::Next, Some(20)),
        ];
        let transitions = plan(&keys, &RotationPolicy::default(), 25);
        assert_eq!(
            transitions,
            vec![
                Transition::Activate {
                    kid: kid("k3"),
                    at: 25
                },
                Transition::Retire {
                    kid: kid("k1"),
                    at: 25
                },
                Transition::Retire {
                    kid: kid("k2"),
                    at: 25
                },
            ]
        );
    }

    #[test]
    fn with_no_active_key_a_pending_next_key_signs_at_once() {
        for activates_at in [Some(1_000), None] {
            let keys = [
                key("old", KeyState::Retired, Some(0)),
                key("next", KeyState::Next, activates_at),
            ];
            assert_eq!(
                plan(&keys, &RotationPolicy::default(), 10),
                vec![Transition::Activate {
                    kid: kid("next"),
                    at: 10
                }],
                "{activates_at:?}"
            );
        }
    }

    #[test]
    fn a_next_key_without_activation_time_waits_for_an_operator() {
        let keys = [
            key("k1", KeyState::Active, Some(0)),
            key("k2", KeyState::Next, None),
        ];
        let policy = RotationPolicy {
            rotate_every_secs: Some(30 * DAY),
            ..RotationPolicy::default()
        };
        // Not activated; and since it is not pending on a schedule, rotation creates another.
        assert_eq!(
            plan(&keys, &policy, 29 * DAY),
            vec![Transition::CreateNext {
                activates_at: 30 * DAY
            }]
        );
        assert_eq!(signing_key(&keys).map(Kid::as_str), Some("k1"));
    }

    #[test]
    fn compromised_active_key_is_revoked_and_the_pending_next_key_signs_at_once() {
        let mut t = Timeline::starting_with_k1_active_at_zero(policy());
        t.tick(29 * DAY);
        let now = 29 * DAY + HOUR;
        let emergency = compromise(&t.keys, &kid("k1"), now);
        assert_eq!(
            emergency,
            Ok(vec![
                Transition::Revoke {
                    kid: kid("k1"),
                    at: now
                },
                Transition::Activate {
                    kid: kid("k2"),
                    at: now
                },
            ])
        );
        t.apply(&emergency.unwrap_or_default(), now);
        assert_eq!(t.signing(), Some("k2"));
        assert_eq!(t.published(now), ["k2"]);
        // The revoked key is never published again and never removed by a plan (it stays on
        // record, so tokens it signed keep introspecting as inactive).
        assert_eq!(t.tick(now + 10 * DAY), vec![]);
        assert_eq!(t.published(now + 10 * DAY), ["k2"]);
        assert!(t.keys.iter().any(|k| k.state == KeyState::Revoked));
    }

    #[test]
    fn compromised_only_key_is_replaced_by_a_new_active_key() {
        let mut t = Timeline::starting_with_k1_active_at_zero(policy());
        let emergency = compromise(&t.keys, &kid("k1"), 100);
        assert_eq!(
            emergency,
            Ok(vec![
                Transition::Revoke {
                    kid: kid("k1"),
                    at: 100
                },
                Transition::CreateAndActivate { at: 100 },
            ])
        );
        t.apply(&emergency.unwrap_or_default(), 100);
        assert_eq!(t.signing(), Some("k2"));
        assert_eq!(t.published(100), ["k2"]);
        assert_eq!(t.tick(100), vec![]);
    }

    #[test]
    fn compromised_retired_key_leaves_jwks_before_its_tokens_would_expire() {
        let mut t = Timeline::starting_with_k1_active_at_zero(policy());
        t.tick(29 * DAY);
        t.tick(30 * DAY);
        assert_eq!(t.published(30 * DAY + HOUR), ["k1", "k2"]);
        let emergency = compromise(&t.keys, &kid("k1"), 30 * DAY + HOUR);
        assert_eq!(
            emergency,
            Ok(vec![Transition::Revoke {
                kid: kid("k1"),
                at: 30 * DAY + HOUR
            }])
        );
        t.apply(&emergency.unwrap_or_default(), 30 * DAY + HOUR);
        assert_eq!(t.published(30 * DAY + HOUR), ["k2"]);
        assert_eq!(t.signing(), Some("k2"));
    }

    #[test]
    fn compromise_of_an_unknown_or_already_revoked_key() {
        let keys = [
            key("k1", KeyState::Active, Some(0)),
            key("gone", KeyState::Revoked, Some(0)),
        ];
        assert!(compromise(&keys, &kid("nope"), 5).is_err());
        assert_eq!(compromise(&keys, &kid("gone"), 5), Ok(vec![]));
    }

    #[test]
    fn policy_validation_refuses_negative_periods_and_too_short_intervals() {
        assert_eq!(RotationPolicy::default().validate(), Ok(()));
        assert_eq!(policy().validate(), Ok(()));
        for bad in [
            RotationPolicy {
                prepublish_secs: -1,
                ..RotationPolicy::default()
            },
            RotationPolicy {
                max_token_ttl_secs: -1,
                ..RotationPolicy::default()
            },
            RotationPolicy {
                rotate_every_secs: Some(DAY),
                ..RotationPolicy::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    /// Drives a year of scheduled rotation in six-hour steps and checks the guarantees that
    /// make rotation invisible to verifiers at every step.
    #[test]
    fn a_year_of_rotation_keeps_every_guarantee() {
        let policy = RotationPolicy {
            prepublish_secs: DAY,
            rotate_every_secs: Some(7 * DAY),
            max_token_ttl_secs: 2 * DAY,
        };
        let mut t = Timeline::starting_with_k1_active_at_zero(policy);
        let mut first_published: std::collections::HashMap<String, i64> = Default::default();
        first_published.insert("k1".into(), 0);
        let mut last_signed: std::collections::HashMap<String, i64> = Default::default();
        let mut removed = std::collections::HashSet::new();
        let mut switches = 0;

        for now in (0..=365 * DAY).step_by(6 * HOUR as usize) {
            let published_before = t.published(now);
            let transitions = t.tick(now);
            let published = t.published(now);
            for transition in &transitions {
                if let Transition::Remove { kid } = transition {
                    removed.insert(kid.as_str().to_owned());
                }
                if matches!(transition, Transition::Activate { .. }) {
                    switches += 1;
                }
            }
            // Exactly one key signs, and it is published.
            let signing = t.signing().map(str::to_owned);
            let active = t
                .keys
                .iter()
                .filter(|k| k.state == KeyState::Active)
                .count();
            assert_eq!(active, 1, "at {now}");
            let Some(signing) = signing else {
                panic!("no signing key at {now}")
            };
            assert!(published.contains(&signing), "at {now}");
            // A key signs only after a full pre-publication period.
            let since = first_published.get(&signing).copied().unwrap_or(now);
            assert!(
                now - since >= policy.prepublish_secs || signing == "k1",
                "{signing} signs at {now} but was published at {since}"
            );
            last_signed.insert(signing.clone(), now);
            // A key leaves JWKS only after its last token has expired, and never returns.
            for kid in &published_before {
                if !published.contains(kid) {
                    let last = last_signed.get(kid).copied().unwrap_or(0);
                    assert!(
                        now >= last + policy.max_token_ttl_secs,
                        "{kid} unpublished at {now}, signed until {last}"
                    );
                }
            }
            for kid in &published {
                assert!(!removed.contains(kid), "{kid} came back at {now}");
                first_published.entry(kid.clone()).or_insert(now);
            }
            // The plan is idempotent: once applied, nothing more is due at the same instant.
            assert_eq!(plan(&t.keys, &policy, now), vec![], "at {now}");
            // JWKS stays small: the active key, at most one next and the recently retired.
            assert!(published.len() <= 3, "{published:?} at {now}");
        }
        assert_eq!(switches, 52, "one switch a week");
    }

    #[test]
    fn replacing_the_kind_of_key_signs_with_a_new_key_at_once_and_keeps_the_old_published() {
        let keys = vec![
            key("k1", KeyState::Active, Some(0)),
            key("k2", KeyState::Next, Some(DAY)),
            key("k0", KeyState::Retired, Some(0)),
        ];
        let transitions = replace(&keys, 100);
        assert_eq!(
            transitions,
            vec![
                Transition::CreateAndActivate { at: 100 },
                Transition::Retire {
                    kid: kid("k1"),
                    at: 100
                },
                Transition::Retire {
                    kid: kid("k2"),
                    at: 100
                },
            ]
        );
        let mut n = 0;
        let after = apply(&keys, &transitions, 100, &mut || {
            n += 1;
            kid(&format!("new{n}"))
        });
        assert_eq!(signing_key(&after), Some(&kid("new1")));
        let published = published(&after, &policy(), 100);
        assert!(published.contains(&kid("k1")) && published.contains(&kid("new1")));
        // Nothing else is due once the replacement is applied.
        assert_eq!(plan(&after, &policy(), 100), vec![]);
    }

    fn timeline(kid: &str, state: KeyState) -> KeyTimeline {
        KeyTimeline {
            kid: Kid::parse(kid).unwrap(),
            state,
            created_at: 0,
            activates_at: Some(0),
            retired_at: None,
        }
    }

    #[test]
    fn retiring_the_only_signing_key_needs_a_published_successor() {
        let only = [timeline("a", KeyState::Active)];
        assert!(retire(&only, &Kid::parse("a").unwrap(), 10).is_err());
        let with_next = [
            timeline("a", KeyState::Active),
            timeline("b", KeyState::Next),
        ];
        assert_eq!(
            retire(&with_next, &Kid::parse("a").unwrap(), 10).unwrap(),
            vec![
                Transition::Activate {
                    kid: Kid::parse("b").unwrap(),
                    at: 10
                },
                Transition::Retire {
                    kid: Kid::parse("a").unwrap(),
                    at: 10
                },
            ]
        );
    }

    #[test]
    fn retiring_a_pending_key_withdraws_it_and_unknown_or_done_keys_are_handled() {
        let keys = [
            timeline("a", KeyState::Active),
            timeline("b", KeyState::Next),
            timeline("c", KeyState::Retired),
        ];
        assert_eq!(
            retire(&keys, &Kid::parse("b").unwrap(), 5).unwrap(),
            vec![Transition::Retire {
                kid: Kid::parse("b").unwrap(),
                at: 5
            }]
        );
        assert!(retire(&keys, &Kid::parse("c").unwrap(), 5)
            .unwrap()
            .is_empty());
        assert!(retire(&keys, &Kid::parse("zz").unwrap(), 5).is_err());
    }
}
