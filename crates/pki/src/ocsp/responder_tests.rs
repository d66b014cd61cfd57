use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use der::Encode;
use portcullis_core::device::RevocationReason;
use portcullis_keys::Algorithm;
use x509_ocsp::{CertStatus, ResponderId, SingleResponse};

use super::*;
use crate::ocsp::response::generalized_time;
use crate::ocsp::test_support::{
    error_status, nonce_extension, request, verified, MapSource, TestCa,
};

const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const GOOD: &[u8] = &[0x01, 0x02, 0x03];
const REVOKED: &[u8] = &[0x00, 0x80, 0x04];
const UNKNOWN: &[u8] = &[0x7f];

struct Fixture {
    ca: TestCa,
    source: Arc<MapSource>,
    clock: Arc<AtomicI64>,
    responder: OcspResponder,
}

fn fixture() -> Fixture {
    let ca = TestCa::new(Algorithm::ES256);
    let source = Arc::new(MapSource::default());
    source.set("010203", CertificateStatus::Good);
    source.set(
        "8004",
        CertificateStatus::Revoked {
            at: NOW - 100,
            reason: Some(RevocationReason::KeyCompromise),
        },
    );
    let clock = Arc::new(AtomicI64::new(NOW));
    let c = clock.clone();
    let responder = OcspResponder::new(
        ca.key.clone(),
        &ca.cert_der,
        source.clone(),
        OcspConfig::default(),
    )
    .unwrap()
    .with_clock(move || c.load(Ordering::SeqCst));
    Fixture {
        ca,
        source,
        clock,
        responder,
    }
}

impl Fixture {
    fn request(&self, alg: HashAlgorithm, serial: &[u8], nonce: Option<&[u8]>) -> Vec<u8> {
        let extensions: Vec<Vec<u8>> = nonce.map(nonce_extension).into_iter().collect();
        request(&[self.ca.cert_id(alg, serial)], &extensions)
    }

    async fn single(&self, alg: HashAlgorithm, serial: &[u8]) -> (OcspReply, SingleResponse) {
        let reply = self
            .responder
            .respond(&self.request(alg, serial, None))
            .await;
        let basic = verified(&self.ca, &reply.der);
        assert_eq!(basic.tbs_response_data.responses.len(), 1);
        let single = basic.tbs_response_data.responses[0].clone();
        assert_eq!(
            single.cert_id.to_der().unwrap(),
            self.ca.cert_id(alg, serial),
            "the CertID is echoed as received"
        );
        (reply, single)
    }
}

#[tokio::test]
async fn good_revoked_and_unknown_are_answered_signed() {
    let f = fixture();
    let (reply, single) = f.single(HashAlgorithm::Sha1, GOOD).await;
    assert_eq!(reply.status, OcspResponseStatus::Successful);
    assert_eq!(single.cert_status, CertStatus::good());
    assert_eq!(single.this_update, generalized_time(NOW).unwrap());
    assert_eq!(
        single.next_update,
        Some(generalized_time(NOW + 3600).unwrap())
    );
    assert_eq!(reply.cache_window, Some((NOW, NOW + 3600)));

    let (_, single) = f.single(HashAlgorithm::Sha1, REVOKED).await;
    match single.cert_status {
        CertStatus::Revoked(info) => {
            assert_eq!(info.revocation_time, generalized_time(NOW - 100).unwrap());
            assert_eq!(info.revocation_reason.map(|r| r as u8), Some(1));
        }
        other => panic!("expected revoked, got {other:?}"),
    }

    let (reply, single) = f.single(HashAlgorithm::Sha1, UNKNOWN).await;
    assert_eq!(single.cert_status, CertStatus::unknown());
    assert_eq!(reply.cache_window, None, "unknown is not cacheable");
}

#[tokio::test]
async fn the_response_names_the_ca_by_key_hash_and_has_no_nonce_unless_asked() {
    let f = fixture();
    let reply = f
        .responder
        .respond(&f.request(HashAlgorithm::Sha1, GOOD, None))
        .await;
    let basic = verified(&f.ca, &reply.der);
    let expected = HashAlgorithm::Sha1.digest(f.ca.key.public_key_bits());
    match &basic.tbs_response_data.responder_id {
        ResponderId::ByKey(hash) => assert_eq!(hash.as_bytes(), expected),
        other => panic!("expected byKey, got {other:?}"),
    }
    assert_eq!(
        basic.tbs_response_data.produced_at,
        generalized_time(NOW).unwrap()
    );
    assert!(basic.tbs_response_data.response_extensions.is_none());
}

#[tokio::test]
async fn an_unspecified_revocation_reason_is_left_out() {
    let f = fixture();
    f.source.set(
        "05",
        CertificateStatus::Revoked {
            at: NOW,
            reason: Some(RevocationReason::Unspecified),
        },
    );
    let (_, single) = f.single(HashAlgorithm::Sha256, &[0x05]).await;
    match single.cert_status {
        CertStatus::Revoked(info) => assert_eq!(info.revocation_reason, None),
        other => panic!("expected revoked, got {other:?}"),
    }
}

#[tokio::test]
async fn sha256_sha384_and_sha512_cert_ids_are_answered() {
    let f = fixture();
    for alg in [
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
    ] {
        let (_, single) = f.single(alg, GOOD).await;
        assert_eq!(single.cert_status, CertStatus::good(), "{alg:?}");
    }
}

#[tokio::test]
async fn a_foreign_issuer_is_unauthorized() {
    let f = fixture();
    let other = TestCa::new(Algorithm::ES256);
    let reply = f
        .responder
        .respond(&request(&[other.cert_id(HashAlgorithm::Sha1, GOOD)], &[]))
        .await;
    assert_eq!(reply.status, OcspResponseStatus::Unauthorized);
    assert_eq!(error_status(&reply.der), OcspResponseStatus::Unauthorized);

    // Our name with another key, and ours among several: still not ours.
    let (name, _) = f.ca.hashes(HashAlgorithm::Sha1);
    let (_, key) = other.hashes(HashAlgorithm::Sha1);
    let oid = HashAlgorithm::Sha1.oid().to_der().unwrap();
    let mixed = crate::ocsp::test_support::cert_id(&oid, &name, &key, GOOD);
    let reply = f.responder.respond(&request(&[mixed], &[])).await;
    assert_eq!(reply.status, OcspResponseStatus::Unauthorized);
    let both = request(
        &[
            f.ca.cert_id(HashAlgorithm::Sha1, GOOD),
            other.cert_id(HashAlgorithm::Sha1, GOOD),
        ],
        &[],
    );
    assert_eq!(
        f.responder.respond(&both).await.status,
        OcspResponseStatus::Unauthorized
    );

    // A hash we do not know cannot be matched with our issuer.
    let md5 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05];
    let id = crate::ocsp::test_support::cert_id(&md5, &[0; 16], &[0; 16], GOOD);
    let reply = f.responder.respond(&request(&[id], &[])).await;
    assert_eq!(reply.status, OcspResponseStatus::Unauthorized);
    assert_eq!(f.source.lookups(), 0, "no lookup for a foreign issuer");
}

#[tokio::test]
async fn undecodable_input_is_malformed_and_unsigned() {
    let f = fixture();
    for input in [&b""[..], &b"\x30\x03garbage"[..]] {
        let reply = f.responder.respond(input).await;
        assert_eq!(reply.status, OcspResponseStatus::MalformedRequest);
        assert_eq!(&reply.der[..], &[0x30, 0x03, 0x0a, 0x01, 0x01]);
        assert_eq!(
            error_status(&reply.der),
            OcspResponseStatus::MalformedRequest
        );
        assert_eq!(reply.cache_window, None);
    }
}

#[tokio::test]
async fn a_store_failure_is_an_internal_error_not_a_status() {
    let f = fixture();
    f.source.fail.store(true, Ordering::SeqCst);
    for nonce in [None, Some(&b"n"[..])] {
        let reply = f
            .responder
            .respond(&f.request(HashAlgorithm::Sha1, GOOD, nonce))
            .await;
        assert_eq!(reply.status, OcspResponseStatus::InternalError);
        assert_eq!(error_status(&reply.der), OcspResponseStatus::InternalError);
    }
}

#[tokio::test]
async fn a_nonce_is_echoed_and_its_answer_signed_fresh() {
    let f = fixture();
    let nonce = b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10";
    let der = f.request(HashAlgorithm::Sha1, GOOD, Some(nonce));
    let first = f.responder.respond(&der).await;
    let basic = verified(&f.ca, &first.der);
    assert_eq!(basic.nonce().unwrap().0.as_bytes(), nonce);
    assert_eq!(
        basic.tbs_response_data.responses[0].cert_status,
        CertStatus::good()
    );
    assert_eq!(first.cache_window, None);
    let second = f.responder.respond(&der).await;
    assert!(!first.cached && !second.cached);
    assert_eq!(f.source.lookups(), 2, "nonce answers are never cached");
    assert_eq!(f.responder.cached_serials(), 0);
}

#[tokio::test]
async fn several_cert_ids_get_one_response_in_request_order() {
    let f = fixture();
    let ids = [
        f.ca.cert_id(HashAlgorithm::Sha1, UNKNOWN),
        f.ca.cert_id(HashAlgorithm::Sha256, GOOD),
        f.ca.cert_id(HashAlgorithm::Sha1, REVOKED),
    ];
    let reply = f.responder.respond(&request(&ids, &[])).await;
    let basic = verified(&f.ca, &reply.der);
    let responses = &basic.tbs_response_data.responses;
    assert_eq!(responses.len(), 3);
    for (single, id) in responses.iter().zip(&ids) {
        assert_eq!(&single.cert_id.to_der().unwrap(), id);
    }
    assert_eq!(responses[0].cert_status, CertStatus::unknown());
    assert_eq!(responses[1].cert_status, CertStatus::good());
    assert!(matches!(responses[2].cert_status, CertStatus::Revoked(_)));
    assert!(!reply.cached);
}

#[tokio::test]
async fn a_cached_answer_is_reused_until_invalidated_by_a_revocation() {
    let f = fixture();
    let der = f.request(HashAlgorithm::Sha1, GOOD, None);
    let first = f.responder.respond(&der).await;
    assert!(!first.cached);
    f.clock.store(NOW + 60, Ordering::SeqCst);
    let second = f.responder.respond(&der).await;
    assert!(second.cached);
    assert_eq!(first.der, second.der, "the same signed bytes");
    assert_eq!(second.cache_window, Some((NOW, NOW + 3600)));
    assert_eq!(f.source.lookups(), 1);

    // Revoked in the store: the cached answer stands until the server invalidates it...
    f.source.set(
        "010203",
        CertificateStatus::Revoked {
            at: NOW + 60,
            reason: Some(RevocationReason::Superseded),
        },
    );
    assert_eq!(f.responder.respond(&der).await.der, first.der);
    // ... which it does on revocation and on `cert:<serial>` from the change feed.
    f.responder.invalidate("010203");
    let after = f.responder.respond(&der).await;
    assert!(!after.cached);
    let basic = verified(&f.ca, &after.der);
    assert!(matches!(
        basic.tbs_response_data.responses[0].cert_status,
        CertStatus::Revoked(_)
    ));
    assert_eq!(f.source.lookups(), 2);
    assert!(
        f.responder.respond(&der).await.cached,
        "the revoked answer is cached"
    );
}

#[tokio::test]
async fn invalidation_accepts_serials_with_leading_zeros_and_drops_every_hash() {
    let f = fixture();
    let sha1 = f.request(HashAlgorithm::Sha1, REVOKED, None);
    let sha256 = f.request(HashAlgorithm::Sha256, REVOKED, None);
    f.responder.respond(&sha1).await;
    f.responder.respond(&sha256).await;
    assert!(f.responder.respond(&sha1).await.cached);
    assert!(f.responder.respond(&sha256).await.cached);
    f.responder.invalidate("008004");
    assert!(!f.responder.respond(&sha1).await.cached);
    assert!(!f.responder.respond(&sha256).await.cached);
}

#[tokio::test]
async fn the_cache_key_includes_the_hash_algorithm() {
    let f = fixture();
    let sha1 = f
        .responder
        .respond(&f.request(HashAlgorithm::Sha1, GOOD, None))
        .await;
    let (sha256, single) = f.single(HashAlgorithm::Sha256, GOOD).await;
    assert!(
        !sha256.cached,
        "a SHA-256 CertID is not answered with the SHA-1 response"
    );
    assert_ne!(sha1.der, sha256.der);
    assert_eq!(single.cert_status, CertStatus::good());
    assert!(
        f.responder
            .respond(&f.request(HashAlgorithm::Sha1, GOOD, None))
            .await
            .cached
    );
    assert!(
        f.responder
            .respond(&f.request(HashAlgorithm::Sha256, GOOD, None))
            .await
            .cached
    );
    assert_eq!(f.responder.cached_serials(), 1);
}

#[tokio::test]
async fn a_cached_answer_is_re_signed_half_way_to_next_update() {
    let f = fixture();
    let der = f.request(HashAlgorithm::Sha1, GOOD, None);
    let first = f.responder.respond(&der).await;
    f.clock.store(NOW + 1799, Ordering::SeqCst);
    assert_eq!(f.responder.respond(&der).await.der, first.der);
    f.clock.store(NOW + 1800, Ordering::SeqCst);
    let renewed = f.responder.respond(&der).await;
    assert!(!renewed.cached);
    assert_eq!(renewed.cache_window, Some((NOW + 1800, NOW + 5400)));
    let single = verified(&f.ca, &renewed.der).tbs_response_data.responses[0].clone();
    assert_eq!(single.this_update, generalized_time(NOW + 1800).unwrap());
    assert!(f.responder.respond(&der).await.cached);
    assert_eq!(f.source.lookups(), 2);
}

#[tokio::test]
async fn unknown_answers_are_never_cached() {
    let f = fixture();
    let der = f.request(HashAlgorithm::Sha1, UNKNOWN, None);
    assert!(!f.responder.respond(&der).await.cached);
    assert!(!f.responder.respond(&der).await.cached);
    assert_eq!(f.source.lookups(), 2);
    // Issued meanwhile: the next request sees it.
    f.source.set("7f", CertificateStatus::Good);
    let (_, single) = f.single(HashAlgorithm::Sha1, UNKNOWN).await;
    assert_eq!(single.cert_status, CertStatus::good());
}

#[tokio::test]
async fn presign_warms_the_cache_for_sha1_and_sha256() {
    let f = fixture();
    assert_eq!(
        f.responder.presign("010203").await.unwrap(),
        CertificateStatus::Good
    );
    assert_eq!(f.source.lookups(), 2);
    for alg in [HashAlgorithm::Sha1, HashAlgorithm::Sha256] {
        let reply = f.responder.respond(&f.request(alg, GOOD, None)).await;
        assert!(reply.cached, "{alg:?} was pre-signed");
        let single = verified(&f.ca, &reply.der).tbs_response_data.responses[0].clone();
        assert_eq!(single.cert_id.to_der().unwrap(), f.ca.cert_id(alg, GOOD));
    }
    assert_eq!(f.source.lookups(), 2);
    // A serial with the top bit set gets its 0x00 back in the CertID.
    f.responder.presign("8004").await.unwrap();
    assert!(
        f.responder
            .respond(&f.request(HashAlgorithm::Sha1, REVOKED, None))
            .await
            .cached
    );
    assert!(f.responder.presign("not hex").await.is_err());
}

#[tokio::test]
async fn a_negative_serial_is_unknown_without_a_lookup() {
    let f = fixture();
    // 0x80 0x04 is negative; its content octets spell the revoked "8004".
    let (_, single) = f.single(HashAlgorithm::Sha1, &[0x80, 0x04]).await;
    assert_eq!(single.cert_status, CertStatus::unknown());
    assert_eq!(f.source.lookups(), 0);
}

#[test]
fn an_invalidation_during_a_lookup_keeps_the_stale_answer_out() {
    let cache = ResponseCache::new(10, std::time::Duration::from_secs(3600));
    let entry = |status| CachedResponse {
        cert_id_der: vec![1],
        der: Bytes::from_static(b"x"),
        status,
        this_update: 0,
        next_update: 10,
    };
    let generation = cache.generation("01");
    cache.invalidate("01"); // a revocation lands while the miss reads the store
    cache.insert_if_current("01", generation, entry("good"));
    assert!(cache.get("01", &[1]).is_none());
    let generation = cache.generation("01");
    cache.insert_if_current("01", generation, entry("revoked"));
    assert_eq!(cache.get("01", &[1]).unwrap().status, "revoked");
    cache.invalidate_all();
    assert!(cache.get("01", &[1]).is_none());
}

#[test]
fn an_issuer_certificate_of_another_key_is_refused() {
    let ca = TestCa::new(Algorithm::ES256);
    let other = TestCa::new(Algorithm::ES256);
    let err = OcspResponder::new(
        ca.key.clone(),
        &other.cert_der,
        Arc::new(MapSource::default()),
        OcspConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(err, PkiError::Ca(_)));
    assert!(OcspResponder::new(
        ca.key.clone(),
        b"not a certificate",
        Arc::new(MapSource::default()),
        OcspConfig::default(),
    )
    .is_err());
}

#[test]
fn serials_convert_to_integer_content() {
    assert_eq!(serial_content("8004"), Some(vec![0x00, 0x80, 0x04]));
    assert_eq!(serial_content("008004"), Some(vec![0x00, 0x80, 0x04]));
    assert_eq!(serial_content("0102"), Some(vec![0x01, 0x02]));
    assert_eq!(serial_content("102"), Some(vec![0x01, 0x02]));
    assert_eq!(serial_content("AB"), Some(vec![0x00, 0xab]));
    assert_eq!(serial_content(""), None);
    assert_eq!(serial_content("0x12"), None);
}

/// A responder allowing `per_sec` uncacheable signatures (burst as many).
fn budgeted(f: &Fixture, per_sec: u32) -> OcspResponder {
    OcspResponder::new(
        f.ca.key.clone(),
        &f.ca.cert_der,
        f.source.clone(),
        OcspConfig {
            fresh_signatures_per_sec: per_sec,
            ..OcspConfig::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn uncacheable_signatures_share_a_budget_and_cached_answers_are_never_throttled() {
    let f = fixture();
    let responder = budgeted(&f, 3);
    let nonce = |n: u8| f.request(HashAlgorithm::Sha256, GOOD, Some(&[n; 16]));
    let unknown = f.request(HashAlgorithm::Sha256, UNKNOWN, None);
    let good = f.request(HashAlgorithm::Sha256, GOOD, None);

    // A real certificate's first answer: nothing cached yet, so it is signed from the budget
    // (the lookup is what the budget protects), then cached.
    assert_eq!(
        responder.respond(&good).await.status,
        OcspResponseStatus::Successful
    );
    // The rest of the burst: two answers signed on demand (a nonce, an unknown serial).
    assert_eq!(
        responder.respond(&nonce(1)).await.status,
        OcspResponseStatus::Successful
    );
    assert_eq!(
        responder.respond(&unknown).await.status,
        OcspResponseStatus::Successful
    );
    // Spent: both kinds get an unsigned tryLater, which clients retry — an unknown serial
    // before the store is even asked.
    let lookups = f.source.lookups();
    for request in [nonce(2), unknown.clone()] {
        let reply = responder.respond(&request).await;
        assert_eq!(reply.status, OcspResponseStatus::TryLater);
        assert_eq!(error_status(&reply.der), OcspResponseStatus::TryLater);
        assert!(
            reply.cache_window.is_none(),
            "a tryLater is never cacheable"
        );
    }
    assert_eq!(
        f.source.lookups(),
        lookups,
        "no store lookup once the budget is spent"
    );
    // The real certificate, now cached: never throttled.
    for _ in 0..5 {
        let reply = responder.respond(&good).await;
        assert_eq!(reply.status, OcspResponseStatus::Successful);
        verified(&f.ca, &reply.der);
    }
    // The budget refills: half a second later one more signature is allowed.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(
        responder.respond(&nonce(3)).await.status,
        OcspResponseStatus::Successful
    );
}

#[tokio::test]
async fn a_zero_budget_is_unlimited() {
    let f = fixture();
    let responder = budgeted(&f, 0);
    for n in 0..50u8 {
        let reply = responder
            .respond(&f.request(HashAlgorithm::Sha1, UNKNOWN, Some(&[n; 8])))
            .await;
        assert_eq!(reply.status, OcspResponseStatus::Successful);
    }
}
