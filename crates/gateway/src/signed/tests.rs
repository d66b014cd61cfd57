#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use portcullis_keys::software::SoftwareSigner;

const NOW: i64 = 1_800_000_000;
const DEVICE: &str = "valve-7";

fn signer(alg: Algorithm) -> SoftwareSigner {
    SoftwareSigner::generate(alg).unwrap().0
}

fn trusted(role: Role, key: &SoftwareSigner) -> TrustedKey {
    TrustedKey {
        role,
        key: cose_key_from_jwk(&key.public_jwk()).unwrap(),
    }
}

fn root_key(root: &SoftwareSigner) -> VerifyingKey {
    VerifyingKey::from_jwk(&root.public_jwk(), &Algorithm::ALL).unwrap()
}

struct Keys {
    root: SoftwareSigner,
    commands: SoftwareSigner,
    settings: SoftwareSigner,
    updates: SoftwareSigner,
}

fn keys() -> Keys {
    Keys {
        root: signer(Algorithm::ES384),
        commands: signer(Algorithm::ES256),
        settings: signer(Algorithm::EdDSA),
        updates: signer(Algorithm::ES256),
    }
}

fn trust_list(k: &Keys, ver: u64, exp: i64) -> Vec<u8> {
    let list = TrustList {
        ver,
        iat: NOW,
        exp,
        keys: vec![
            trusted(Role::Commands, &k.commands),
            trusted(Role::Settings, &k.settings),
            trusted(Role::Updates, &k.updates),
        ],
    };
    sign(Kind::Trust, &list, &k.root).unwrap()
}

fn opened_trust(k: &Keys) -> TrustList {
    TrustList::open(&trust_list(k, 3, NOW + 3600), &root_key(&k.root), NOW, None).unwrap()
}

fn command(dev: &str, iat: i64, exp: i64, seq: u64) -> CommandObject {
    CommandObject {
        dev: dev.into(),
        cid: "c-1".into(),
        name: "valve.open".into(),
        args: cbor_from_json(&serde_json::json!({"position": 40})).unwrap(),
        iat,
        exp,
        seq,
    }
}

fn manifest(model: &str, release: u64, nbf: i64, exp: i64, image: &[u8]) -> UpdateManifest {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, image);
    UpdateManifest {
        model: model.into(),
        version: format!("2.{release}.0"),
        release,
        sha256: digest.as_ref().try_into().unwrap(),
        size: image.len() as u64,
        url: "/gateway/v1/updates/images/x".into(),
        nbf,
        exp,
    }
}

#[test]
fn every_kind_round_trips_through_the_trust_list() {
    let k = keys();
    let trust = opened_trust(&k);
    assert_eq!(trust.ver, 3);

    let signed = sign(
        Kind::Command,
        &command(DEVICE, NOW, NOW + 60, 8),
        &k.commands,
    )
    .unwrap();
    let opened = CommandObject::open(&signed, &trust, DEVICE, NOW, 7).unwrap();
    assert_eq!(opened, command(DEVICE, NOW, NOW + 60, 8));

    let settings = SettingsObject {
        dev: DEVICE.into(),
        ver: 4,
        values: cbor_from_json(&serde_json::json!({"set_point": 21.5})).unwrap(),
        iat: NOW,
    };
    let signed = sign(Kind::Settings, &settings, &k.settings).unwrap();
    assert_eq!(
        SettingsObject::open(&signed, &trust, DEVICE, NOW, 3).unwrap(),
        settings
    );

    let image = b"firmware image bytes";
    let m = manifest("cam-x", 5, NOW - 10, NOW + 86_400, image);
    let signed = sign(Kind::Manifest, &m, &k.updates).unwrap();
    let opened = UpdateManifest::open(&signed, &trust, "cam-x", NOW, 4).unwrap();
    assert_eq!(opened, m);
    opened.check_image(image).unwrap();
}

#[test]
fn hostile_commands_are_refused_with_their_reason() {
    let k = keys();
    let trust = opened_trust(&k);
    let good = command(DEVICE, NOW, NOW + 60, 8);
    let stranger = signer(Algorithm::ES256);
    let settings_as_command = sign(
        Kind::Settings,
        &SettingsObject {
            dev: DEVICE.into(),
            ver: 9,
            values: Value::Null,
            iat: NOW,
        },
        &k.settings,
    )
    .unwrap();
    let mut tampered = sign(Kind::Command, &good, &k.commands).unwrap();
    let at = tampered.len() - 70; // inside the payload, before the signature
    tampered[at] ^= 0x01;

    let cases: Vec<(&str, Vec<u8>, u64, &str)> = vec![
        (
            "signed by the update key",
            sign(Kind::Command, &good, &k.updates).unwrap(),
            7,
            "unknown_kid",
        ),
        (
            "signed by a key the list does not name",
            sign(Kind::Command, &good, &stranger).unwrap(),
            7,
            "unknown_kid",
        ),
        (
            "signed by the root",
            sign(Kind::Command, &good, &k.root).unwrap(),
            7,
            "unknown_kid",
        ),
        (
            "settings presented as a command",
            settings_as_command,
            7,
            "wrong_content_type",
        ),
        ("one byte changed", tampered, 7, "bad_signature"),
        (
            "for another device",
            sign(
                Kind::Command,
                &command("valve-8", NOW, NOW + 60, 8),
                &k.commands,
            )
            .unwrap(),
            7,
            "other_device",
        ),
        (
            "expired",
            sign(
                Kind::Command,
                &command(DEVICE, NOW - 120, NOW - 60, 8),
                &k.commands,
            )
            .unwrap(),
            7,
            "expired",
        ),
        (
            "issued in the future",
            sign(
                Kind::Command,
                &command(DEVICE, NOW + 600, NOW + 900, 8),
                &k.commands,
            )
            .unwrap(),
            7,
            "issued_in_the_future",
        ),
        (
            "replayed (sequence already taken)",
            sign(Kind::Command, &good, &k.commands).unwrap(),
            8,
            "sequence_not_increasing",
        ),
        (
            "not COSE at all",
            b"valve.open".to_vec(),
            7,
            "not_cose_sign1",
        ),
    ];
    for (what, bytes, last_seq, reason) in cases {
        match CommandObject::open(&bytes, &trust, DEVICE, NOW, last_seq) {
            Err(e) => assert_eq!(e.reason(), reason, "{what}: {e:?}"),
            Ok(c) => panic!("{what}: accepted {c:?}"),
        }
    }
}

#[test]
fn every_truncation_and_flipped_bit_of_a_command_is_refused() {
    let k = keys();
    let trust = opened_trust(&k);
    let signed = sign(
        Kind::Command,
        &command(DEVICE, NOW, NOW + 60, 8),
        &k.commands,
    )
    .unwrap();
    for len in 0..signed.len() {
        assert!(CommandObject::open(&signed[..len], &trust, DEVICE, NOW, 0).is_err());
    }
    for i in 0..signed.len() {
        for bit in 0..8 {
            let mut changed = signed.clone();
            changed[i] ^= 1 << bit;
            assert!(
                CommandObject::open(&changed, &trust, DEVICE, NOW, 0).is_err(),
                "byte {i} bit {bit} changed and still accepted"
            );
        }
    }
}

#[test]
fn a_trust_list_needs_the_pinned_root_and_never_goes_back() {
    let k = keys();
    let root = root_key(&k.root);
    let list = trust_list(&k, 3, NOW + 3600);
    assert!(TrustList::open(&list, &root, NOW, Some(3)).is_ok());
    let refused = |bytes: &[u8], have: Option<u64>| {
        TrustList::open(bytes, &root, NOW, have)
            .unwrap_err()
            .reason()
    };
    assert_eq!(refused(&list, Some(4)), "older_trust_list");
    assert_eq!(refused(&trust_list(&k, 5, NOW), None), "expired");
    // Signed by an operational key instead of the root.
    let forged = TrustList {
        ver: 9,
        iat: NOW,
        exp: NOW + 3600,
        keys: vec![trusted(Role::Commands, &k.commands)],
    };
    let forged = sign(Kind::Trust, &forged, &k.commands).unwrap();
    assert_eq!(refused(&forged, None), "unknown_kid");
    // A command is not a trust list, even from the root.
    let command = sign(Kind::Command, &command(DEVICE, NOW, NOW + 60, 1), &k.root).unwrap();
    assert_eq!(refused(&command, None), "wrong_content_type");
}

#[test]
fn a_key_dropped_from_the_next_list_is_no_longer_believed() {
    let k = keys();
    let root = root_key(&k.root);
    let rotated = signer(Algorithm::ES256);
    let next = TrustList {
        ver: 4,
        iat: NOW,
        exp: NOW + 3600,
        keys: vec![trusted(Role::Commands, &rotated)],
    };
    let next = TrustList::open(
        &sign(Kind::Trust, &next, &k.root).unwrap(),
        &root,
        NOW,
        Some(3),
    )
    .unwrap();
    let old = sign(
        Kind::Command,
        &command(DEVICE, NOW, NOW + 60, 8),
        &k.commands,
    )
    .unwrap();
    assert_eq!(
        CommandObject::open(&old, &next, DEVICE, NOW, 0)
            .unwrap_err()
            .reason(),
        "unknown_kid"
    );
    let new = sign(Kind::Command, &command(DEVICE, NOW, NOW + 60, 8), &rotated).unwrap();
    assert!(CommandObject::open(&new, &next, DEVICE, NOW, 0).is_ok());
}

#[test]
fn settings_and_manifests_refuse_what_a_device_must_not_apply() {
    let k = keys();
    let trust = opened_trust(&k);
    let settings = SettingsObject {
        dev: DEVICE.into(),
        ver: 4,
        values: Value::Null,
        iat: NOW,
    };
    let signed = sign(Kind::Settings, &settings, &k.settings).unwrap();
    let err = SettingsObject::open(&signed, &trust, DEVICE, NOW, 4).unwrap_err();
    assert_eq!(err.reason(), "version_not_newer");

    let image = b"camera firmware";
    let cases = [
        (manifest("cam-y", 5, NOW, NOW + 60, image), 4, "other_model"),
        (manifest("cam-x", 4, NOW, NOW + 60, image), 4, "rollback"),
        (
            manifest("cam-x", 5, NOW - 120, NOW - 1, image),
            4,
            "expired",
        ),
        (
            manifest("cam-x", 5, NOW + 600, NOW + 900, image),
            4,
            "not_yet_valid",
        ),
    ];
    for (m, installed, reason) in cases {
        let signed = sign(Kind::Manifest, &m, &k.updates).unwrap();
        let err = UpdateManifest::open(&signed, &trust, "cam-x", NOW, installed).unwrap_err();
        assert_eq!(err.reason(), reason, "{m:?}");
    }
    let m = manifest("cam-x", 5, NOW, NOW + 60, image);
    assert!(
        m.check_image(b"camera firmwarf").is_err(),
        "one byte changed"
    );
    assert!(
        m.check_image(b"camera firmware!").is_err(),
        "one byte added"
    );
    // A manifest signed by the command key is not an update.
    let signed = sign(Kind::Manifest, &m, &k.commands).unwrap();
    let err = UpdateManifest::open(&signed, &trust, "cam-x", NOW, 0).unwrap_err();
    assert_eq!(err.reason(), "unknown_kid");
}

#[test]
fn cose_keys_round_trip_for_every_key_type() {
    for alg in Algorithm::ALL {
        let jwk = signer(alg).public_jwk();
        let back = jwk_from_cose_key(&cose_key_from_jwk(&jwk).unwrap()).unwrap();
        assert_eq!(
            back.thumbprint().unwrap(),
            jwk.thumbprint().unwrap(),
            "{alg:?}"
        );
        assert_eq!(back.kid, jwk.kid);
    }
    for hostile in [
        Value::Null,
        Value::Map(vec![]),
        Value::Map(vec![(Value::from(1), Value::from(2))]),
        Value::Map(vec![
            (Value::from(1), Value::from(2)),
            (Value::from(-1), Value::from(99)),
        ]),
    ] {
        assert!(jwk_from_cose_key(&hostile).is_err(), "{hostile:?}");
    }
}
