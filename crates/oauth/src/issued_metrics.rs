//! `portcullis_tokens_issued_total{auth_method}`: one counter handle per method, registered
//! on first use. Why not `metrics::counter!` per token: a labelled lookup hashes the name and
//! labels, allocates the label set and takes a registry lock, every time, on the path that
//! issues tens of thousands of tokens a second; a kept handle is one atomic add.

use std::sync::OnceLock;

use metrics::Counter;

const METRIC: &str = "portcullis_tokens_issued_total";

/// Every `auth_method` a token is issued under: the client authentication methods, and the
/// assertion grants used without client authentication.
const METHODS: [&str; 8] = [
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
    "jwt_bearer",
    "saml2_bearer",
];

#[derive(Default)]
pub(crate) struct IssuedCounters {
    handles: [OnceLock<Counter>; METHODS.len()],
}

impl IssuedCounters {
    /// Counts one issued token. A method missing from the list is still counted, the slow way.
    pub(crate) fn increment(&self, method: &'static str) {
        let known = METHODS
            .iter()
            .zip(&self.handles)
            .find(|(m, _)| **m == method);
        match known {
            Some((label, handle)) => handle
                .get_or_init(|| metrics::counter!(METRIC, "auth_method" => *label))
                .increment(1),
            None => metrics::counter!(METRIC, "auth_method" => method).increment(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::client::AuthMethod;

    #[test]
    fn every_client_authentication_method_has_a_kept_handle() {
        for method in AuthMethod::ALL {
            assert!(METHODS.contains(&method.as_str()), "{}", method.as_str());
        }
    }
}
