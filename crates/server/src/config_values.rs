//! The configuration values that are choices rather than numbers or paths, typed: each is
//! parsed once when the configuration is loaded, with an error that names its key, and the
//! rest of the server matches on enums instead of comparing strings.

use std::net::SocketAddr;
use std::str::FromStr;

use portcullis_keys::Algorithm;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// `[server] listen` and `listen_tls`: an address, or `off` (no such listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    At(SocketAddr),
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::At(addr) => addr.fmt(f),
        }
    }
}

/// A listen value that is neither an address nor `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a listen address is like 127.0.0.1:8443, or \"off\"; not {0:?}")]
pub struct BadListen(String);

impl FromStr for Listen {
    type Err = BadListen;

    fn from_str(s: &str) -> Result<Self, BadListen> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        s.parse().map(Self::At).map_err(|_| BadListen(s.to_owned()))
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl<'de> Deserialize<'de> for LogFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(D::Error::custom(format!(
                "log.format must be \"text\" or \"json\", not {other:?}"
            ))),
        }
    }
}

/// Reads one algorithm name; the error names `key`.
fn algorithm_named<'de, D: Deserializer<'de>>(d: D, key: &str) -> Result<Algorithm, D::Error> {
    let name = String::deserialize(d)?;
    Algorithm::parse(&name).map_err(|e| D::Error::custom(format!("{key}: {e}")))
}

/// `[keys] algorithm`.
/// `[audit] mode`: `"async"` or `"durable"`.
pub fn audit_mode<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<portcullis_audit::AuditMode, D::Error> {
    let s = String::deserialize(d)?;
    portcullis_audit::AuditMode::parse(&s).ok_or_else(|| {
        D::Error::custom(format!(
            "audit.mode must be \"async\" or \"durable\", not {s:?}"
        ))
    })
}

pub fn signing_algorithm<'de, D: Deserializer<'de>>(d: D) -> Result<Algorithm, D::Error> {
    algorithm_named(d, "keys.algorithm")
}

/// `[pki] ca_algorithm` (which algorithms a CA may use is checked with the rest).
pub fn ca_algorithm<'de, D: Deserializer<'de>>(d: D) -> Result<Algorithm, D::Error> {
    algorithm_named(d, "pki.ca_algorithm")
}

/// `[keys] assertion_algorithms`, `[dpop] algorithms`: JWS algorithm names.
pub fn assertion_algorithms<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Algorithm>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|name| {
            Algorithm::parse(name).map_err(|e| D::Error::custom(format!("algorithms: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listen_value_is_an_address_or_off() {
        assert_eq!("off".parse::<Listen>(), Ok(Listen::Off));
        assert_eq!("OFF".parse::<Listen>(), Ok(Listen::Off));
        assert_eq!(
            "127.0.0.1:8443".parse::<Listen>(),
            Ok(Listen::At(SocketAddr::from(([127, 0, 0, 1], 8443))))
        );
        let err = "localhost".parse::<Listen>().unwrap_err().to_string();
        assert!(err.contains("127.0.0.1:8443"), "{err}");
    }
}
