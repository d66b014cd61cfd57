//! Fuzzes what a device parses from Portcullis (issue #13, `docs/signed-objects.md`):
//! arbitrary bytes as a trust list, a command, settings and an update manifest, checked
//! against a fixed root and trust list, and as a COSE_Key. None may panic; nothing arbitrary
//! may verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_gateway::signed::{
    cose_key_from_jwk, jwk_from_cose_key, sign, CommandObject, Kind, Role, SettingsObject,
    TrustList, TrustedKey, UpdateManifest,
};
use portcullis_keys::software::SoftwareSigner;
use portcullis_keys::verify::VerifyingKey;
use portcullis_keys::{Algorithm, Signer as _};
use std::sync::LazyLock;

const NOW: i64 = 1_800_000_000;

struct Fixed {
    root: VerifyingKey,
    trust: TrustList,
}

static FIXED: LazyLock<Option<Fixed>> = LazyLock::new(|| {
    let (root, _) = SoftwareSigner::generate(Algorithm::ES256).ok()?;
    let (commands, _) = SoftwareSigner::generate(Algorithm::ES256).ok()?;
    let list = TrustList {
        ver: 1,
        iat: NOW,
        exp: NOW + 3600,
        keys: vec![TrustedKey {
            role: Role::Commands,
            key: cose_key_from_jwk(&commands.public_jwk()).ok()?,
        }],
    };
    let root_key = VerifyingKey::from_jwk(&root.public_jwk(), &Algorithm::ALL).ok()?;
    let signed = sign(Kind::Trust, &list, &root).ok()?;
    let trust = TrustList::open(&signed, &root_key, NOW, None).ok()?;
    Some(Fixed {
        root: root_key,
        trust,
    })
});

fuzz_target!(|bytes: &[u8]| {
    let Some(fixed) = FIXED.as_ref() else {
        return;
    };
    assert!(TrustList::open(bytes, &fixed.root, NOW, None).is_err());
    assert!(CommandObject::open(bytes, &fixed.trust, "dev-1", NOW, 0).is_err());
    assert!(SettingsObject::open(bytes, &fixed.trust, "dev-1", NOW, 0).is_err());
    assert!(UpdateManifest::open(bytes, &fixed.trust, "model", NOW, 0).is_err());
    if let Ok(value) = ciborium::from_reader::<ciborium::Value, _>(bytes) {
        let _ = jwk_from_cose_key(&value);
    }
});
