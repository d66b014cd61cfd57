//! Connected devices: one live session per device id on this node, so a suspension, a
//! revocation or a second connection (a take-over, possibly a clone) ends the session the
//! transport adapter holds, at once.

use crate::credentials_memo::CredentialsMemo;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use portcullis_core::device::DeviceId;
use tokio::sync::watch;

use crate::credentials::CredentialMethod;

/// The transport a device came in on (a metrics label and part of audit details).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Http,
    Mqtt,
    /// A broker of the operator's own asking through the broker hook (`broker_auth`).
    BrokerHook,
}

impl Transport {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Mqtt => "mqtt",
            Self::BrokerHook => "rabbitmq",
        }
    }
}

/// A device whose connection credential verified.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub device_id: DeviceId,
    pub model: Option<String>,
    pub method: CredentialMethod,
    /// The key that authenticated the connection: a device key id, or a certificate's
    /// serial (a session on a certificate ends when that certificate is revoked).
    pub credential: Option<String>,
    /// When the credential stops being valid (a token's `exp`, a certificate's
    /// `notAfter`): a long-lived connection is closed then.
    pub expires_at: Option<i64>,
}

/// Why a session ended from the gateway's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Still open.
    Open,
    /// The device was suspended, revoked or decommissioned, or its credentials changed.
    DeviceInactive,
    /// Another connection with the same device id took over.
    TakenOver,
    /// The credential the connection was admitted with expired.
    Expired,
    /// The node is shutting down.
    Shutdown,
    /// Attack detection blocked the address the connection comes from.
    Blocked,
}

/// A connected device, held by its transport adapter for the connection's life. Dropping it
/// (or passing it to [`Sessions::end`]) forgets it.
#[derive(Debug)]
pub struct Session {
    pub admitted: Admitted,
    pub transport: Transport,
    pub source: IpAddr,
    /// The device's credentials as this session last read them.
    pub(crate) credentials: CredentialsMemo,
    id: u64,
    close: watch::Receiver<CloseReason>,
    registry: Arc<Sessions>,
}

impl Session {
    /// Resolves when the gateway ends the session, with the reason. An adapter selects on
    /// this next to its socket reads.
    pub async fn closed(&mut self) -> CloseReason {
        loop {
            let now = *self.close.borrow_and_update();
            if now != CloseReason::Open {
                return now;
            }
            if self.close.changed().await.is_err() {
                return CloseReason::Shutdown;
            }
        }
    }

    /// A receiver of the session's end, for waiting on it while `self` is borrowed (an
    /// adapter handing a publish to the gateway).
    pub fn close_watch(&self) -> watch::Receiver<CloseReason> {
        self.close.clone()
    }

    /// Whether the gateway has ended the session (a publish racing the close is refused).
    pub fn is_closed(&self) -> bool {
        *self.close.borrow() != CloseReason::Open
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.registry.forget(&self.admitted.device_id, self.id);
    }
}

struct Live {
    id: u64,
    close: watch::Sender<CloseReason>,
    source: IpAddr,
    method: CredentialMethod,
    credential: Option<String>,
    expires_at: Option<i64>,
}

/// What a live session was admitted with, for re-checking it when its device changes.
#[derive(Debug, Clone)]
pub struct LiveCredential {
    pub device_id: DeviceId,
    pub method: CredentialMethod,
    pub credential: Option<String>,
}

/// This node's live sessions, by device id.
#[derive(Default)]
pub struct Sessions {
    next_id: AtomicU64,
    live: Mutex<HashMap<DeviceId, Live>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("connected", &self.len())
            .finish()
    }
}

impl Sessions {
    /// Registers a session; if the device already had one, that one is told
    /// [`CloseReason::TakenOver`] and `true` is returned with the new session.
    pub fn open(
        self: &Arc<Self>,
        admitted: Admitted,
        transport: Transport,
        source: IpAddr,
    ) -> (Session, bool) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(CloseReason::Open);
        let live = Live {
            id,
            close: tx,
            source,
            method: admitted.method,
            credential: admitted.credential.clone(),
            expires_at: admitted.expires_at,
        };
        let previous = self.lock().insert(admitted.device_id.clone(), live);
        let took_over = previous.is_some_and(|old| {
            let _ = old.close.send(CloseReason::TakenOver);
            true
        });
        let session = Session {
            admitted,
            transport,
            source,
            credentials: CredentialsMemo::default(),
            id,
            close: rx,
            registry: Arc::clone(self),
        };
        (session, took_over)
    }

    /// Ends the device's session, if it has one, for `reason`.
    pub fn close(&self, device: &DeviceId, reason: CloseReason) -> bool {
        match self.lock().remove(device) {
            Some(live) => {
                let _ = live.close.send(reason);
                true
            }
            None => false,
        }
    }

    /// Ends every session (shutdown, or a lost change feed when every device must be
    /// checked again).
    pub fn close_all(&self, reason: CloseReason) {
        for (_, live) in self.lock().drain() {
            let _ = live.close.send(reason);
        }
    }

    /// Ends every session whose connection comes from an address `blocked` names; how many.
    /// `blocked` is asked once per distinct address (devices behind one NAT share one, and
    /// the answer may cost an HMAC).
    pub fn close_from(&self, blocked: impl Fn(IpAddr) -> bool, reason: CloseReason) -> usize {
        let mut verdicts: HashMap<IpAddr, bool> = HashMap::new();
        let mut live = self.lock();
        let before = live.len();
        live.retain(|_, session| {
            let keep = !*verdicts
                .entry(session.source)
                .or_insert_with(|| blocked(session.source));
            if !keep {
                let _ = session.close.send(reason);
            }
            keep
        });
        before - live.len()
    }

    /// The devices connected now and what admitted them (to re-check them after a change).
    pub fn live(&self) -> Vec<LiveCredential> {
        self.lock()
            .iter()
            .map(|(device_id, live)| LiveCredential {
                device_id: device_id.clone(),
                method: live.method,
                credential: live.credential.clone(),
            })
            .collect()
    }

    /// What admitted the device's live session, if it has one.
    pub fn live_credential(&self, device: &DeviceId) -> Option<LiveCredential> {
        self.lock().get(device).map(|live| LiveCredential {
            device_id: device.clone(),
            method: live.method,
            credential: live.credential.clone(),
        })
    }

    /// Ends every session whose credential (device token, certificate) has expired.
    pub fn close_expired(&self, now: i64) -> usize {
        let mut live = self.lock();
        let before = live.len();
        live.retain(|_, l| {
            let expired = l.expires_at.is_some_and(|end| end <= now);
            if expired {
                let _ = l.close.send(CloseReason::Expired);
            }
            !expired
        });
        before - live.len()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_connected(&self, device: &DeviceId) -> bool {
        self.lock().contains_key(device)
    }

    fn forget(&self, device: &DeviceId, id: u64) {
        let mut live = self.lock();
        if live.get(device).is_some_and(|l| l.id == id) {
            live.remove(device);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Live>> {
        // A panic while holding this lock cannot leave the map inconsistent (each operation
        // is one insert or remove), so a poisoned lock is still usable.
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(id: &str) -> Admitted {
        Admitted {
            device_id: DeviceId::parse(id).unwrap(),
            model: None,
            method: CredentialMethod::DeviceToken,
            credential: None,
            expires_at: None,
        }
    }

    const SOURCE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn a_second_connection_takes_over_the_first() {
        let sessions = Arc::new(Sessions::default());
        let (mut first, took) = sessions.open(admitted("d1"), Transport::Mqtt, SOURCE);
        assert!(!took);
        let (second, took) = sessions.open(admitted("d1"), Transport::Mqtt, SOURCE);
        assert!(took);
        assert_eq!(first.closed().await, CloseReason::TakenOver);
        // The first one's drop must not forget the second.
        drop(first);
        assert!(sessions.is_connected(&second.admitted.device_id));
        drop(second);
        assert!(sessions.is_empty());
    }

    #[tokio::test]
    async fn closing_a_device_ends_its_session_only() {
        let sessions = Arc::new(Sessions::default());
        let (mut a, _) = sessions.open(admitted("a"), Transport::Mqtt, SOURCE);
        let (b, _) = sessions.open(admitted("b"), Transport::Http, SOURCE);
        assert!(sessions.close(&a.admitted.device_id.clone(), CloseReason::DeviceInactive));
        assert_eq!(a.closed().await, CloseReason::DeviceInactive);
        assert!(a.is_closed());
        assert!(!b.is_closed());
        assert_eq!(sessions.len(), 1);
    }
}
