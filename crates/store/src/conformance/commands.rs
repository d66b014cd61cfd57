//! Commands to devices (issue #13): stored pending approval, queued with the device's next
//! sequence number and the bytes the signer made for it, handed out by number until they
//! expire, delivered once, answered once by their own device, counted for rate limits and
//! paged through by id.
//!
//! Each check uses devices of its own (`cmd-<check>-...`) and command ids of its own (the
//! check's number in the id's millisecond part, so one check's ids sort together).

use std::sync::Arc;

use portcullis_core::command::{CommandId, CommandRecord, CommandState, ResultRecorded};
use portcullis_core::device::DeviceId;
use portcullis_core::UnixTime;
use serde_json::json;

use super::pki::{device_id, sample_device};
use super::{client_id, FAR_FUTURE};
use crate::{Store, StoreError};

/// The id of command `i` of check `check`: ids sort in `(check, i)` order.
pub fn command_id(check: u8, i: u8) -> CommandId {
    let millis = 1_700_000_000_000 + u64::from(check) * 1_000 + u64::from(i);
    CommandId::new(millis, [check, i, 0xc0, 0xff, 0xee, 0, 1, 2])
}

/// A command for `device` waiting for its approver, created at `created_at`, with awkward
/// arguments (nesting, a float, quotes, non-ASCII) so a lossy round trip shows.
pub fn sample_command(
    id: CommandId,
    device: &str,
    created_at: UnixTime,
    expires_at: UnixTime,
) -> CommandRecord {
    let args = json!({
        "position": 42,
        "ramp": { "secs": 1.5, "mode": "linear" },
        "note": "hall ü \"7\"",
        "tags": ["a", null, true],
    });
    CommandRecord {
        command_id: id,
        device_id: device_id(device),
        name: "valve.set".into(),
        args: args.as_object().cloned().expect("an object"),
        sender: client_id("ops-console"),
        rule: "valves".into(),
        approvals_required: 2,
        approver: None,
        state: CommandState::PendingApproval,
        created_at,
        expires_at,
        seq: None,
        signed: None,
        queued_at: None,
        delivered_at: None,
        finished_at: None,
        output: None,
    }
}

/// The signer of these checks: bytes that name the number they were made for.
fn sign(seq: u64) -> Result<Vec<u8>, String> {
    Ok(format!("signed-{seq}").into_bytes())
}

/// A signer that always fails (an HSM that is down).
fn failing_sign(_seq: u64) -> Result<Vec<u8>, String> {
    Err("hsm offline".to_owned())
}

/// `command` as stored once queued at `now` under `seq` by [`sign`].
fn queued_as(command: &CommandRecord, seq: u64, now: UnixTime) -> CommandRecord {
    CommandRecord {
        state: CommandState::Queued,
        seq: Some(seq),
        signed: Some(format!("signed-{seq}").into_bytes()),
        queued_at: Some(now),
        ..command.clone()
    }
}

async fn registered(store: &dyn Store, id: &str) -> DeviceId {
    store
        .insert_device(&sample_device(id))
        .await
        .expect("device");
    device_id(id)
}

/// Queues a command that must be queued; returns what the store says it stored.
async fn queue(store: &dyn Store, command: &CommandRecord, now: UnixTime) -> CommandRecord {
    store
        .queue_command(command, now, &sign)
        .await
        .expect("queue")
        .expect("queued")
}

/// A pending command is stored as it is (no number, nothing signed), once; its device must
/// exist; only pending commands are inserted.
pub async fn pending_commands_are_stored_once_and_need_their_device(store: &dyn Store) {
    registered(store, "cmd-pend").await;
    let pending = sample_command(command_id(1, 0), "cmd-pend", 1_000, FAR_FUTURE);
    store.insert_command(&pending).await.expect("insert");
    assert_eq!(
        store.get_command(&pending.command_id).await.expect("get"),
        Some(pending.clone())
    );
    match store.insert_command(&pending).await {
        Err(StoreError::Conflict(m)) => {
            assert!(m.contains(pending.command_id.as_str()), "{m}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let ghost = sample_command(command_id(1, 1), "cmd-pend-ghost", 1_000, FAR_FUTURE);
    assert!(
        matches!(
            store.insert_command(&ghost).await,
            Err(StoreError::NotFound)
        ),
        "a command needs its device"
    );
    assert_eq!(
        store.get_command(&ghost.command_id).await.expect("get"),
        None
    );
    let already_queued = queued_as(
        &sample_command(command_id(1, 2), "cmd-pend", 1_000, FAR_FUTURE),
        1,
        1_000,
    );
    assert!(matches!(
        store.insert_command(&already_queued).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .get_command(&already_queued.command_id)
            .await
            .expect("get"),
        None
    );
}

/// Each device's commands are numbered 1, 2, 3… in the order they are queued, independently
/// of other devices, and carry the bytes the signer made for their number. A failed signature
/// stores nothing and takes no number; an unknown device is `NotFound`.
pub async fn queued_commands_are_numbered_per_device_and_signed(store: &dyn Store) {
    let a = registered(store, "cmd-seq-a").await;
    registered(store, "cmd-seq-b").await;
    let on = |i: u8, device: &str| sample_command(command_id(2, i), device, 1_000, FAR_FUTURE);
    let plan = [
        (on(0, "cmd-seq-a"), 1),
        (on(1, "cmd-seq-b"), 1),
        (on(2, "cmd-seq-a"), 2),
        (on(3, "cmd-seq-a"), 3),
        (on(4, "cmd-seq-b"), 2),
    ];
    for (i, (command, seq)) in plan.iter().enumerate() {
        let now = 1_100 + i as i64;
        let stored = queue(store, command, now).await;
        assert_eq!(stored, queued_as(command, *seq, now), "command {i}");
        assert_eq!(
            store.get_command(&command.command_id).await.expect("get"),
            Some(stored)
        );
    }

    let refused = on(5, "cmd-seq-a");
    match store.queue_command(&refused, 1_200, &failing_sign).await {
        Err(StoreError::Unavailable(m)) => {
            assert!(
                m.contains("signing command") && m.contains("hsm offline"),
                "{m}"
            )
        }
        other => panic!("expected a signing failure, got {other:?}"),
    }
    assert_eq!(
        store.get_command(&refused.command_id).await.expect("get"),
        None,
        "nothing stored"
    );
    let next = on(6, "cmd-seq-a");
    assert_eq!(
        queue(store, &next, 1_300).await.seq,
        Some(4),
        "the failed signature took no number"
    );
    assert_eq!(
        store
            .deliverable_commands(&a, 1_300, 10)
            .await
            .expect("deliverable")
            .iter()
            .map(|c| c.seq)
            .collect::<Vec<_>>(),
        [Some(1), Some(2), Some(3), Some(4)]
    );

    let ghost = on(7, "cmd-seq-ghost");
    assert!(matches!(
        store.queue_command(&ghost, 1_300, &sign).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.get_command(&ghost.command_id).await.expect("get"),
        None
    );
}

/// Approving queues a pending command (with its approver) once; a second approval, an
/// approval after its expiry, or one naming another device changes nothing and takes no
/// number.
pub async fn approval_queues_a_pending_command_once_before_it_expires(store: &dyn Store) {
    let device = registered(store, "cmd-appr").await;
    registered(store, "cmd-appr-other").await;
    let pending = sample_command(command_id(3, 0), "cmd-appr", 1_000, 5_000);
    let expiring = sample_command(command_id(3, 1), "cmd-appr", 1_000, 1_200);
    for command in [&pending, &expiring] {
        store.insert_command(command).await.expect("insert");
    }
    let approved = CommandRecord {
        approver: Some(client_id("second-pair-of-eyes")),
        ..pending.clone()
    };
    let stored = queue(store, &approved, 1_100).await;
    assert_eq!(stored, queued_as(&approved, 1, 1_100));
    assert_eq!(
        store.get_command(&pending.command_id).await.expect("get"),
        Some(stored.clone())
    );

    assert_eq!(
        store
            .queue_command(&approved, 1_150, &sign)
            .await
            .expect("approve again"),
        None,
        "queued already"
    );
    let late = CommandRecord {
        approver: Some(client_id("second-pair-of-eyes")),
        ..expiring.clone()
    };
    assert_eq!(
        store
            .queue_command(&late, 1_200, &sign)
            .await
            .expect("approve too late"),
        None,
        "expired at its expiry"
    );
    assert_eq!(
        store.get_command(&expiring.command_id).await.expect("get"),
        Some(expiring.clone()),
        "unchanged"
    );
    let elsewhere = CommandRecord {
        device_id: device_id("cmd-appr-other"),
        ..late.clone()
    };
    assert_eq!(
        store
            .queue_command(&elsewhere, 1_100, &sign)
            .await
            .expect("approve for another device"),
        None
    );
    assert_eq!(
        store.get_command(&stored.command_id).await.expect("get"),
        Some(stored.clone()),
        "the first approval stands"
    );
    let next = sample_command(command_id(3, 2), "cmd-appr", 1_300, FAR_FUTURE);
    assert_eq!(
        queue(store, &next, 1_300).await.seq,
        Some(2),
        "refused approvals took no number"
    );
    assert_eq!(
        queue(
            store,
            &sample_command(command_id(3, 3), "cmd-appr-other", 1_300, FAR_FUTURE),
            1_300
        )
        .await
        .seq,
        Some(1)
    );
    assert_eq!(
        store
            .deliverable_commands(&device, 1_300, 10)
            .await
            .expect("deliverable")
            .len(),
        2
    );
}

/// Eight commands for one device queued at once (each on a pooled connection of its own, so
/// the transactions race in the database) get the numbers 1 to 8, each once, each signed
/// for its own number.
pub async fn commands_queued_at_once_get_distinct_numbers(store: &dyn Store) {
    let device = registered(store, "cmd-race-joined").await;
    let commands: Vec<CommandRecord> = (0..8)
        .map(|i| sample_command(command_id(4, i), "cmd-race-joined", 1_000, FAR_FUTURE))
        .collect();
    let attempt = |i: usize| queue(store, &commands[i], 1_000);
    let (a, b, c, d, e, f, g, h) = tokio::join!(
        attempt(0),
        attempt(1),
        attempt(2),
        attempt(3),
        attempt(4),
        attempt(5),
        attempt(6),
        attempt(7)
    );
    assert_numbered_once(store, &device, vec![a, b, c, d, e, f, g, h]).await;
}

/// Like [`commands_queued_at_once_get_distinct_numbers`], with eight spawned tasks released
/// together by a barrier, task `i` working through `stores[i % stores.len()]` (pass several
/// stores on one database to race several nodes).
pub async fn concurrent_queue_tasks_number_each_command_once(stores: &[Arc<dyn Store>]) {
    const TASKS: u8 = 8;
    let device = registered(stores[0].as_ref(), "cmd-race-tasks").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(usize::from(TASKS)));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = stores[usize::from(i) % stores.len()].clone();
            let barrier = barrier.clone();
            let command = sample_command(command_id(5, i), "cmd-race-tasks", 1_000, FAR_FUTURE);
            tokio::spawn(async move {
                barrier.wait().await;
                queue(store.as_ref(), &command, 1_000).await
            })
        })
        .collect();
    let mut stored = Vec::new();
    for task in tasks {
        stored.push(task.await.expect("task"));
    }
    assert_numbered_once(stores[0].as_ref(), &device, stored).await;
}

async fn assert_numbered_once(store: &dyn Store, device: &DeviceId, stored: Vec<CommandRecord>) {
    let mut seqs: Vec<u64> = stored
        .iter()
        .map(|c| {
            let seq = c.seq.expect("numbered");
            assert_eq!(c.signed, Some(format!("signed-{seq}").into_bytes()));
            seq
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=8).collect::<Vec<u64>>(), "each number once");
    let deliverable = store
        .deliverable_commands(device, 1_000, 100)
        .await
        .expect("deliverable");
    let mut expected = stored;
    expected.sort_by_key(|c| c.seq);
    assert_eq!(deliverable, expected, "as stored, by number");
}

/// A device's queued, unexpired commands come by rising number (not id), at most `limit`;
/// pending, delivered, expired and other devices' commands are not among them.
pub async fn deliverable_commands_come_by_number_until_they_expire(store: &dyn Store) {
    let device = registered(store, "cmd-deliv").await;
    registered(store, "cmd-deliv-other").await;
    let cmd = |i: u8, device: &str, expires_at| {
        sample_command(command_id(6, i), device, 1_000, expires_at)
    };
    // Queued in an order unlike their ids' order.
    let first = queue(store, &cmd(5, "cmd-deliv", 5_000), 990).await;
    let second = queue(store, &cmd(3, "cmd-deliv", 2_000), 995).await;
    let third = queue(store, &cmd(0, "cmd-deliv", 5_000), 1_000).await;
    assert_eq!(
        [first.seq, second.seq, third.seq],
        [Some(1), Some(2), Some(3)]
    );
    store
        .insert_command(&cmd(1, "cmd-deliv", 5_000))
        .await
        .expect("pending");
    queue(store, &cmd(2, "cmd-deliv-other", 5_000), 1_000).await;

    let at = |now, limit| store.deliverable_commands(&device, now, limit);
    assert_eq!(
        at(1_500, 10).await.expect("deliverable"),
        [first.clone(), second.clone(), third.clone()]
    );
    assert_eq!(
        at(1_500, 2).await.expect("limited"),
        [first.clone(), second]
    );
    assert_eq!(
        at(2_000, 10).await.expect("at the expiry"),
        [first.clone(), third.clone()],
        "a command expires at its expiry"
    );
    assert!(store
        .mark_command_delivered(&first.command_id, 2_000)
        .await
        .expect("deliver"));
    assert_eq!(at(2_000, 10).await.expect("delivered"), [third]);
    assert!(at(5_000, 10).await.expect("all expired").is_empty());
    assert!(store
        .deliverable_commands(&device_id("cmd-deliv-ghost"), 1_000, 10)
        .await
        .expect("unknown device")
        .is_empty());
}

/// A queued command is marked delivered once, while unexpired; a pending, expired or unknown
/// one is not.
pub async fn a_command_is_marked_delivered_once_while_unexpired(store: &dyn Store) {
    registered(store, "cmd-mark").await;
    let queued = queue(
        store,
        &sample_command(command_id(7, 0), "cmd-mark", 1_000, 5_000),
        1_000,
    )
    .await;
    assert!(store
        .mark_command_delivered(&queued.command_id, 1_100)
        .await
        .expect("deliver"));
    let delivered = CommandRecord {
        state: CommandState::Delivered,
        delivered_at: Some(1_100),
        ..queued.clone()
    };
    assert_eq!(
        store.get_command(&queued.command_id).await.expect("get"),
        Some(delivered.clone())
    );
    assert!(!store
        .mark_command_delivered(&queued.command_id, 1_200)
        .await
        .expect("again"));
    assert_eq!(
        store.get_command(&queued.command_id).await.expect("get"),
        Some(delivered),
        "the first delivery's time stays"
    );

    let expiring = queue(
        store,
        &sample_command(command_id(7, 1), "cmd-mark", 1_000, 1_500),
        1_000,
    )
    .await;
    assert!(!store
        .mark_command_delivered(&expiring.command_id, 1_500)
        .await
        .expect("expired"));
    assert_eq!(
        store.get_command(&expiring.command_id).await.expect("get"),
        Some(expiring)
    );
    let pending = sample_command(command_id(7, 2), "cmd-mark", 1_000, 5_000);
    store.insert_command(&pending).await.expect("pending");
    assert!(!store
        .mark_command_delivered(&pending.command_id, 1_100)
        .await
        .expect("pending"));
    assert!(!store
        .mark_command_delivered(&command_id(7, 3), 1_100)
        .await
        .expect("unknown"));
}

/// A result is recorded only from the command's own device, only for a command sent (queued
/// or delivered) and not answered yet: the first answer stays. Its output round-trips; only
/// `Succeeded` and `Failed` are results. A queued command's result delivers it at the same
/// time; a delivered one keeps its delivery's time.
pub async fn a_command_result_is_recorded_once_from_its_device(store: &dyn Store) {
    let device = registered(store, "cmd-res").await;
    let other = registered(store, "cmd-res-other").await;
    let cmd = |i| sample_command(command_id(8, i), "cmd-res", 1_000, 5_000);
    let queued = queue(store, &cmd(0), 1_000).await;
    let output = json!({ "reading": 21.5, "unit": "°C", "raw": [1, 2, 3] });

    assert_eq!(
        store
            .record_command_result(
                &queued.command_id,
                &other,
                CommandState::Succeeded,
                None,
                1_100
            )
            .await
            .expect("another device's"),
        ResultRecorded::NotWaiting
    );
    for not_a_result in [
        CommandState::Delivered,
        CommandState::Queued,
        CommandState::PendingApproval,
        CommandState::Expired,
    ] {
        assert!(
            matches!(
                store
                    .record_command_result(&queued.command_id, &device, not_a_result, None, 1_100)
                    .await,
                Err(StoreError::Conflict(_))
            ),
            "{not_a_result:?}"
        );
    }
    assert_eq!(
        store.get_command(&queued.command_id).await.expect("get"),
        Some(queued.clone()),
        "refusals change nothing"
    );
    // A queued command may be answered before its delivery is recorded.
    assert_eq!(
        store
            .record_command_result(
                &queued.command_id,
                &device,
                CommandState::Succeeded,
                Some(&output),
                1_200
            )
            .await
            .expect("result"),
        ResultRecorded::RecordedAndDelivered
    );
    let succeeded = CommandRecord {
        state: CommandState::Succeeded,
        delivered_at: Some(1_200),
        finished_at: Some(1_200),
        output: Some(output.clone()),
        ..queued.clone()
    };
    assert_eq!(
        store.get_command(&queued.command_id).await.expect("get"),
        Some(succeeded.clone())
    );
    assert_eq!(
        store
            .record_command_result(
                &queued.command_id,
                &device,
                CommandState::Failed,
                None,
                1_300
            )
            .await
            .expect("a second answer"),
        ResultRecorded::NotWaiting
    );
    assert!(
        !store
            .mark_command_delivered(&queued.command_id, 1_300)
            .await
            .expect("a late acknowledgement"),
        "an acknowledgement read after the answer changes nothing"
    );
    assert_eq!(
        store.get_command(&queued.command_id).await.expect("get"),
        Some(succeeded),
        "the first answer stays"
    );

    let delivered = queue(store, &cmd(1), 1_000).await;
    assert!(store
        .mark_command_delivered(&delivered.command_id, 1_100)
        .await
        .expect("deliver"));
    assert_eq!(
        store
            .record_command_result(
                &delivered.command_id,
                &device,
                CommandState::Failed,
                None,
                1_400
            )
            .await
            .expect("failure"),
        ResultRecorded::Recorded
    );
    let failed = store
        .get_command(&delivered.command_id)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        (
            failed.state,
            failed.output,
            failed.finished_at,
            failed.delivered_at
        ),
        (CommandState::Failed, None, Some(1_400), Some(1_100))
    );

    let pending = cmd(2);
    store.insert_command(&pending).await.expect("pending");
    assert_eq!(
        store
            .record_command_result(
                &pending.command_id,
                &device,
                CommandState::Succeeded,
                None,
                1_100
            )
            .await
            .expect("not sent yet"),
        ResultRecorded::NotWaiting
    );
    assert_eq!(
        store
            .record_command_result(
                &command_id(8, 3),
                &device,
                CommandState::Succeeded,
                None,
                1_100
            )
            .await
            .expect("unknown"),
        ResultRecorded::NotWaiting
    );
}

/// Commands a rule allowed for a device since a moment (inclusive) are counted, whatever
/// their state; other rules' and devices' are not.
pub async fn recent_commands_are_counted_per_device_and_rule(store: &dyn Store) {
    let device = registered(store, "cmd-rate").await;
    registered(store, "cmd-rate-other").await;
    let cmd = |i: u8, device: &str, rule: &str, created_at| CommandRecord {
        rule: rule.to_owned(),
        ..sample_command(command_id(9, i), device, created_at, FAR_FUTURE)
    };
    store
        .insert_command(&cmd(0, "cmd-rate", "r1", 100))
        .await
        .expect("pending");
    let delivered = queue(store, &cmd(1, "cmd-rate", "r1", 200), 200).await;
    assert!(store
        .mark_command_delivered(&delivered.command_id, 210)
        .await
        .expect("deliver"));
    queue(store, &cmd(2, "cmd-rate", "r1", 300), 300).await;
    queue(store, &cmd(3, "cmd-rate", "r2", 300), 300).await;
    queue(store, &cmd(4, "cmd-rate-other", "r1", 300), 300).await;

    let count = |rule, since| store.count_recent_commands(&device, rule, since);
    assert_eq!(count("r1", 0).await.expect("count"), 3);
    assert_eq!(count("r1", 200).await.expect("count"), 2, "inclusive");
    assert_eq!(count("r1", 301).await.expect("count"), 0);
    assert_eq!(count("r2", 0).await.expect("count"), 1);
    assert_eq!(count("r3", 0).await.expect("count"), 0);
    assert_eq!(
        store
            .count_recent_commands(&device_id("cmd-rate-ghost"), "r1", 0)
            .await
            .expect("count"),
        0
    );
}

/// Commands page by id (oldest first), strictly after the cursor, of one device if asked.
pub async fn commands_page_by_id_with_an_optional_device_filter(store: &dyn Store) {
    let a = registered(store, "cmd-list-a").await;
    let b = registered(store, "cmd-list-b").await;
    let devices = [
        "cmd-list-a",
        "cmd-list-b",
        "cmd-list-a",
        "cmd-list-a",
        "cmd-list-b",
    ];
    let mut ours = Vec::new();
    for (i, device) in (0u8..).zip(devices) {
        let command = sample_command(command_id(10, i), device, 1_000, FAR_FUTURE);
        // Inserted out of id order, some queued: the order is the ids'.
        if i % 2 == 0 {
            store.insert_command(&command).await.expect("pending");
            ours.push(command);
        } else {
            ours.push(queue(store, &command, 1_000).await);
        }
    }
    let of = |device: &DeviceId| -> Vec<CommandRecord> {
        ours.iter()
            .filter(|c| &c.device_id == device)
            .cloned()
            .collect()
    };

    let page1 = store
        .list_commands(Some(&a), None, 2)
        .await
        .expect("page 1");
    assert_eq!(page1, of(&a)[..2]);
    let page2 = store
        .list_commands(Some(&a), Some(&page1[1].command_id), 2)
        .await
        .expect("page 2");
    assert_eq!(page2, of(&a)[2..]);
    assert!(store
        .list_commands(Some(&a), Some(&page2[0].command_id), 2)
        .await
        .expect("past the end")
        .is_empty());
    assert_eq!(
        store.list_commands(Some(&b), None, 10).await.expect("b"),
        of(&b)
    );
    assert!(store
        .list_commands(Some(&device_id("cmd-list-ghost")), None, 10)
        .await
        .expect("unknown device")
        .is_empty());

    // Without a filter, every device's commands, in id order (other checks' commands sort
    // before and after these).
    let before_ours = CommandId::new(1_700_000_000_000 + 10 * 1_000 - 1, [0xff; 8]);
    let all = store
        .list_commands(None, Some(&before_ours), 3)
        .await
        .expect("all");
    assert_eq!(all, ours[..3]);
    let rest = store
        .list_commands(None, Some(&all[2].command_id), 2)
        .await
        .expect("rest");
    assert_eq!(rest, ours[3..]);
    let everything = store.list_commands(None, None, 10_000).await.expect("all");
    assert!(everything
        .windows(2)
        .all(|w| w[0].command_id < w[1].command_id));
    assert!(ours.iter().all(|c| everything.contains(c)));
}

/// Every field survives the whole life: queued with an approver, delivered, answered.
pub async fn a_command_round_trips_every_field(store: &dyn Store) {
    registered(store, "cmd-trip").await;
    let command = CommandRecord {
        name: "firmware.update ü".into(),
        approvals_required: 1,
        approver: Some(client_id("approver-7")),
        sender: client_id("fleet-manager"),
        rule: "firmware/*".into(),
        ..sample_command(command_id(11, 0), "cmd-trip", 1_000, 9_000)
    };
    let queued = queue(store, &command, 1_010).await;
    assert!(store
        .mark_command_delivered(&command.command_id, 1_020)
        .await
        .expect("deliver"));
    let output = json!({ "version": "2.4.1", "took_ms": 812.25, "log": "ok\n\"done\"" });
    assert_eq!(
        store
            .record_command_result(
                &command.command_id,
                &command.device_id,
                CommandState::Succeeded,
                Some(&output),
                1_030
            )
            .await
            .expect("result"),
        ResultRecorded::Recorded
    );
    let expected = CommandRecord {
        state: CommandState::Succeeded,
        delivered_at: Some(1_020),
        finished_at: Some(1_030),
        output: Some(output),
        ..queued_as(&command, 1, 1_010)
    };
    assert_eq!(queued, queued_as(&command, 1, 1_010));
    assert_eq!(
        store.get_command(&command.command_id).await.expect("get"),
        Some(expected)
    );
    assert_eq!(
        store.get_command(&command_id(11, 1)).await.expect("get"),
        None
    );
}

/// Imported commands keep every field in every state; a batch goes in whole or not at all;
/// the devices' numbers are copied apart and only ever rise, so the next command queued
/// after an import is numbered above every imported one: what `store copy` relies on.
pub async fn imported_commands_keep_every_field_and_numbers_only_rise(store: &dyn Store) {
    let device = registered(store, "cmd-import").await;
    let answered = CommandRecord {
        approvals_required: 1,
        approver: Some(client_id("approver-import")),
        state: CommandState::Succeeded,
        seq: Some(1),
        signed: Some(b"\0signed-1\xff".to_vec()),
        queued_at: Some(1_010),
        delivered_at: Some(1_020),
        finished_at: Some(1_030),
        output: Some(json!({ "took_ms": 812.25, "note": "ok ü" })),
        ..sample_command(command_id(12, 0), "cmd-import", 1_000, FAR_FUTURE)
    };
    let queued = CommandRecord {
        command_id: command_id(12, 1),
        state: CommandState::Queued,
        seq: Some(2),
        signed: Some(b"signed-2".to_vec()),
        queued_at: Some(1_110),
        delivered_at: None,
        finished_at: None,
        output: None,
        ..answered.clone()
    };
    let pending = sample_command(command_id(12, 2), "cmd-import", 1_200, FAR_FUTURE);
    let batch = [answered, queued.clone(), pending];
    store.import_commands(&batch).await.expect("import");
    for command in &batch {
        assert_eq!(
            store.get_command(&command.command_id).await.expect("get"),
            Some(command.clone())
        );
    }
    assert_eq!(
        store
            .deliverable_commands(&device, 2_000, 10)
            .await
            .expect("deliverable"),
        vec![queued],
        "an imported queued command is delivered with its signed bytes"
    );
    // All or nothing: a duplicate id refuses the batch, the new command in it too.
    let fresh = sample_command(command_id(12, 3), "cmd-import", 1_300, FAR_FUTURE);
    let err = store
        .import_commands(&[fresh.clone(), batch[0].clone()])
        .await
        .expect_err("duplicate");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(
        store.get_command(&fresh.command_id).await.expect("get"),
        None
    );
    let ghost = sample_command(command_id(12, 4), "cmd-import-ghost", 1_300, FAR_FUTURE);
    let err = store
        .import_commands(&[ghost])
        .await
        .expect_err("no device");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    store.import_commands(&[]).await.expect("empty batch");

    // The numbers: none taken by the import; raised per device, the highest of a batch
    // kept, never lowered, for ids with or without a device.
    let seq_of = |all: &[(DeviceId, u64)], id: &str| {
        all.iter()
            .find(|(d, _)| d.as_str() == id)
            .map(|(_, seq)| *seq)
    };
    let listed = all_sequences(store).await;
    assert_eq!(seq_of(&listed, "cmd-import"), None);
    store
        .raise_command_sequences(&[
            (device.clone(), 2),
            (device_id("cmd-import-gone"), 7),
            (device.clone(), 1),
        ])
        .await
        .expect("raise");
    store
        .raise_command_sequences(&[(device.clone(), 1)])
        .await
        .expect("lower");
    store.raise_command_sequences(&[]).await.expect("empty");
    let err = store
        .raise_command_sequences(&[(device.clone(), 0)])
        .await
        .expect_err("zero");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let err = store
        .raise_command_sequences(&[(device.clone(), u64::MAX)])
        .await
        .expect_err("too large");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let listed = all_sequences(store).await;
    assert_eq!(seq_of(&listed, "cmd-import"), Some(2));
    assert_eq!(seq_of(&listed, "cmd-import-gone"), Some(7));
    // The next command is numbered above the imported ones.
    let next = sample_command(command_id(12, 5), "cmd-import", 1_400, FAR_FUTURE);
    assert_eq!(queue(store, &next, 1_410).await.seq, Some(3));
    // A command numbered at or below the device's number is refused when imported beside a
    // number it already has.
    let clash = CommandRecord {
        command_id: command_id(12, 6),
        state: CommandState::Queued,
        seq: Some(3),
        signed: Some(b"signed-3".to_vec()),
        queued_at: Some(1_500),
        ..sample_command(command_id(12, 6), "cmd-import", 1_500, FAR_FUTURE)
    };
    let err = store.import_commands(&[clash]).await.expect_err("clash");
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

/// Every device's last number, page by page (2 a page), checking the order on the way.
async fn all_sequences(store: &dyn Store) -> Vec<(DeviceId, u64)> {
    let mut all: Vec<(DeviceId, u64)> = Vec::new();
    let mut after: Option<DeviceId> = None;
    loop {
        let page = store
            .list_command_sequences(after.as_ref(), 2)
            .await
            .expect("list");
        assert!(page.len() <= 2, "a page holds at most its limit");
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        all.extend(page);
    }
    assert!(
        all.windows(2)
            .all(|w| w[0].0.as_str().as_bytes() < w[1].0.as_str().as_bytes()),
        "by device id, each once"
    );
    all
}
