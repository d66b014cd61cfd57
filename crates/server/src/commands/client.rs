//! `portcullis client ...`: client management through the admin API.

use serde_json::{json, Map, Value};

use super::api::{AdminApi, ApiError};
use super::output::{print_fields, print_json, print_table};
use super::CommandError;
use crate::cli::ApiArgs;
use crate::cli::ClientCommand;

const COLUMNS: &[&str] = &[
    "client_id",
    "name",
    "auth_method",
    "enabled",
    "scopes",
    "audiences",
];

/// Runs one client subcommand.
pub fn run(cmd: ClientCommand, api: &ApiArgs) -> Result<(), CommandError> {
    match cmd {
        ClientCommand::Create {
            name,
            id,
            scopes,
            audiences,
            auth_method,
            jwks_file,
            jwks_uri,
            tls,
            token_ttl,
            dpop_bound,
        } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("scopes".into(), json!(scopes));
            body.insert("audiences".into(), json!(audiences));
            insert_some(&mut body, "client_id", id.map(Value::from));
            insert_some(&mut body, "auth_method", auth_method.map(Value::from));
            insert_some(
                &mut body,
                "jwks",
                jwks_file.map(|f| read_jwks(&f)).transpose()?,
            );
            insert_some(&mut body, "jwks_uri", jwks_uri.map(Value::from));
            if let Some((field, value)) = tls.field() {
                body.insert(field.into(), json!(value));
            }
            insert_some(&mut body, "token_ttl_secs", token_ttl.map(Value::from));
            if dpop_bound {
                body.insert("dpop_bound_access_tokens".into(), Value::Bool(true));
            }
            let created =
                AdminApi::connect(api)?.call("POST", "/clients", Some(&Value::Object(body)))?;
            if api.json {
                print_json(&created);
            } else {
                print_fields(&created);
                if created.get("client_secret").is_some() {
                    eprintln!("\nThe client secret is shown only once: store it now.");
                }
            }
        }
        ClientCommand::List { limit, after } => {
            let mut path = format!("/clients?limit={limit}");
            if let Some(after) = after {
                path.push_str(&format!("&after={}", encode(&after)));
            }
            let page = AdminApi::connect(api)?.call("GET", &path, None)?;
            if api.json {
                print_json(&page);
            } else {
                print_table(
                    COLUMNS,
                    page["clients"].as_array().map(Vec::as_slice).unwrap_or(&[]),
                );
                if let Some(next) = page["next"].as_str() {
                    eprintln!("more: --after {next}");
                }
            }
        }
        ClientCommand::Show { id } => {
            let client =
                AdminApi::connect(api)?.call("GET", &format!("/clients/{}", encode(&id)), None)?;
            show(api, &client);
        }
        ClientCommand::Update {
            id,
            name,
            scopes,
            audiences,
            token_ttl,
            enable,
            disable,
            jwks_file,
            jwks_uri,
            tls,
            dpop_bound,
            no_dpop_bound,
        } => {
            let mut body = Map::new();
            insert_some(
                &mut body,
                "dpop_bound_access_tokens",
                (dpop_bound || no_dpop_bound).then_some(Value::Bool(dpop_bound)),
            );
            insert_some(&mut body, "name", name.map(Value::from));
            insert_some(&mut body, "scopes", scopes.map(|s| json!(s)));
            insert_some(&mut body, "audiences", audiences.map(|a| json!(a)));
            insert_some(&mut body, "token_ttl_secs", token_ttl.map(Value::from));
            insert_some(
                &mut body,
                "enabled",
                (enable || disable).then_some(Value::Bool(enable)),
            );
            insert_some(
                &mut body,
                "jwks",
                jwks_file.map(|f| read_jwks(&f)).transpose()?,
            );
            insert_some(&mut body, "jwks_uri", jwks_uri.map(Value::from));
            if let Some((field, value)) = tls.field() {
                body.insert(field.into(), json!(value));
            }
            if body.is_empty() {
                return Err(CommandError::Usage(
                    "nothing to update: give at least one setting".into(),
                ));
            }
            let client = AdminApi::connect(api)?.call(
                "PATCH",
                &format!("/clients/{}", encode(&id)),
                Some(&Value::Object(body)),
            )?;
            show(api, &client);
        }
        ClientCommand::RotateSecret { id, overlap } => {
            let body = overlap
                .map(|o| json!({"overlap_secs": o}))
                .unwrap_or_else(|| json!({}));
            let rotated = AdminApi::connect(api)?.call(
                "POST",
                &format!("/clients/{}/rotate-secret", encode(&id)),
                Some(&body),
            )?;
            show(api, &rotated);
        }
        ClientCommand::Delete { id } => {
            AdminApi::connect(api)?.call("DELETE", &format!("/clients/{}", encode(&id)), None)?;
            if api.json {
                print_json(&json!({"deleted": id}));
            } else {
                println!("deleted {id}");
            }
        }
    }
    Ok(())
}

fn show(api: &crate::cli::ApiArgs, value: &Value) {
    if api.json {
        print_json(value);
    } else {
        print_fields(value);
    }
}

fn insert_some(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.into(), v);
    }
}

fn read_jwks(path: &std::path::Path) -> Result<Value, CommandError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CommandError::Usage(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| CommandError::Usage(format!("{} is not JSON: {e}", path.display())))
}

/// Percent-encodes a path segment (client ids are restricted, but the user may type anything).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' | b'@' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl From<ApiError> for CommandError {
    fn from(e: ApiError) -> Self {
        CommandError::Failed(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, ClientCommand, Command};

    fn create(args: &[&str]) -> Result<ClientCommand, clap::Error> {
        let mut argv = vec!["portcullis", "client", "create", "--name", "m"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Client(cmd) => Ok(cmd),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn tls_client_auth_options_map_to_the_rfc_8705_fields() {
        for (flag, field) in [
            ("--tls-subject-dn", "tls_client_auth_subject_dn"),
            ("--tls-san-dns", "tls_client_auth_san_dns"),
            ("--tls-san-uri", "tls_client_auth_san_uri"),
            ("--tls-san-ip", "tls_client_auth_san_ip"),
            ("--tls-san-email", "tls_client_auth_san_email"),
        ] {
            let ClientCommand::Create { tls, .. } =
                create(&["--auth-method", "tls_client_auth", flag, "CN=x"]).unwrap()
            else {
                panic!("not create")
            };
            assert_eq!(tls.field(), Some((field, "CN=x")), "{flag}");
        }
        // At most one match.
        assert!(create(&["--tls-subject-dn", "CN=x", "--tls-san-dns", "x"]).is_err());
        // `--jwks FILE` for the self-signed method.
        let ClientCommand::Create { jwks_file, tls, .. } = create(&[
            "--auth-method",
            "self_signed_tls_client_auth",
            "--jwks",
            "certs.json",
        ])
        .unwrap() else {
            panic!("not create")
        };
        assert_eq!(jwks_file.unwrap().to_str(), Some("certs.json"));
        assert_eq!(tls.field(), None);
    }
}
