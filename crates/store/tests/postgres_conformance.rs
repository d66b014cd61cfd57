//! The PostgreSQL backend against the backend-independent [`Store`] contract, plus what only
//! a shared database has: several nodes appending to one audit chain, and triggers that refuse
//! to rewrite it. Each test works in a fresh schema (`postgres::test_schema`); without a
//! reachable server they skip, except under `CI`, where they fail.

// An integration test: a failure is a failed test, so panicking shortcuts are fine here
// (and in the helpers it shares), unlike in the crates it tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_core::audit::{AuditEvent, ChainVerifier};
use portcullis_core::client::Client;
use portcullis_core::device::{Device, DeviceId, DeviceState, RevocationReason};
use portcullis_core::Kid;
use portcullis_store::conformance;
use portcullis_store::postgres::test_schema::{with_test_schema, TestSchema};
use portcullis_store::{Change, RevokedToken, Store, StoreError, StoredKey};
use sqlx::postgres::PgListener;

/// Far enough ahead that nothing written with it expires during a test run.
const FAR_FUTURE: i64 = 4_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_conformance_suite() {
    with_test_schema(|schema| async move {
        let store = schema.connect().await;
        let started = Instant::now();
        conformance::run_all(&store).await;
        println!("conformance suite on PostgreSQL: {:.2?}", started.elapsed());
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_chain_continues_across_a_reconnect() {
    with_test_schema(|schema| async move {
        let first = schema.connect().await;
        conformance::audit_chain_spans_batches_and_verifies(&first).await;
        first.close().await;
        let second = schema.connect().await;
        conformance::audit_chain_spans_batches_and_verifies(&second).await;
        second.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_anchor_starts_an_empty_chain() {
    with_test_schema(|schema| async move {
        let store = schema.connect().await;
        conformance::an_imported_anchor_starts_an_empty_chain(&store).await;
        store.close().await;
    })
    .await;
}

fn node_event(node: usize, batch: usize, i: usize) -> AuditEvent {
    AuditEvent {
        at: 1_700_000_000 + i as i64,
        actor: format!("node-{node}"),
        action: "token.issued".into(),
        subject: format!("jti-{node}-{batch}-{i}"),
        outcome: "success".into(),
        detail: serde_json::json!({ "node": node, "batch": batch, "i": i, "f": 0.1 * i as f64 }),
    }
}

/// Two stores with pools of their own stand for two Portcullis nodes: only the database can
/// serialize their appends (the advisory lock), and the result must be one intact chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_appending_concurrently_form_one_valid_chain() {
    with_test_schema(|schema| async move {
        let node_a = schema.connect().await;
        let node_b = schema.connect().await;
        let (batches, per_batch) = (20, 25);
        let appender = |store: portcullis_store::postgres::PostgresStore, node: usize| async move {
            for batch in 0..batches {
                let events = (0..per_batch).map(|i| node_event(node, batch, i)).collect();
                store.append_audit(events).await.expect("append");
            }
        };
        // Two tasks per node, so each pool also has appenders racing inside it.
        let tasks = [
            tokio::spawn(appender(node_a.clone(), 0)),
            tokio::spawn(appender(node_a.clone(), 1)),
            tokio::spawn(appender(node_b.clone(), 2)),
            tokio::spawn(appender(node_b.clone(), 3)),
        ];
        for task in tasks {
            task.await.expect("appender task");
        }

        let mut verifier = ChainVerifier::default();
        let mut after = 0;
        loop {
            let page = node_b.list_audit(after, 300).await.expect("page");
            let Some(last) = page.last() else { break };
            after = last.seq;
            for record in &page {
                verifier.check(record).expect("chain verifies");
            }
        }
        assert_eq!(verifier.count, (4 * batches * per_batch) as u64);
        node_a.close().await;
        node_b.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_only_triggers_refuse_to_rewrite_the_audit_log() {
    with_test_schema(|schema| async move {
        let store = schema.connect().await;
        store
            .append_audit(vec![node_event(0, 0, 0), node_event(0, 0, 1)])
            .await
            .expect("append");
        for sql in [
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = 1",
            "DELETE FROM audit_log WHERE seq = 2",
            "TRUNCATE audit_log",
        ] {
            let refused = schema.execute(sql).await;
            assert!(
                matches!(&refused, Err(StoreError::Unavailable(m)) if m.contains("append-only")),
                "{sql}: {refused:?}"
            );
        }
        let kept = store.list_audit(0, 10).await.expect("list");
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].event.actor, "node-0");
        store.close().await;
    })
    .await;
}

/// Ids that differ in case and punctuation page in byte order, as on SQLite, whatever the
/// database's default collation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ids_page_in_byte_order() {
    with_test_schema(|schema| async move {
        let store = schema.connect().await;
        let ids = ["b", "B", "a-1", "a_1", "a.1", "A", "a", "Z9", "z"];
        let clients: Vec<_> = ids
            .iter()
            .map(|id| conformance::sample_client(id))
            .collect();
        store.insert_clients(&clients).await.expect("insert");
        let listed: Vec<String> = store
            .list_clients(None, 100)
            .await
            .expect("list")
            .into_iter()
            .map(|c| c.client_id.as_str().to_owned())
            .collect();
        let mut bytewise: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        bytewise.sort();
        assert_eq!(listed, bytewise);
        store.close().await;
    })
    .await;
}

/// Every change other nodes cache is announced on `portcullis_changes` when it commits, and a
/// write that changes nothing announces nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_announced_for_cache_invalidation() {
    with_test_schema(|schema| async move {
        let store = schema.connect().await;
        let mut listener = PgListener::connect(schema.url()).await.expect("listener");
        listener.listen("portcullis_changes").await.expect("listen");
        // The channel is database-wide: ids carry the schema name so parallel runs' own
        // announcements can be told apart.
        let tag = schema.name().to_owned();
        let id = |s: &str| format!("{s}-{tag}");

        let mut client = conformance::sample_client(&id("notify-client"));
        store.insert_client(&client).await.expect("insert");
        client.enabled = false;
        store.update_client(&client).await.expect("update");
        assert!(store
            .delete_client(&client.client_id)
            .await
            .expect("delete"));
        assert!(!store.delete_client(&client.client_id).await.expect("again"));
        let token = RevokedToken {
            jti: id("notify-jti"),
            client_id: client.client_id.clone(),
            expires_at: FAR_FUTURE,
        };
        store.revoke_token(&token).await.expect("revoke");
        store.revoke_token(&token).await.expect("revoke again");
        let key = StoredKey {
            kid: Kid::parse(id("notify-kid")).expect("kid"),
            alg: "ES256".into(),
            backend: "software".into(),
            sealed_private: vec![1],
            public_jwk: "{}".into(),
            state: portcullis_core::rotation::StoredKeyState::Next,
            created_at: 1,
            state_changed_at: 1,
        };
        // Announced too: a pre-published key is in every node's JWKS at once.
        store.insert_signing_key(&key).await.expect("insert key");
        store
            .update_signing_key_state(
                &key.kid,
                portcullis_core::rotation::StoredKeyState::Active,
                2,
            )
            .await
            .expect("promote");
        // Unknown ids change nothing and announce nothing.
        let ghost = conformance::sample_client(&id("notify-ghost"));
        assert!(store.update_client(&ghost).await.is_err());

        let client_id = client.client_id.as_str();
        let expected = vec![
            format!("client:{client_id}"),
            format!("client:{client_id}"),
            format!("revocation:{}", token.jti),
            format!("key:{}", key.kid.as_str()),
            format!("key:{}", key.kid.as_str()),
        ];
        let mut heard = Vec::new();
        while heard.len() < expected.len() {
            let note = tokio::time::timeout(Duration::from_secs(5), listener.recv())
                .await
                .expect("announcement within 5 s")
                .expect("listener");
            if note.payload().contains(&tag) {
                heard.push(note.payload().to_owned());
            }
        }
        assert_eq!(heard, expected);
        // Nothing more of ours arrives (the repeated revoke and the ghost update were silent).
        while let Ok(Ok(note)) =
            tokio::time::timeout(Duration::from_millis(200), listener.recv()).await
        {
            assert!(
                !note.payload().contains(&tag),
                "unexpected {}",
                note.payload()
            );
        }
        store.close().await;
    })
    .await;
}

/// The harness drops a test's schema even when the test panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_test_still_drops_its_schema() {
    let seen = Arc::new(Mutex::new(None::<String>));
    let record = seen.clone();
    let failing = tokio::spawn(with_test_schema(move |schema| async move {
        *record.lock().expect("lock") = Some(schema.name().to_owned());
        panic!("deliberate failure");
    }))
    .await;
    let Some(name) = seen.lock().expect("lock").clone() else {
        return; // skipped: no PostgreSQL
    };
    assert!(failing.is_err(), "the panic reaches the test");
    let Some(probe) = TestSchema::create().await else {
        return;
    };
    let count_schemas = |name: String| {
        let probe = probe.clone();
        async move {
            probe
                .execute(&format!(
                    "SELECT 1 FROM pg_namespace WHERE nspname = '{name}'"
                ))
                .await
                .expect("query")
        }
    };
    // The probe can see a schema that exists (its own), so a 0 below means "gone".
    assert_eq!(count_schemas(probe.name().to_owned()).await, 1);
    let found = count_schemas(name.clone()).await;
    probe.drop_schema().await;
    assert_eq!(found, 0, "schema {name} was dropped");
}

/// The bulk path (COPY text format) and the single-row path store awkward text and bytes
/// identically: separators, escapes and non-ASCII survive both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_and_single_inserts_round_trip_awkward_values() {
    with_test_schema(|schema| async move {
        let store = schema.connect().await;
        let awkward = |id: &str| Client {
            name: "tab\there\nnew line\r\\N \\. back\\slash ünï ✓".into(),
            jwks: Some("{\"keys\":[],\"x\":\"a\\tb\"}\n\\.".into()),
            jwks_uri: None,
            sealed_secret: Some(vec![0, b'\t', b'\n', b'\\', 255]),
            audiences: vec!["urn:a\tb".into(), "\\".into()],
            ..conformance::sample_client(id)
        };
        let bulk = vec![awkward("awk-bulk-1"), awkward("awk-bulk-2")];
        store.insert_clients(&bulk).await.expect("bulk");
        let single = awkward("awk-single");
        store.insert_client(&single).await.expect("single");
        for c in bulk.iter().chain([&single]) {
            assert_eq!(
                store.get_client(&c.client_id).await.expect("get").as_ref(),
                Some(c)
            );
        }
        store.close().await;
    })
    .await;
}

/// Eight spawned tasks on two nodes present one enrollment secret at once: exactly one
/// spends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enrollments_on_two_nodes_have_one_winner() {
    with_test_schema(|schema| async move {
        let node_a = schema.connect().await;
        let node_b = schema.connect().await;
        let nodes: [Arc<dyn Store>; 2] = [Arc::new(node_a.clone()), Arc::new(node_b.clone())];
        conformance::concurrent_enrollment_tasks_have_one_winner(&nodes).await;
        node_a.close().await;
        node_b.close().await;
    })
    .await;
}

/// Eight tasks on two nodes advance one device's message counter through the same values:
/// no counter is accepted twice (the gateway's cross-node replay guarantee).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_counters_are_accepted_once_across_two_nodes() {
    with_test_schema(|schema| async move {
        let node_a = schema.connect().await;
        let node_b = schema.connect().await;
        let nodes: [Arc<dyn Store>; 2] = [Arc::new(node_a.clone()), Arc::new(node_b.clone())];
        conformance::concurrent_advances_accept_each_counter_once(&nodes).await;
        node_a.close().await;
        node_b.close().await;
    })
    .await;
}

/// Eight tasks on two nodes queue commands for one device at once: the device's numbers are
/// 1 to 8, each given once (the row lock on its sequence spans the queuing transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_queued_on_two_nodes_are_numbered_once() {
    with_test_schema(|schema| async move {
        let node_a = schema.connect().await;
        let node_b = schema.connect().await;
        let nodes: [Arc<dyn Store>; 2] = [Arc::new(node_a.clone()), Arc::new(node_b.clone())];
        conformance::concurrent_queue_tasks_number_each_command_once(&nodes).await;
        node_a.close().await;
        node_b.close().await;
    })
    .await;
}

/// Device registrations, updates, spent enrollment secrets and certificate revocations on one
/// node reach another node's change feed, and a bulk registration announces all devices; a
/// revocation or spend that changes nothing is silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pki_changes_reach_another_nodes_change_feed() {
    with_test_schema(|schema| async move {
        let writer = schema.connect().await;
        let reader = schema.connect().await;
        let mut feed = reader
            .change_feed()
            .await
            .expect("feed")
            .expect("PostgreSQL has a change feed");
        // The channel is database-wide: ids and serials carry the schema's random hex so
        // parallel runs' announcements can be told apart.
        let tag = schema.name().trim_start_matches("t_").to_owned();
        let serial = |i: u8| format!("{tag}{i:02x}");
        let device = conformance::sample_device(&format!("feed-{tag}"));
        let device_id = device.device_id.as_str().to_owned();
        writer.insert_device(&device).await.expect("insert device");
        for i in 1..=3 {
            let cert = conformance::sample_certificate(&serial(i), Some(&device_id), FAR_FUTURE);
            writer.insert_certificate(&cert).await.expect("insert cert");
        }

        assert!(writer
            .revoke_certificate(&serial(1), RevocationReason::KeyCompromise, 10)
            .await
            .expect("revoke"));
        assert!(!writer
            .revoke_certificate(&serial(1), RevocationReason::Superseded, 20)
            .await
            .expect("revoke again"));
        let relabelled = Device {
            model: Some("meter-x3".into()),
            ..device.clone()
        };
        assert!(writer.update_device(&relabelled).await.expect("update"));
        let mac = format!("mac-of-{device_id}");
        assert!(writer
            .consume_enrollment_secret(&device.device_id, &mac, DeviceState::Enrolled, 30)
            .await
            .expect("consume"));
        assert!(!writer
            .consume_enrollment_secret(&device.device_id, &mac, DeviceState::Enrolled, 40)
            .await
            .expect("replay"));
        let revoked = writer
            .revoke_device_certificates(&device.device_id, RevocationReason::Unspecified, 50)
            .await
            .expect("revoke the device's");
        assert_eq!(revoked, vec![serial(2), serial(3)]);

        let ours = |change: &Change| match change {
            Change::Device(id) => id.as_str().contains(&tag),
            Change::Certificate(serial) => serial.contains(&tag),
            _ => false,
        };
        let mut heard = Vec::new();
        while heard.len() < 6 {
            let change = tokio::time::timeout(Duration::from_secs(5), feed.recv())
                .await
                .expect("a change within 5 s")
                .expect("feed open");
            if ours(&change) {
                heard.push(change);
            }
        }
        assert_eq!(
            heard[..4],
            [
                Change::Device(device.device_id.clone()),
                Change::Certificate(serial(1)),
                Change::Device(device.device_id.clone()),
                Change::Device(device.device_id.clone()),
            ]
        );
        // One statement revoked both: announced in whichever order it updated the rows.
        let mut last_two = heard[4..].to_vec();
        last_two.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(
            last_two,
            [
                Change::Certificate(serial(2)),
                Change::Certificate(serial(3))
            ]
        );
        // Nothing more of ours arrives (the repeated revoke and the replay were silent).
        while let Ok(Some(change)) =
            tokio::time::timeout(Duration::from_millis(300), feed.recv()).await
        {
            assert!(!ours(&change), "unexpected {change:?}");
        }
        // A bulk registration is one `device:*`. (Other tests' imports announce the same on
        // the database-wide channel, so this only shows that one arrives.)
        let bulk = [
            conformance::sample_device(&format!("feed-bulk-1-{tag}")),
            conformance::sample_device(&format!("feed-bulk-2-{tag}")),
        ];
        assert_eq!(writer.insert_devices(&bulk).await.expect("bulk").len(), 2);
        loop {
            let change = tokio::time::timeout(Duration::from_secs(5), feed.recv())
                .await
                .expect("device:* within 5 s")
                .expect("feed open");
            assert!(!ours(&change), "a bulk insert named a device: {change:?}");
            if change == Change::AllDevices {
                break;
            }
        }
        writer.close().await;
        reader.close().await;
    })
    .await;
}

/// Device and certificate rows edited by hand into values their types cannot hold are
/// reported as `Corrupt`, naming the column and key, never quoting the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_edited_pki_rows_are_corrupt() {
    with_test_schema(|schema| async move {
        let store = schema.connect().await;
        for sql in [
            "INSERT INTO devices VALUES ('bad-state', NULL, '{}', 'bogus', NULL, NULL, 1, 1)",
            "INSERT INTO devices VALUES ('bad-attrs', NULL, '[\"s3cr3t\"]', 'registered', \
             NULL, NULL, 1, 1)",
            "INSERT INTO certificates VALUES ('0a0b', NULL, 'CN=x', 1, 4000000000, \
             repeat('0', 64), '\\x30', 5, 7)",
        ] {
            schema.execute(sql).await.expect(sql);
        }
        let corrupt = |result: Result<(), StoreError>, column: &str| match result {
            Err(StoreError::Corrupt(m)) => {
                assert!(m.contains(column), "{m}");
                assert!(!m.contains("s3cr3t"), "{m}");
            }
            other => panic!("expected corruption of {column}, got {other:?}"),
        };
        let id = |s: &str| DeviceId::parse(s).expect("id");
        corrupt(
            store.get_device(&id("bad-state")).await.map(drop),
            "devices.state",
        );
        corrupt(
            store.get_device(&id("bad-attrs")).await.map(drop),
            "devices.attrs",
        );
        corrupt(
            store.get_certificate("0a0b").await.map(drop),
            "certificates.revocation_reason",
        );
        corrupt(
            store.list_revoked_certificates(0).await.map(drop),
            "certificates.revocation_reason",
        );
        store.close().await;
    })
    .await;
}

/// Every device-key write that changes something announces its device on another node's
/// change feed (so that node drops the device's cached credentials); a delete or reseal of a
/// key that is not there is silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_key_writes_announce_their_device() {
    with_test_schema(|schema| async move {
        let writer = schema.connect().await;
        let reader = schema.connect().await;
        let mut feed = reader
            .change_feed()
            .await
            .expect("feed")
            .expect("PostgreSQL has a change feed");
        let tag = schema.name().trim_start_matches("t_").to_owned();
        let name = format!("dkfeed-{tag}");
        let device = conformance::sample_device(&name);
        writer.insert_device(&device).await.expect("insert device");
        let id = device.device_id.clone();
        // The registration's own announcement first.
        let ours = |change: &Change| matches!(change, Change::Device(d) if d == &id);
        let mut next_of_ours = async || loop {
            let change = tokio::time::timeout(Duration::from_secs(5), feed.recv())
                .await
                .expect("a change within 5 s")
                .expect("feed open");
            if ours(&change) {
                return change;
            }
        };
        next_of_ours().await;

        let k1 = conformance::sample_device_key(&name, "k1", 100, None);
        let k2 = conformance::sample_device_key(&name, "k2", 200, None);
        writer.insert_device_key(&k1).await.expect("insert key");
        writer.rotate_device_key(&k2, 300).await.expect("rotate");
        assert!(writer
            .delete_device_key(&id, &k1.info.key_id)
            .await
            .expect("delete"));
        assert!(!writer
            .delete_device_key(&id, &k1.info.key_id)
            .await
            .expect("delete again"));
        writer
            .update_device_key_sealed(&id, &k2.info.key_id, b"resealed")
            .await
            .expect("reseal");
        assert!(writer
            .update_device_key_sealed(&id, &k1.info.key_id, b"x")
            .await
            .is_err());
        for write in ["insert", "rotate", "delete", "reseal"] {
            assert_eq!(next_of_ours().await, Change::Device(id.clone()), "{write}");
        }
        // Nothing more of ours (the repeated delete and the missing reseal were silent).
        while let Ok(Some(change)) =
            tokio::time::timeout(Duration::from_millis(300), feed.recv()).await
        {
            assert!(!ours(&change), "unexpected {change:?}");
        }
        writer.close().await;
        reader.close().await;
    })
    .await;
}

/// Queuing a command (new, or approved) announces its device on another node's change feed,
/// so the node holding the device's connection wakes it; a pending insert, a refused queuing
/// (a failed signature, a second approval), a delivery and a result are silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_commands_announce_their_device() {
    with_test_schema(|schema| async move {
        let writer = schema.connect().await;
        let reader = schema.connect().await;
        let mut feed = reader
            .change_feed()
            .await
            .expect("feed")
            .expect("PostgreSQL has a change feed");
        let tag = schema.name().trim_start_matches("t_").to_owned();
        let name = format!("cmdfeed-{tag}");
        let device = conformance::sample_device(&name);
        writer.insert_device(&device).await.expect("insert device");
        let id = device.device_id.clone();
        let ours =
            |change: &Change| matches!(change, Change::Device(d) | Change::Commands(d) if d == &id);
        let mut next_of_ours = async || loop {
            let change = tokio::time::timeout(Duration::from_secs(5), feed.recv())
                .await
                .expect("a change within 5 s")
                .expect("feed open");
            if ours(&change) {
                return change;
            }
        };
        // The registration's own announcement first.
        assert_eq!(next_of_ours().await, Change::Device(id.clone()));

        let sign = |seq: u64| Ok::<_, String>(format!("signed-{seq}").into_bytes());
        let fail = |_: u64| Err::<Vec<u8>, _>("hsm offline".to_owned());
        let command = |i| {
            conformance::sample_command(conformance::command_id(1, i), &name, 1_000, FAR_FUTURE)
        };
        let pending = command(0);
        writer.insert_command(&pending).await.expect("pending");
        assert!(writer
            .queue_command(&command(1), 1_000, &fail)
            .await
            .is_err());
        writer
            .queue_command(&pending, 1_100, &sign)
            .await
            .expect("approve")
            .expect("approved");
        assert_eq!(
            writer
                .queue_command(&pending, 1_200, &sign)
                .await
                .expect("approve again"),
            None
        );
        let queued = writer
            .queue_command(&command(2), 1_300, &sign)
            .await
            .expect("queue")
            .expect("queued");
        assert!(writer
            .mark_command_delivered(&queued.command_id, 1_400)
            .await
            .expect("deliver"));
        assert!(writer
            .record_command_result(
                &queued.command_id,
                &id,
                portcullis_core::command::CommandState::Succeeded,
                None,
                1_500
            )
            .await
            .expect("result")
            .recorded());
        for write in ["approve", "queue"] {
            assert_eq!(
                next_of_ours().await,
                Change::Commands(id.clone()),
                "{write}"
            );
        }
        // Nothing more of ours (the pending insert, the refusals, the delivery and the result
        // were silent).
        while let Ok(Some(change)) =
            tokio::time::timeout(Duration::from_millis(300), feed.recv()).await
        {
            assert!(!ours(&change), "unexpected {change:?}");
        }
        writer.close().await;
        reader.close().await;
    })
    .await;
}

/// What one node adds to a detection counter, the other node's next batch counts; eight tasks
/// on two nodes adding to the same counters at once (in both orders) lose nothing and never
/// deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_counts_are_shared_across_two_nodes() {
    with_test_schema(|schema| async move {
        let node_a = schema.connect().await;
        let node_b = schema.connect().await;
        let nodes: [Arc<dyn Store>; 2] = [Arc::new(node_a.clone()), Arc::new(node_b.clone())];
        conformance::detection_counts_add_up_across_nodes(&nodes).await;
        conformance::concurrent_detection_counts_lose_nothing(&nodes).await;
        node_a.close().await;
        node_b.close().await;
    })
    .await;
}

/// Eight tasks on two nodes insert the same incidents at once, as nodes deciding the same
/// crossing do: each alert is inserted by exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_raised_on_two_nodes_at_once_is_inserted_once() {
    with_test_schema(|schema| async move {
        let node_a = schema.connect().await;
        let node_b = schema.connect().await;
        let nodes: [Arc<dyn Store>; 2] = [Arc::new(node_a.clone()), Arc::new(node_b.clone())];
        conformance::concurrent_alert_inserts_have_one_winner(&nodes).await;
        node_a.close().await;
        node_b.close().await;
    })
    .await;
}
