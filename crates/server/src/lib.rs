//! The `portcullis` binary as a library: configuration, bootstrap, listeners, wiring and the
//! CLI. `main.rs` only installs the allocator and calls [`run`]; keeping the rest here lets
//! unit tests reach every module. Exit codes: 0 ok, 1 failure, 2 usage.

mod alert_webhook;
mod audit_auto_archive;
mod audit_checkpoint;
mod audit_export;
mod blocklist;
mod bootstrap;
mod cache_coherence;
mod cli;
mod cli_pki;
mod command_rules_admin;
mod commands;
mod config;
mod config_values;
mod detection;
mod device_clients;
mod edge;
mod federation_admin;
mod gateway_setup;
mod health;
mod http_conn;
mod http_metrics;
mod key_custody;
mod key_lifecycle;
mod key_manager;
mod mtls_validator;
mod node_services;
mod pki_setup;
mod serve;
mod serve_error;
mod stderr_capture;
mod tls;
mod tls_certificate;
mod trust_admin;

use std::process::ExitCode;

use clap::Parser;
use cli::{BenchCommand, Cli, Command};
use commands::CommandError;
use config::Config;

/// Parses the command line and runs the command it names.
pub fn run() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve_command(args),
        Command::Client(cmd) => commands::client::run(cmd, &cli.api),
        Command::Audit(cmd) => commands::audit::run(cmd, &cli.api),
        Command::Alerts(cmd) => commands::alerts::run(cmd, &cli.api),
        Command::Ca(cli_pki::CaCommand::Import {
            offline,
            cert,
            key,
            chain,
        }) => runtime().and_then(|rt| {
            rt.block_on(commands::ca::import(
                &offline,
                &cert,
                &key,
                chain.as_deref(),
            ))
        }),
        Command::Ca(cmd) => commands::ca::run(cmd, &cli.api),
        Command::Device(cmd) => commands::device::run(cmd, &cli.api),
        Command::Cert(cmd) => commands::cert::run(cmd, &cli.api),
        Command::Telemetry(cmd) => commands::telemetry::run(cmd, &cli.api),
        Command::Commands(cmd) => commands::command::run(cmd, &cli.api),
        Command::Settings(cmd) => commands::settings::run(cmd, &cli.api),
        Command::Federation(cmd) => commands::federation::run(cmd, &cli.api),
        Command::Update(cmd) => commands::update::run(cmd, &cli.api),
        Command::Key(cli::KeyCommand::Rewrap {
            store_url,
            password_file,
            old_master_key,
            new_master_key,
        }) => runtime().and_then(|rt| {
            rt.block_on(commands::rewrap::rewrap(
                &commands::StoreArg::new(&store_url, password_file.as_deref()),
                &old_master_key,
                &new_master_key,
            ))
        }),
        Command::Key(cmd) => commands::key::run(cmd, &cli.api),
        Command::Trust(cmd) => commands::trust::run(cmd, &cli.api),
        Command::Migrate {
            store_url,
            password_file,
        } => runtime().and_then(|rt| {
            rt.block_on(commands::store_copy::migrate(&commands::StoreArg::new(
                &store_url,
                password_file.as_deref(),
            )))
        }),
        Command::Store(cmd) => commands::store_copy::run(cmd),
        Command::Bench(BenchCommand::LoadClients(load)) => runtime().and_then(|rt| {
            rt.block_on(commands::bench::load_clients(&load.store_url(), load.count))
        }),
        Command::Bench(BenchCommand::LoadDevices(load)) => runtime().and_then(|rt| {
            rt.block_on(commands::bench::load_devices(&load.store_url(), load.count))
        }),
        Command::Bench(BenchCommand::DpopProofs(p)) => {
            commands::bench::dpop_proofs(&p.htu, p.count, &p.alg, &p.out)
        }
        Command::Bench(BenchCommand::ExternalToken {
            issuer,
            audience,
            sub,
            lifetime_secs,
        }) => commands::bench::external_token(&issuer, &audience, &sub, lifetime_secs),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CommandError::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(CommandError::Failed(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
    }
}

/// `portcullis audit list | head -1` closes the pipe before the CLI is done printing, and
/// `println!` then panics with a backtrace ("failed printing to stdout: Broken pipe"). A CLI
/// ends quietly there, as `cat` does: the reader has what it wanted. Rust ignores SIGPIPE and
/// offers no safe way to restore it, so the panic is recognised by its message and turned into
/// exit status 141 (128 + SIGPIPE, what a shell reports for a killed writer); every other panic
/// is reported as before.
fn quiet_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        report(info);
    }));
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Failed(format!("cannot start the runtime: {e}")))
}

fn serve_command(args: cli::ServeArgs) -> Result<(), CommandError> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    if let Some(dir) = args.data_dir {
        config.server.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(listen_tls) = args.listen_tls {
        config.server.listen_tls = listen_tls;
    }
    if let Some(listen) = args.listen_mqtts {
        config.gateway.listen_mqtts = Some(listen);
    }
    if let Some(listen) = args.listen_mqtt {
        config.gateway.listen_mqtt = listen;
    }
    if args.adopt_issuer && !config.shared_store() {
        return Err(CommandError::Usage(
            "--adopt-issuer replaces the issuer a shared (PostgreSQL) store keeps; a SQLite \
             store keeps none: its node's issuer is [server] issuer"
                .into(),
        ));
    }
    if args.adopt_issuer && config.server.issuer.is_none() {
        return Err(CommandError::Usage(
            "--adopt-issuer needs the new issuer: set [server] issuer (or \
             PORTCULLIS_SERVER__ISSUER)"
                .into(),
        ));
    }
    // Dropped after the node stops and before `main` prints a fatal error: that goes out as is.
    let _capture = init_tracing(&config);
    runtime()?
        .block_on(serve::run(config, args.adopt_issuer))
        .map_err(|e| CommandError::Failed(e.to_string()))
}

/// Sets up the node's log. A JSON log also takes over standard error
/// ([`stderr_capture`]), so every line on it is JSON; the returned capture gives it back when
/// dropped.
fn init_tracing(config: &Config) -> Option<stderr_capture::StderrCapture> {
    // `RUST_LOG` wins over `[log] level`. PostgreSQL's notices (e.g. "relation
    // _sqlx_migrations already exists, skipping" at every start) arrive at info through sqlx:
    // only their warnings are worth a line, unless the directives name sqlx themselves.
    let mut level = std::env::var("RUST_LOG")
        .ok()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or_else(|| config.log.level.clone());
    if !level.contains("sqlx") {
        level.push_str(",sqlx::postgres::notice=warn");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    // Colour only on a terminal: escape codes in a log file or journal are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if config.log.format != config_values::LogFormat::Json {
        builder.with_writer(std::io::stderr).with_ansi(ansi).init();
        return None;
    }
    match stderr_capture::StderrCapture::start() {
        Some((capture, original)) => {
            builder
                .json()
                .with_ansi(false)
                .with_writer(std::sync::Arc::new(original))
                .init();
            Some(capture)
        }
        None => {
            builder
                .json()
                .with_ansi(false)
                .with_writer(std::io::stderr)
                .init();
            None
        }
    }
}
