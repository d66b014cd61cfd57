//! `portcullis serve`: prepares the node, assembles the routers and serves until SIGTERM or
//! Ctrl-C, then drains in-flight requests and flushes the audit log.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use portcullis_oauth::AuthServer;
use portcullis_store::Store;

use crate::bootstrap::{self, unix_now};
use crate::config::Config;
use crate::config_values::Listen;
use crate::http_metrics;
use crate::key_manager::KeyManager;
use crate::node_services::NodeServices;
use crate::serve_error::ServeError;

/// How often expired revocations and assertion ids are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// How often the key rotation timeline is checked: a pre-published key starts signing within
/// this of its time. A check that finds nothing due reads the key table and nothing else.
const KEY_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often the CRL builder checks for revocations (its own are also picked up by the next
/// fetch), so a revocation made on another node is published within about this. A check
/// with nothing to do renews the lease and reads nothing else.
const CRL_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// The lease that makes one node purge expired rows from the shared store.
const PURGE_LEASE: &str = "purge";
/// Longer than two purge intervals, so the holder keeps it while alive.
const PURGE_LEASE_SECS: i64 = 150;
/// The lease that makes one node build and publish the CRL (renewed every CRL check).
const CRL_LEASE: &str = "crl";
/// Ten missed checks hand the CRL over to another node.
const CRL_LEASE_SECS: i64 = 10;

/// Runs the server until a shutdown signal.
pub async fn run(config: Config, adopt_issuer: bool) -> Result<(), ServeError> {
    let shutdown = shutdown_signal()?;
    let metrics = http_metrics::install_recorder()?;
    // Checked (its URL, its secret file) before anything is created or bound, so a mistake
    // in it stops a first start with nothing left behind — and checked even with detection
    // off, where it would send nothing.
    let webhook = config
        .alerts
        .webhook
        .as_ref()
        .map(crate::alert_webhook::AlertWebhook::start)
        .transpose()
        .map_err(ServeError::Alerts)?;
    if webhook.is_some() && !config.detection.enabled {
        tracing::warn!("[alerts.webhook] is set but [detection] enabled = false: no alert will be raised or sent");
    }
    // Held until the node stops: a second node on this SQLite file is refused.
    let _embedded_store = bootstrap::claim_embedded_store(&config)?;
    // Bind first: with `--listen 127.0.0.1:0` the issuer must name the port actually bound.
    let listener = bind(config.server.listen, false).await?;
    let local = listener
        .as_ref()
        .map(|l| l.local_addr().map_err(ServeError::Http))
        .transpose()?;
    let tls_listener = bind(config.server.listen_tls, true).await?;
    let metrics_listener = match config.server.metrics_listen {
        Some(listen) => bind(listen, false).await?,
        None => None,
    };
    let tls_local = tls_listener
        .as_ref()
        .map(|l| l.local_addr().map_err(ServeError::Http))
        .transpose()?;
    // Without a configured issuer: `http://<bound address>`, or `https://<TLS address>` when
    // the plain listener is off (so discovery names HTTPS endpoints), unless a shared store
    // already keeps the issuer of its first node (bootstrap::resolve_issuer).
    let default_issuer = match (local, tls_local) {
        (Some(plain), _) => format!("http://{plain}"),
        (None, Some(tls)) => format!("https://{tls}"),
        (None, None) => return Err(ServeError::NothingToServe),
    };

    let node = bootstrap::prepare(&config, &default_issuer, adopt_issuer).await?;
    let issuer = node.issuer.clone();
    if let Some(path) = &node.admin_credential_written {
        tracing::info!(path = %path.display(), "first start: bootstrap admin credential written (mode 0600)");
    }
    let trusted_proxies = Arc::new(config.trusted_proxies()?);
    let services = NodeServices::start(&config, node, tls_local).await?;
    let gateway = Arc::new(crate::gateway_setup::start(&config, &services, &issuer).await?);
    let NodeServices {
        store,
        ring,
        audit,
        server,
        keys: key_manager,
        pki,
        detection,
        blocklist,
    } = services;

    // Other nodes' changes (PostgreSQL NOTIFY) invalidate this node's caches.
    if let Some(feed) = store.change_feed().await? {
        tokio::spawn(crate::cache_coherence::follow_changes(
            server.clone(),
            key_manager.clone(),
            pki.clone(),
            Some(gateway.gateway.clone()),
            Some(blocklist.clone()),
            feed,
        ));
    }

    // Before serving: a node that builds the CRL must know it before the first fetch, or it
    // would serve the published CRL, which lacks revocations committed while no node could
    // publish (a crash between a revocation and its publication).
    claim_crl_lease(store.as_ref(), key_manager.node_id(), &pki.pki).await;
    let node_id = key_manager.node_id().to_owned();
    // Before any listener: an export that cannot be set up (a missing CA file) stops the start
    // before the node has said it listens.
    let exports = crate::audit_export::spawn_all(&config.audit.export, &store, &audit, &node_id)
        .map_err(ServeError::AuditExport)?;

    let surfaces = Surfaces {
        server: server.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
        keys: key_manager.clone(),
        pki: pki.clone(),
        trusted_proxies,
        metrics_on_own_listener: config.server.metrics_listen.is_some(),
        gateway: Some(gateway.clone()),
        blocklist: blocklist.clone(),
        audit_exports: config.audit_exports(),
    };
    // The lines that say where the node listens go to stdout, where tests and scripts read
    // them — unless an `[[audit.export]]` streams NDJSON there, which must stay one record per
    // line: then to stderr.
    let announce_on_stderr = config.audit.export.iter().any(|e| {
        e.kind == crate::config::AuditExportKind::Ndjson && e.path.as_deref() == Some("-")
    });
    let json_log = config.log.format == crate::config_values::LogFormat::Json;
    let announce = |line: String| {
        if announce_on_stderr && json_log {
            // stderr carries the JSON log (and nothing else): the line as one of its events.
            tracing::info!("{line}");
        } else if announce_on_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let metrics_task = match metrics_listener {
        Some(listener) => {
            let addr = listener.local_addr().map_err(ServeError::Http)?;
            tracing::info!(%addr, "metrics listening");
            announce(format!("portcullis metrics on http://{addr}"));
            let app = Router::new()
                .route("/metrics", get(http_metrics::render))
                .with_state(metrics.clone());
            // Served like the other listeners (header-read timeout included) until aborted.
            Some(tokio::spawn(crate::http_conn::serve_plain(
                listener,
                app,
                std::future::pending(),
            )))
        }
        None => None,
    };
    let app = surfaces.router(Listener::Plain);
    let mqtts_listener = match config.gateway.listen_mqtts {
        Some(listen) => bind_gateway(listen).await?,
        None => match bind_gateway(Listen::At(DEFAULT_MQTTS)).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "the default MQTT-over-TLS port is taken; set [gateway] listen_mqtts to serve MQTT");
                None
            }
        },
    };
    let mqtt_listener = bind_gateway(config.gateway.listen_mqtt).await?;
    // The MQTT-over-TLS listener presents the HTTPS listener's certificate (renewed with it);
    // without an HTTPS listener it gets one of its own for its address.
    let mqtts_local = mqtts_listener
        .as_ref()
        .map(|l| l.local_addr().map_err(ServeError::Http))
        .transpose()?;
    let certificate = match tls_local.or(mqtts_local) {
        Some(addr) => {
            Some(crate::tls_certificate::TlsCertificate::load(&config, &pki.pki, addr).await?)
        }
        None => None,
    };
    let tls_config = match &certificate {
        Some(c) => Some(crate::tls::server_config(c.current())?),
        None => None,
    };
    let mut mqtt_tasks = Vec::new();
    // Told at shutdown; each listener then says goodbye to its connections (MQTT 5:
    // DISCONNECT 0x8B) and waits a little for them, instead of being cut off mid-write.
    let (mqtt_stop, mqtt_stopping) = tokio::sync::watch::channel(false);
    for (listener, tls) in [(mqtts_listener, true), (mqtt_listener, false)] {
        let Some(listener) = listener else { continue };
        let addr = listener.local_addr().map_err(ServeError::Http)?;
        let scheme = if tls { "mqtts" } else { "mqtt" };
        tracing::info!(%addr, "gateway MQTT listening ({scheme})");
        // Tests and scripts read the MQTT ports from these lines.
        announce(format!("portcullis gateway on {scheme}://{addr}"));
        mqtt_tasks.push(tokio::spawn(portcullis_gateway::mqtt::serve(
            listener,
            if tls { tls_config.clone() } else { None },
            gateway.gateway.clone(),
            {
                let mut stopping = mqtt_stopping.clone();
                async move {
                    let _ = stopping.wait_for(|stop| *stop).await;
                }
            },
        )));
    }
    let tls_task = match (tls_listener, tls_local, certificate, tls_config.clone()) {
        (Some(tls_listener), Some(tls_local), Some(certificate), Some(tls_config)) => {
            let tls_app = surfaces.router(Listener::Tls);
            tracing::info!(addr = %tls_local, %node_id, "portcullis listening (TLS)");
            // Tests and scripts read the TLS port from this line, printed before the plain one.
            announce(format!("portcullis listening on https://{tls_local}"));
            // Renewal lives and ends with the listener: aborting this task stops both.
            Some(tokio::spawn(async move {
                tokio::join!(
                    crate::tls::serve(tls_listener, tls_config, tls_app),
                    certificate.keep_current()
                )
            }))
        }
        // MQTT over TLS without an HTTPS listener: its certificate is still renewed.
        (_, _, Some(certificate), _) => Some(tokio::spawn(async move {
            certificate.keep_current().await;
            ((), ())
        })),
        _ => None,
    };
    if let Some(local) = local {
        // The node id names this node in the leases table and in audit checkpoints.
        tracing::info!(addr = %local, %issuer, %node_id, "portcullis listening");
        // Tests and scripts wait for this exact line on stdout.
        announce(format!("portcullis listening on http://{local}"));
    }

    let checkpoint_job = crate::audit_checkpoint::CheckpointJob {
        store: store.clone(),
        keys: ring.clone(),
        audit: audit.clone(),
        node_id: node_id.clone(),
        interval: Duration::from_secs(config.audit.checkpoint_interval_secs),
    };
    let checkpoints = checkpoint_job.clone().spawn();
    let archiving =
        crate::audit_auto_archive::ArchiveJob::configured(&config, &store, &ring, &audit, &node_id)
            .map(crate::audit_auto_archive::ArchiveJob::spawn);
    let detector = match detection {
        Some((observed, secret)) => {
            let detector = crate::detection::Detector {
                config: Arc::new(config.detection.clone()),
                store: store.clone(),
                secret,
                audit: audit.clone(),
                webhook,
                clients: server.clone(),
                devices: pki.pki.clone(),
                blocklist: blocklist.clone(),
            };
            Some(tokio::spawn(detector.run(observed)))
        }
        None => None,
    };
    let background = tokio::spawn(background_jobs(
        server.clone(),
        store.clone(),
        metrics,
        key_manager,
        pki.clone(),
    ));
    // On the signal, the leader-only jobs stop and their leases are handed over at once,
    // before the connections drain: a long request (an audit stream, a telemetry follow)
    // would otherwise hold them for the whole grace period, as long as a killed node does.
    let leader_jobs: Vec<tokio::task::AbortHandle> = [
        Some(background.abort_handle()),
        checkpoints
            .as_ref()
            .map(tokio::task::JoinHandle::abort_handle),
        archiving
            .as_ref()
            .map(tokio::task::JoinHandle::abort_handle),
    ]
    .into_iter()
    .flatten()
    .collect();
    let hand_over = {
        let (store, node_id, pki) = (store.clone(), node_id.clone(), pki.clone());
        async move {
            shutdown.await;
            for job in &leader_jobs {
                job.abort();
            }
            pki.pki.crl.set_leader(false);
            release_leases(store.as_ref(), &node_id).await;
        }
    };
    match listener {
        Some(listener) => crate::http_conn::serve_plain(listener, app, hand_over).await,
        // HTTPS only: the TLS task serves until the signal.
        None => hand_over.await,
    }
    background.abort();
    if let Some(task) = detector {
        task.abort();
    }
    for task in exports {
        task.abort();
    }
    if let Some(task) = archiving {
        // Stopping between a segment's write and its purge loses nothing: the next run
        // finds the segment on disk, verifies it and purges with it.
        task.abort();
    }
    if let Some(task) = checkpoints {
        task.abort();
        // A last checkpoint over what this node recorded since the previous one, so a clean
        // stop leaves no uncovered tail (taken only if this node holds or can take the lease).
        if let Err(e) = checkpoint_job.take_checkpoint().await {
            tracing::warn!(error = %e, "final audit checkpoint failed");
        }
    }
    if let Some(task) = tls_task {
        task.abort();
    }
    gateway.gateway.close_all();
    let _ = mqtt_stop.send(true);
    for task in mqtt_tasks {
        // Bounded by the listener's own grace period.
        let _ = task.await;
    }
    gateway.gateway.flush_counters().await;
    if let Some(task) = metrics_task {
        task.abort();
    }
    // Again: the final checkpoint above may have taken its lease back.
    release_leases(store.as_ref(), &node_id).await;
    // Spent DPoP proof and outside-token ids still queued for the store (embedded store:
    // written behind), so a restart knows them.
    server.flush_single_use().await;
    audit.shutdown().await;
    tracing::info!("portcullis stopped");
    Ok(())
}

/// Binds a listener unless it is off.
async fn bind(listen: Listen, tls: bool) -> Result<Option<tokio::net::TcpListener>, ServeError> {
    let Listen::At(addr) = listen else {
        return Ok(None);
    };
    tokio::net::TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| ServeError::Listen { addr, tls, source })
}

/// Where MQTT over TLS listens unless `[gateway] listen_mqtts` says otherwise.
const DEFAULT_MQTTS: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8883);

/// Binds a gateway (MQTT) listener unless it is off.
async fn bind_gateway(listen: Listen) -> Result<Option<tokio::net::TcpListener>, ServeError> {
    let Listen::At(addr) = listen else {
        return Ok(None);
    };
    tokio::net::TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|e| ServeError::Gateway(format!("cannot listen on {addr}: {e}")))
}

/// Which listener a router serves: EST is mounted only on the TLS one (its Basic secret
/// would otherwise cross plain HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Plain,
    Tls,
}

/// Everything the HTTP surfaces of a node are built from.
pub struct Surfaces {
    pub server: Arc<AuthServer>,
    pub store: Arc<dyn Store>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub keys: Arc<KeyManager>,
    pub pki: Arc<crate::pki_setup::NodePki>,
    /// Installed as a request extension, so every surface resolves the source address alike
    /// (`portcullis_http::SourceAddr`).
    pub trusted_proxies: Arc<portcullis_core::forwarded::TrustedProxies>,
    /// `[server] metrics_listen` is set: `/metrics` lives there, not on these listeners.
    pub metrics_on_own_listener: bool,
    /// The device gateway's routes (`/gateway/v1`), on both listeners.
    pub gateway: Option<Arc<crate::gateway_setup::NodeGateway>>,
    /// Addresses attack detection blocked: refused before any route.
    pub blocklist: Arc<crate::blocklist::Blocklist>,
    /// The `[[audit.export]]`s, whose undelivered records archiving leaves live.
    pub audit_exports: Arc<[(String, portcullis_audit::export::StartAt)]>,
}

impl Surfaces {
    /// The whole HTTP surface of one listener. The edge layer goes on last, so it wraps every
    /// route of every surface and counts each under its matched route.
    pub fn router(&self, listener: Listener) -> Router {
        let ops = Router::new()
            .route("/healthz", get(crate::health::healthz))
            .route("/readyz", get(crate::health::readyz))
            .with_state(crate::health::Readiness {
                store: self.store.clone(),
                log: self.gateway.as_ref().and_then(|g| g.log.clone()),
            })
            .merge(if self.metrics_on_own_listener {
                // `[server] metrics_listen` serves them: here `/metrics` is no route (404).
                Router::new()
            } else {
                Router::new()
                    .route("/metrics", get(http_metrics::render_local))
                    .with_state(self.metrics.clone())
            });
        let admin = portcullis_admin::AdminPorts::new(
            self.server.clone(),
            self.server.clone(),
            self.server.audit_trail(),
        )
        .with_keys(self.keys.clone())
        .with_devices(self.pki.pki.clone())
        .with_archive(
            self.store.clone(),
            self.server.keys().clone(),
            self.audit_exports.clone(),
        )
        .with_alerts(self.store.clone())
        .with_federation(Arc::new(crate::federation_admin::OAuthFederationAdmin {
            server: self.server.clone(),
        }));
        let admin = match &self.gateway {
            Some(gateway) => admin
                .with_trust(gateway.trust.clone())
                .with_command_rules(gateway.command_rules.clone()),
            None => admin,
        };
        let mut app = portcullis_oauth::router(self.server.clone())
            .nest("/admin/v1", portcullis_admin::router(admin))
            .merge(ops)
            .merge(portcullis_pki::publish::router(self.pki.pki.clone()))
            .merge(portcullis_pki::ocsp::router(self.pki.ocsp.clone()));
        if listener == Listener::Tls {
            app = app.merge(portcullis_pki::est::router(self.pki.pki.clone()));
        }
        if let Some(gateway) = &self.gateway {
            app = app.merge(gateway.router(listener == Listener::Tls));
        }
        let edge = Arc::new(crate::edge::Edge {
            trusted_proxies: self.trusted_proxies.clone(),
            blocklist: self.blocklist.clone(),
            metrics: http_metrics::HttpMetrics::default(),
        });
        app.layer(axum::middleware::from_fn_with_state(
            edge,
            crate::edge::edge,
        ))
    }
}

/// Periodic housekeeping: purge what has expired, keep histogram windows fresh.
async fn background_jobs(
    server: Arc<AuthServer>,
    store: Arc<dyn Store>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    keys: Arc<KeyManager>,
    pki: Arc<crate::pki_setup::NodePki>,
) {
    let mut purge = tokio::time::interval(PURGE_INTERVAL);
    let mut crl = tokio::time::interval(CRL_CHECK_INTERVAL);
    let mut key_check = tokio::time::interval(KEY_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = key_check.tick() => {
                if let Err(e) = keys.reconcile().await {
                    tracing::warn!(error = %e, "key rotation check failed; will retry");
                }
            }
            // Keeps a fresh CRL ready. The `crl` lease holder rebuilds and publishes it when a
            // revocation marked it stale (here or, through the change feed, on another node) or
            // half its validity has passed; the other nodes load what it published.
            _ = crl.tick() => {
                claim_crl_lease(store.as_ref(), keys.node_id(), &pki.pki).await;
                if let Err(e) = pki.pki.crl.current(portcullis_pki::clock::unix_now_millis()).await {
                    tracing::warn!(error = %e, "CRL regeneration failed; will retry");
                }
            }
            _ = purge.tick() => {
                let now = unix_now();
                // Every node trims its own cache; one node (the `purge` lease holder) the store.
                server.purge_revocations();
                match store.try_acquire_lease(PURGE_LEASE, keys.node_id(), PURGE_LEASE_SECS, now).await {
                    Ok(true) => {
                        if let Err(e) = store.purge_expired(now).await {
                            tracing::warn!(error = %e, "purging expired rows failed; will retry");
                        }
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "purge lease unavailable; will retry"),
                }
                metrics.run_upkeep();
            }
        }
    }
}

/// Hands this node's leases over now rather than after they expire (a rolling restart would
/// otherwise leave key rotation, the CRL and checkpoints unowned for up to their time-outs).
async fn release_leases(store: &dyn Store, node_id: &str) {
    if let Err(e) = store.release_leases(node_id).await {
        tracing::warn!(error = %e, "releasing leases failed; they expire on their own");
    }
}

/// Renews (or tries to take) the `crl` lease and tells the CRL publisher whether it builds.
async fn claim_crl_lease(store: &dyn Store, node_id: &str, pki: &portcullis_pki::Pki) {
    match store
        .try_acquire_lease(CRL_LEASE, node_id, CRL_LEASE_SECS, unix_now())
        .await
    {
        Ok(leader) => pki.crl.set_leader(leader),
        Err(e) => tracing::warn!(error = %e, "CRL lease unavailable; will retry"),
    }
}

/// SIGTERM and SIGINT, registered at once: a signal that arrives before the server awaits it
/// (a supervisor stopping a node the moment it reports listening) is kept for it rather
/// than killing the process with the default action, so every stop is a clean one.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, ServeError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = interrupt.recv() => {},
        }
        tracing::info!("shutdown signal received; draining");
    })
}
