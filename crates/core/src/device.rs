//! Devices: registered at manufacturing, enrolled for a certificate over EST, re-enrolled
//! with that certificate, and finally suspended, revoked or decommissioned. The rules of that
//! life cycle live here so the EST endpoint, the CLI and the admin API cannot disagree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::secret::SecretHash;
use crate::{CoreError, UnixTime};

/// A device identifier: the EST Basic user name, the certificate's CN and SAN URI.
///
/// Stricter than other ids: no `:` (it would end an HTTP Basic user id, RFC 7617 §2) and
/// nothing that needs escaping in a distinguished name or a URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

impl DeviceId {
    pub fn parse(s: impl Into<String>) -> Result<Self, CoreError> {
        let s = s.into();
        if s.is_empty() || s.len() > 128 {
            return Err(CoreError::invalid(
                "device_id",
                "must be 1 to 128 characters",
            ));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if !s.chars().all(allowed) || !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(CoreError::invalid(
                "device_id",
                "may contain only A-Z a-z 0-9 - _ . and must start with a letter or digit",
            ));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URI a certificate names its device by in subjectAltName.
    pub fn uri(&self) -> String {
        format!("urn:portcullis:device:{}", self.0)
    }
}

impl TryFrom<String> for DeviceId {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        Self::parse(s)
    }
}

impl From<DeviceId> for String {
    fn from(id: DeviceId) -> String {
        id.0
    }
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a device is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Known from manufacturing; may enroll once with its enrollment secret or IDevID.
    Registered,
    /// Holds a certificate; renews it by re-enrolling with it.
    Enrolled,
    /// Temporarily refused everywhere; can be resumed.
    Suspended,
    /// Its certificates are revoked and it may never enroll again.
    Revoked,
    /// Taken out of service for good.
    Decommissioned,
}

impl DeviceState {
    pub const ALL: [DeviceState; 5] = [
        Self::Registered,
        Self::Enrolled,
        Self::Suspended,
        Self::Revoked,
        Self::Decommissioned,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Enrolled => "enrolled",
            Self::Suspended => "suspended",
            Self::Revoked => "revoked",
            Self::Decommissioned => "decommissioned",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                CoreError::invalid(
                    "state",
                    "expected registered, enrolled, suspended, revoked or decommissioned",
                )
            })
    }

    /// Whether a device in this state may hold a valid certificate at all. Suspending,
    /// revoking or decommissioning a device revokes its certificates.
    pub const fn keeps_certificates(self) -> bool {
        matches!(self, Self::Registered | Self::Enrolled)
    }

    /// Whether an administrator may move a device from this state to `to`.
    ///
    /// `registered → enrolled` happens only through enrollment, never by hand. Revoked and
    /// decommissioned are final (a revoked device can still be decommissioned).
    pub fn may_become(self, to: DeviceState) -> Result<(), CoreError> {
        use DeviceState::*;
        let ok = match (self, to) {
            (a, b) if a == b => true,
            (Registered | Enrolled, Suspended) => true,
            // Resuming goes back to where enrollment left it; the caller picks which.
            (Suspended, Registered | Enrolled) => true,
            (Registered | Enrolled | Suspended, Revoked) => true,
            (Registered | Enrolled | Suspended | Revoked, Decommissioned) => true,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(CoreError::invalid(
                "state",
                format!("a {} device cannot become {}", self.as_str(), to.as_str()),
            ))
        }
    }
}

/// A registered device as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub device_id: DeviceId,
    /// Free-form model name from the manufacturing list.
    pub model: Option<String>,
    /// Free-form attributes (`--attr k=v`): batch, site, hardware revision...
    pub attrs: BTreeMap<String, String>,
    pub state: DeviceState,
    /// The HMAC of the one-time enrollment secret; `None` once it has been used.
    pub enrollment_secret: Option<SecretHash>,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
}

impl Device {
    /// Checks the invariants every stored device must satisfy.
    pub fn validate(&self) -> Result<(), CoreError> {
        if let Some(model) = &self.model {
            if model.chars().count() > 128 || model.chars().any(char::is_control) {
                return Err(CoreError::invalid(
                    "model",
                    "must be at most 128 printable characters",
                ));
            }
        }
        if self.attrs.len() > 32 {
            return Err(CoreError::invalid("attrs", "at most 32 attributes"));
        }
        for (k, v) in &self.attrs {
            let key_ok = !k.is_empty()
                && k.len() <= 64
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !key_ok {
                return Err(CoreError::invalid(
                    "attrs",
                    "keys are 1 to 64 characters of A-Z a-z 0-9 - _ .",
                ));
            }
            if v.chars().count() > 256 || v.chars().any(char::is_control) {
                return Err(CoreError::invalid(
                    "attrs",
                    "values are at most 256 printable characters",
                ));
            }
        }
        Ok(())
    }
}

/// Why a certificate was revoked: the CRLReason codes of RFC 5280 §5.3.1, named as openssl
/// and RFC 5280 spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RevocationReason {
    Unspecified,
    KeyCompromise,
    CaCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    PrivilegeWithdrawn,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 8] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
    ];

    /// The CRLReason enumeration value.
    pub const fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::PrivilegeWithdrawn => 9,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    /// Parses a reason name, ignoring case (`keyCompromise`, `keycompromise`).
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                CoreError::invalid(
                    "reason",
                    "expected unspecified, keyCompromise, cACompromise, affiliationChanged, \
                     superseded, cessationOfOperation, certificateHold or privilegeWithdrawn",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_refuse_what_basic_auth_or_a_dn_cannot_carry() {
        for ok in ["sensor-0001", "gw.site-7_a", "A", &"x".repeat(128)] {
            assert!(DeviceId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a:b",
            "-lead",
            "a b",
            "a/b",
            "é",
            "a,CN=x",
            &"x".repeat(129),
        ] {
            assert!(DeviceId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            DeviceId::parse("s1").unwrap().uri(),
            "urn:portcullis:device:s1"
        );
    }

    /// PostgreSQL cannot store a NUL in TEXT: model and attribute values refuse it (and every
    /// other control character), attribute keys and ids allow only a few ASCII characters.
    #[test]
    fn no_device_text_may_carry_a_nul() {
        let device = |model: Option<&str>, attrs: &[(&str, &str)]| Device {
            device_id: DeviceId::parse("d1").unwrap(),
            model: model.map(str::to_owned),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            state: DeviceState::Registered,
            enrollment_secret: None,
            created_at: 0,
            updated_at: 0,
        };
        assert!(device(Some("TH-20"), &[("site", "plant 3")])
            .validate()
            .is_ok());
        for (field, d) in [
            ("model", device(Some("TH\0-20"), &[])),
            ("attrs", device(None, &[("site", "plant\x003")])),
            ("attrs", device(None, &[("si\0te", "plant")])),
        ] {
            let err = d.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
        assert!(DeviceId::parse("d\x001").is_err());
    }

    #[test]
    fn states_round_trip_and_final_states_stay_final() {
        for s in DeviceState::ALL {
            assert_eq!(DeviceState::parse(s.as_str()).unwrap(), s);
        }
        use DeviceState::*;
        assert!(Registered.may_become(Suspended).is_ok());
        assert!(Suspended.may_become(Enrolled).is_ok());
        assert!(Enrolled.may_become(Revoked).is_ok());
        assert!(Revoked.may_become(Decommissioned).is_ok());
        assert!(Revoked.may_become(Enrolled).is_err());
        assert!(Revoked.may_become(Registered).is_err());
        assert!(Decommissioned.may_become(Registered).is_err());
        assert!(Decommissioned.may_become(Revoked).is_err());
        assert!(Registered.may_become(Enrolled).is_err(), "only EST enrolls");
        assert!(Enrolled.keeps_certificates());
        assert!(!Suspended.keeps_certificates());
    }

    #[test]
    fn revocation_reasons_use_rfc5280_codes_and_names() {
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_code(r.code()), Some(r));
            assert_eq!(RevocationReason::parse(r.as_str()).unwrap(), r);
        }
        assert_eq!(
            RevocationReason::parse("KEYCOMPROMISE").unwrap(),
            RevocationReason::KeyCompromise
        );
        assert_eq!(RevocationReason::PrivilegeWithdrawn.code(), 9);
        assert!(RevocationReason::from_code(7).is_none());
        assert!(RevocationReason::parse("removeFromCRL").is_err());
    }

    #[test]
    fn attributes_are_bounded() {
        let mut d = Device {
            device_id: DeviceId::parse("d").unwrap(),
            model: Some("m".into()),
            attrs: BTreeMap::new(),
            state: DeviceState::Registered,
            enrollment_secret: None,
            created_at: 0,
            updated_at: 0,
        };
        assert!(d.validate().is_ok());
        d.attrs.insert("bad key".into(), "v".into());
        assert!(d.validate().is_err());
        d.attrs.clear();
        d.attrs.insert("k".into(), "line\nbreak".into());
        assert!(d.validate().is_err());
    }
}
