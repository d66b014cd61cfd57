//! Loading a PKCS#11 module once per process and sharing logged-in sessions between threads.
//!
//! A PKCS#11 session may be used by one thread at a time, while the token endpoint signs from
//! many. Rather than one session behind a mutex (which would serialize every signature), the
//! pool hands each caller a session of its own and takes it back afterwards; the lock is held
//! only to pop and push. Login state belongs to the application, not the session (PKCS#11
//! v2.40 §5.6 `C_Login`), so sessions opened after the first login are logged in too, as long
//! as one session stays open — the pool always keeps at least one.
//!
//! A token can lose that state (an HSM restarts, a network HSM reconnects, an operator logs
//! the application out). When an operation fails, the pool asks the session what state it
//! is in: a dead session is dropped, a logged-out one logs in again with the PIN, and the
//! operation is retried once on a healthy session. The PIN is kept for this, in memory that
//! is zeroized on drop.

use super::error::{is_rv, login_error, token_error};
use crate::KeyError;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

/// Most idle sessions kept open; more are opened under load and closed when returned.
const MAX_IDLE_SESSIONS: usize = 16;

/// A logged-in pool of read-write sessions on one token.
pub(crate) struct SessionPool {
    context: Pkcs11,
    slot: Slot,
    idle: Mutex<Vec<Session>>,
    token_label: String,
    pin: AuthPin,
    /// Set once the token has refused the PIN on a re-login: HSMs lock a PIN after a few
    /// failures, so a PIN changed under a running server is not tried again and again.
    pin_refused: AtomicBool,
}

impl SessionPool {
    /// Loads the module (once per process), finds the token labelled `token_label` and logs
    /// in as the user.
    pub(crate) fn open(
        module_path: &Path,
        token_label: &str,
        pin: &str,
    ) -> Result<SessionPool, KeyError> {
        let context = loaded_module(module_path)?;
        let slot = find_slot(&context, module_path, token_label)?;
        let session = context
            .open_rw_session(slot)
            .map_err(|e| token_error("opening a session", &e))?;
        let pin = AuthPin::from(pin);
        log_in(&session, &pin).map_err(|e| login_error(token_label, &e))?;
        Ok(SessionPool {
            context,
            slot,
            idle: Mutex::new(vec![session]),
            token_label: token_label.to_owned(),
            pin,
            pin_refused: AtomicBool::new(false),
        })
    }

    /// Runs `operation` on a session of its own, so concurrent callers do not wait for each
    /// other's token operations. A failure caused by a dead or logged-out session is retried
    /// once on a repaired session; any other failure is returned as is.
    pub(crate) fn with_session<T>(
        &self,
        operation: impl Fn(&Session) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        let mut session = self.take()?;
        let first = operation(&session);
        if first.is_ok() {
            self.give_back(session);
            return first;
        }
        match self.still_usable(&session)? {
            Usable::AsBefore => {
                self.give_back(session);
                return first;
            }
            Usable::Repaired => {}
            Usable::No => {
                // Dead: close it and take another, logging that one in if it needs it.
                drop(session);
                session = self.take()?;
                if self.still_usable(&session)? == Usable::No {
                    return first;
                }
            }
        }
        let second = operation(&session);
        if second.is_ok() || self.still_usable(&session)? != Usable::No {
            self.give_back(session);
        }
        second
    }

    /// Like [`with_session`](Self::with_session), but checks the login first: a search
    /// while logged out does not fail, it just finds no private objects. One extra
    /// `C_GetSessionInfo`, so this is for key management, not for the signing path.
    pub(crate) fn with_logged_in_session<T>(
        &self,
        operation: impl Fn(&Session) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        let mut session = self.take()?;
        if self.still_usable(&session)? == Usable::No {
            drop(session);
            session = self.take()?;
            self.still_usable(&session)?;
        }
        self.give_back(session);
        self.with_session(operation)
    }

    fn take(&self) -> Result<Session, KeyError> {
        let pooled = self.lock_idle().pop();
        match pooled {
            Some(session) => Ok(session),
            None => self
                .context
                .open_rw_session(self.slot)
                .map_err(|e| token_error("opening a session", &e)),
        }
    }

    fn give_back(&self, session: Session) {
        let mut idle = self.lock_idle();
        if idle.len() < MAX_IDLE_SESSIONS {
            idle.push(session);
        }
        // Otherwise `session` is dropped (closed) here; MAX_IDLE_SESSIONS others stay open,
        // so the login survives.
    }

    /// After a failed operation: is `session` still open and logged in? A logged-out one is
    /// logged in again (`Repaired`); a wrong PIN now is an error of its own.
    fn still_usable(&self, session: &Session) -> Result<Usable, KeyError> {
        let Ok(info) = session.get_session_info() else {
            return Ok(Usable::No);
        };
        if matches!(
            info.session_state(),
            SessionState::RwUser | SessionState::RoUser
        ) {
            return Ok(Usable::AsBefore);
        }
        if self.pin_refused.load(Ordering::Relaxed) {
            return Err(KeyError::Io(format!(
                "PKCS#11 token {:?} is logged out and refused the PIN before; not retried, \
                 so the PIN does not lock (restart with the right PIN)",
                crate::error::shorten(&self.token_label)
            )));
        }
        log_in(session, &self.pin).map_err(|e| {
            if is_rv(&e, RvError::PinIncorrect)
                || is_rv(&e, RvError::PinLocked)
                || is_rv(&e, RvError::PinExpired)
            {
                self.pin_refused.store(true, Ordering::Relaxed);
            }
            login_error(&self.token_label, &e)
        })?;
        Ok(Usable::Repaired)
    }

    fn lock_idle(&self) -> MutexGuard<'_, Vec<Session>> {
        // A panic while holding the lock cannot leave the Vec half-updated.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a session is good for after an operation failed on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Usable {
    /// Open and logged in: the failure had another cause.
    AsBefore,
    /// It was logged out and has logged in again.
    Repaired,
    /// Closed or invalid: dropped.
    No,
}

/// `C_Login` as the user; already being logged in (by another handle in this process) is
/// success.
fn log_in(session: &Session, pin: &AuthPin) -> Result<(), cryptoki::error::Error> {
    match session.login(UserType::User, Some(pin)) {
        Err(e) if is_rv(&e, RvError::UserAlreadyLoggedIn) => Ok(()),
        other => other,
    }
}

/// The process-wide context of `module_path`: `C_Initialize` may be called only once per
/// process (PKCS#11 v2.40 §5.4), so every token on one module shares it.
fn loaded_module(module_path: &Path) -> Result<Pkcs11, KeyError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(context) = modules.get(module_path) {
        return Ok(context.clone());
    }
    let context = Pkcs11::new(module_path).map_err(|e| {
        KeyError::Io(format!(
            "PKCS#11 module {} cannot be loaded: {e}",
            module_path.display()
        ))
    })?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        Err(e) if is_rv(&e, RvError::CryptokiAlreadyInitialized) => {}
        Err(e) => return Err(token_error("initializing the module", &e)),
    }
    modules.insert(module_path.to_owned(), context.clone());
    Ok(context)
}

/// The slot holding the initialized token labelled `token_label`.
fn find_slot(context: &Pkcs11, module_path: &Path, token_label: &str) -> Result<Slot, KeyError> {
    let slots = context
        .get_slots_with_initialized_token()
        .map_err(|e| token_error("listing slots", &e))?;
    for slot in slots {
        let info = context
            .get_token_info(slot)
            .map_err(|e| token_error("reading token information", &e))?;
        // CK_TOKEN_INFO.label is blank-padded to 32 bytes; cryptoki trims the padding.
        if info.label().trim_end() == token_label {
            return Ok(slot);
        }
    }
    Err(KeyError::Io(format!(
        "no initialized PKCS#11 token labelled {:?} in module {}",
        crate::error::shorten(token_label),
        module_path.display()
    )))
}
