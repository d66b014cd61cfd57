//! Starts the `[[audit.export]]` streams of a node (the exporters themselves are
//! `portcullis_audit::export`): each follows the trail from its cursor into its sink, on the
//! node holding its lease.

use std::sync::Arc;

use portcullis_audit::export::ndjson::{NdjsonSink, NdjsonTarget};
use portcullis_audit::export::syslog::{SyslogSink, SyslogTarget};
use portcullis_audit::export::{ExportSink, Exporter};
use portcullis_audit::AuditLog;
use portcullis_store::Store;
use tokio::task::JoinHandle;

use crate::config::{AuditExportConfig, AuditExportKind};

/// Spawns one task per configured export; an export whose sink cannot be built (an
/// unreadable CA file) is an error at start, not a silent gap in the trail.
pub fn spawn_all(
    exports: &[AuditExportConfig],
    store: &Arc<dyn Store>,
    audit: &AuditLog,
    node_id: &str,
) -> Result<Vec<JoinHandle<()>>, String> {
    exports
        .iter()
        .map(|export| {
            let sink = sink(export)?;
            tracing::info!(export = %export.name, sink = %sink.describe(), "audit export");
            let exporter = Exporter {
                name: export.name.clone(),
                store: store.clone(),
                sealer: audit.sealer().cloned(),
                sink,
                start: export.start_at(),
                node_id: node_id.to_owned(),
            };
            Ok(tokio::spawn(exporter.run()))
        })
        .collect()
}

fn sink(export: &AuditExportConfig) -> Result<Box<dyn ExportSink>, String> {
    let missing = |what: &str| format!("audit.export {}: {what} is missing", export.name);
    match export.kind {
        AuditExportKind::Ndjson => {
            let path = export.path.as_deref().ok_or_else(|| missing("path"))?;
            Ok(Box::new(NdjsonSink::new(NdjsonTarget::parse(path))))
        }
        AuditExportKind::Syslog => {
            let address = export.address.clone().ok_or_else(|| missing("address"))?;
            let server_name = export.server_name.clone().unwrap_or_else(|| {
                address
                    .rsplit_once(':')
                    .map_or(address.as_str(), |(host, _)| host)
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned()
            });
            let target = SyslogTarget {
                address,
                server_name,
                ca_file: export
                    .tls_ca_file
                    .clone()
                    .ok_or_else(|| missing("tls_ca_file"))?,
                hostname: export.hostname.clone().unwrap_or_else(host_name),
                app_name: "portcullis".into(),
            };
            SyslogSink::new(target)
                .map(|sink| Box::new(sink) as Box<dyn ExportSink>)
                .map_err(|e| format!("audit.export {}: {e}", export.name))
        }
    }
}

/// This machine's host name (the syslog HOSTNAME field), `-` if it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "-".into())
}
