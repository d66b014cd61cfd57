//! The behaviour every [`Store`] backend must show, written once against the trait so SQLite
//! and PostgreSQL are held to the same contract (`tests/sqlite_conformance.rs` runs it).
//!
//! Each check uses its own ids and tolerates rows left by the others, so they can run in any
//! order against one store. They panic on failure, like any test.

// Test support: a failure here is a failed test, so panicking shortcuts are fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod audit;
mod clients;
mod commands;
mod counters;
mod detection;
mod device_keys;
mod pki;
mod revocations;
mod settings_and_keys;
mod update_reports;

pub use audit::{
    an_imported_anchor_starts_an_empty_chain, audit_chain_spans_batches_and_verifies,
    audit_pages_in_both_directions, concurrent_audit_appends_form_one_chain,
};
pub use clients::{
    bulk_insert_is_all_or_nothing, client_crud_round_trips_every_field, duplicate_client_conflicts,
    list_clients_pages_in_id_order, update_of_missing_client_is_not_found,
};
pub use commands::{
    a_command_is_marked_delivered_once_while_unexpired,
    a_command_result_is_recorded_once_from_its_device, a_command_round_trips_every_field,
    approval_queues_a_pending_command_once_before_it_expires, command_id,
    commands_page_by_id_with_an_optional_device_filter,
    commands_queued_at_once_get_distinct_numbers, concurrent_queue_tasks_number_each_command_once,
    deliverable_commands_come_by_number_until_they_expire,
    imported_commands_keep_every_field_and_numbers_only_rise,
    pending_commands_are_stored_once_and_need_their_device,
    queued_commands_are_numbered_per_device_and_signed,
    recent_commands_are_counted_per_device_and_rule, sample_command,
};
pub use counters::{
    concurrent_advances_accept_each_counter_once,
    counters_only_rise_and_revert_only_their_own_advance, raises_only_raise_and_advances_see_them,
};
pub use detection::{
    alerts_are_raised_once_listed_newest_first_and_acknowledged,
    concurrent_alert_inserts_have_one_winner, concurrent_detection_counts_lose_nothing,
    detection_counts_add_up_across_nodes, detection_counts_add_up_within_their_window,
    detection_counts_purge_only_old_buckets,
};
pub use device_keys::{
    all_device_keys_page_in_id_order, device_keys_are_deleted_and_resealed_one_by_one,
    device_keys_round_trip_in_creation_order,
    duplicate_device_key_conflicts_and_unknown_device_is_not_found,
    rotation_adds_a_key_and_ends_the_others_in_one_transaction, sample_device_key,
};
pub use pki::{
    a_device_that_may_not_enroll_cannot_spend_its_secret,
    an_enrollment_records_state_and_certificate_together, bulk_device_insert_is_idempotent,
    certificate_listing_filters_and_pages, certificate_revocation_keeps_the_first,
    certificate_round_trips, concurrent_enrollment_tasks_have_one_winner,
    concurrent_enrollments_with_one_secret_have_one_winner,
    crl_lists_revoked_unexpired_certificates, device_round_trips_with_attributes_and_secret,
    duplicate_certificate_conflicts, duplicate_device_conflicts, enrollment_secret_is_spent_once,
    list_devices_pages_in_id_order, revoking_a_devices_certificates_returns_only_unrevoked_ones,
    sample_certificate, sample_device, serial, update_device_replaces_fields_or_reports_missing,
};
pub use revocations::{
    assertion_jti_replay_is_refused, kept_ids_are_listed_until_expiry_and_purged,
    revocation_is_idempotent_listed_until_expiry_and_purged,
};
pub use settings_and_keys::{
    setting_put_if_absent_keeps_the_first_value, settings_are_listed_by_name_in_pages,
    signing_keys_are_listed_and_change_state,
};
pub use update_reports::{
    all_update_reports_page_by_device_model_and_release,
    an_update_report_needs_its_device_and_a_storable_release,
    an_update_report_round_trips_and_a_later_one_replaces_it,
    update_reports_of_two_releases_are_kept_apart,
    update_reports_page_by_device_id_for_one_model_and_release,
    update_rollout_counts_devices_per_release_and_status,
};

use portcullis_core::client::{AuthMethod, Client};
use portcullis_core::{ClientId, ScopeSet, SecretHash};

use crate::Store;

/// Far enough ahead that nothing written with it expires during a test run.
pub(crate) const FAR_FUTURE: i64 = 4_000_000_000;

/// Runs every check, in an order where each also sees the others' rows.
pub async fn run_all(store: &dyn Store) {
    store.ping().await.expect("ping");
    client_crud_round_trips_every_field(store).await;
    duplicate_client_conflicts(store).await;
    update_of_missing_client_is_not_found(store).await;
    list_clients_pages_in_id_order(store).await;
    bulk_insert_is_all_or_nothing(store).await;
    setting_put_if_absent_keeps_the_first_value(store).await;
    settings_are_listed_by_name_in_pages(store).await;
    signing_keys_are_listed_and_change_state(store).await;
    revocation_is_idempotent_listed_until_expiry_and_purged(store).await;
    assertion_jti_replay_is_refused(store).await;
    kept_ids_are_listed_until_expiry_and_purged(store).await;
    audit_chain_spans_batches_and_verifies(store).await;
    concurrent_audit_appends_form_one_chain(store).await;
    audit_pages_in_both_directions(store).await;
    leases_have_one_holder_until_they_expire(store).await;
    device_round_trips_with_attributes_and_secret(store).await;
    duplicate_device_conflicts(store).await;
    bulk_device_insert_is_idempotent(store).await;
    list_devices_pages_in_id_order(store).await;
    update_device_replaces_fields_or_reports_missing(store).await;
    enrollment_secret_is_spent_once(store).await;
    a_device_that_may_not_enroll_cannot_spend_its_secret(store).await;
    an_enrollment_records_state_and_certificate_together(store).await;
    concurrent_enrollments_with_one_secret_have_one_winner(store).await;
    certificate_round_trips(store).await;
    duplicate_certificate_conflicts(store).await;
    certificate_revocation_keeps_the_first(store).await;
    revoking_a_devices_certificates_returns_only_unrevoked_ones(store).await;
    crl_lists_revoked_unexpired_certificates(store).await;
    certificate_listing_filters_and_pages(store).await;
    device_keys_round_trip_in_creation_order(store).await;
    duplicate_device_key_conflicts_and_unknown_device_is_not_found(store).await;
    rotation_adds_a_key_and_ends_the_others_in_one_transaction(store).await;
    device_keys_are_deleted_and_resealed_one_by_one(store).await;
    all_device_keys_page_in_id_order(store).await;
    counters_only_rise_and_revert_only_their_own_advance(store).await;
    raises_only_raise_and_advances_see_them(store).await;
    pending_commands_are_stored_once_and_need_their_device(store).await;
    queued_commands_are_numbered_per_device_and_signed(store).await;
    approval_queues_a_pending_command_once_before_it_expires(store).await;
    commands_queued_at_once_get_distinct_numbers(store).await;
    deliverable_commands_come_by_number_until_they_expire(store).await;
    a_command_is_marked_delivered_once_while_unexpired(store).await;
    a_command_result_is_recorded_once_from_its_device(store).await;
    recent_commands_are_counted_per_device_and_rule(store).await;
    commands_page_by_id_with_an_optional_device_filter(store).await;
    a_command_round_trips_every_field(store).await;
    imported_commands_keep_every_field_and_numbers_only_rise(store).await;
    an_update_report_round_trips_and_a_later_one_replaces_it(store).await;
    update_reports_of_two_releases_are_kept_apart(store).await;
    update_rollout_counts_devices_per_release_and_status(store).await;
    update_reports_page_by_device_id_for_one_model_and_release(store).await;
    an_update_report_needs_its_device_and_a_storable_release(store).await;
    all_update_reports_page_by_device_model_and_release(store).await;
    detection_counts_add_up_within_their_window(store).await;
    detection_counts_purge_only_old_buckets(store).await;
    alerts_are_raised_once_listed_newest_first_and_acknowledged(store).await;
}

/// One holder per lease; the holder renews; another takes it only once it has expired.
/// (Uses a 1 s lease and waits for it: backends may judge expiry by their own clock.)
pub async fn leases_have_one_holder_until_they_expire(store: &dyn Store) {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    };
    assert!(store
        .try_acquire_lease("conformance-job", "node-a", 1, now())
        .await
        .expect("acquire"));
    assert!(
        !store
            .try_acquire_lease("conformance-job", "node-b", 1, now())
            .await
            .expect("contend"),
        "held by A"
    );
    assert!(
        store
            .try_acquire_lease("conformance-job", "node-a", 1, now())
            .await
            .expect("renew"),
        "A renews"
    );
    assert!(
        store
            .try_acquire_lease("other-job", "node-b", 1, now())
            .await
            .expect("other"),
        "leases are per job"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // B's own lease lasts long enough that A's next attempt cannot find it expired too (a
    // one-second lease failed here when the second ticked over between the two calls).
    assert!(
        store
            .try_acquire_lease("conformance-job", "node-b", 30, now())
            .await
            .expect("take over"),
        "B takes an expired lease"
    );
    assert!(
        !store
            .try_acquire_lease("conformance-job", "node-a", 1, now())
            .await
            .expect("lost"),
        "A lost it"
    );
    // A clean shutdown hands over at once: B releases, A takes both jobs without waiting.
    assert_eq!(store.release_leases("node-b").await.expect("release"), 2);
    assert_eq!(store.release_leases("node-b").await.expect("again"), 0);
    for job in ["conformance-job", "other-job"] {
        assert!(
            store
                .try_acquire_lease(job, "node-a", 60, now())
                .await
                .expect("take released"),
            "A takes the released {job} at once"
        );
    }
    assert_eq!(
        store.release_leases("node-b").await.expect("not B's"),
        0,
        "releasing touches only the holder's leases"
    );
    assert!(!store
        .try_acquire_lease("other-job", "node-b", 60, now())
        .await
        .expect("held"));
}

pub(crate) fn client_id(s: &str) -> ClientId {
    ClientId::parse(s).expect("valid test client id")
}

/// A valid secret-based client named after its id.
pub fn sample_client(id: &str) -> Client {
    Client {
        client_id: client_id(id),
        name: format!("client {id}"),
        auth_method: AuthMethod::ClientSecretBasic,
        scopes: ScopeSet::parse("read write").expect("valid scopes"),
        audiences: vec!["https://api.example".into()],
        token_ttl_secs: 3600,
        enabled: true,
        secret_hashes: vec![SecretHash {
            mac: format!("mac-of-{id}"),
            expires_at: None,
        }],
        sealed_secret: None,
        jwks: None,
        jwks_uri: None,
        tls_client_auth: None,
        // Not the default, so every round trip through a backend proves the column is kept.
        dpop_bound_access_tokens: true,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
        token_epoch: 0,
    }
}
