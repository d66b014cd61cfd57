//! The device registry through the CLI and admin API: a 100 000-row manufacturing list is
//! imported idempotently with a report of rejected rows, and devices move through their
//! life cycle with problem+json errors for transitions the rules forbid.

use crate::support;

use std::io::Write as _;

use support::Node;

#[test]
fn a_manufacturing_list_of_100k_devices_imports_once_and_reports_bad_rows() {
    let node = Node::start();
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("devices.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
    writeln!(f, "device_id,model,batch,site").unwrap();
    for i in 0..100_000 {
        writeln!(f, "dev-{i:06},TH-20,b{},plant-{}", i / 1000, i % 7).unwrap();
    }
    // Rejected rows: a bad id, a duplicate of an earlier row, a short row.
    writeln!(f, "bad id!,TH-20,b0,plant-1").unwrap(); // line 100002
    writeln!(f, "dev-000001,TH-20,b0,plant-1").unwrap(); // line 100003
    writeln!(f, "dev-short").unwrap(); // line 100004
    drop(f);
    let secrets = tmp.path().join("secrets.csv");
    let started = std::time::Instant::now();
    let out = node.cli(&[
        "device",
        "import",
        csv.to_str().unwrap(),
        "--secrets-out",
        secrets.to_str().unwrap(),
        "--json",
    ]);
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["registered"], 100_000, "{report}");
    assert_eq!(report["existing"], 0);
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 3, "{report}");
    let lines: Vec<u64> = rejected
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![100_002, 100_003, 100_004], "{report}");
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .contains("device_id"),
        "{report}"
    );
    assert!(
        rejected[1]["reason"]
            .as_str()
            .unwrap()
            .contains("duplicate"),
        "{report}"
    );
    eprintln!("imported 100 000 devices in {elapsed:?}");

    // The secrets file is private and holds one secret per new device.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&secrets).unwrap();
    assert_eq!(text.lines().count(), 100_001);
    let (first_id, first_secret) = text.lines().nth(1).unwrap().split_once(',').unwrap();
    assert_eq!(first_id, "dev-000000");
    assert!(first_secret.len() >= 40);

    // Idempotent: the same list again registers nothing and leaves the secrets alone.
    let again = node.cli(&[
        "device",
        "import",
        csv.to_str().unwrap(),
        "--secrets-out",
        tmp.path().join("again.csv").to_str().unwrap(),
        "--json",
    ]);
    assert!(again.status.success());
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["registered"], 0, "{report}");

    // Issue #11: the secrets file is always a new file — never an existing one (it would keep
    // its old mode) nor a symlink planted at the path.
    let link = tmp.path().join("planted.csv");
    std::os::unix::fs::symlink(tmp.path().join("elsewhere.csv"), &link).unwrap();
    for path in [&secrets, &link] {
        let refused = node.cli(&[
            "device",
            "import",
            csv.to_str().unwrap(),
            "--secrets-out",
            path.to_str().unwrap(),
        ]);
        assert_eq!(refused.status.code(), Some(2), "{}", path.display());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));
    }
    assert!(
        !tmp.path().join("elsewhere.csv").exists(),
        "nothing written through the link"
    );
    assert_eq!(report["existing"], 100_000, "{report}");

    // Attributes arrived.
    let shown = node.cli_json(&["device", "show", "dev-000008"]);
    assert_eq!(shown["model"], "TH-20");
    assert_eq!(shown["attrs"]["site"], "plant-1");
    assert_eq!(shown["state"], "registered");
    assert_eq!(shown["enrollment_pending"], true);
    assert!(
        shown.get("enrollment_secret").is_none(),
        "never shown again"
    );
}

#[test]
fn the_life_cycle_is_enforced_with_problem_json() {
    let node = Node::start();
    let created = node.cli_json(&[
        "device", "register", "--id", "act-1", "--model", "V2", "--attr", "site=a",
    ]);
    assert_eq!(created["state"], "registered");
    let token = node.admin_token();
    let patch = |state: &str| {
        node.request(
            "PATCH",
            "/admin/v1/devices/act-1",
            Some("application/json"),
            &[("Authorization", &format!("Bearer {token}"))],
            format!("{{\"state\":\"{state}\"}}").as_bytes(),
        )
    };
    // Only EST enrolls.
    let a = patch("enrolled");
    assert_eq!(a.status, 400);
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    assert_eq!(patch("suspended").json["state"], "suspended");
    let resumed = patch("registered");
    assert_eq!(resumed.json["state"], "registered");
    assert!(
        resumed.json["enrollment_secret"].as_str().is_some(),
        "{}",
        resumed.text
    );
    assert_eq!(patch("decommissioned").json["state"], "decommissioned");
    let b = patch("registered");
    assert_eq!(b.status, 400, "decommissioned is final: {}", b.text);
    // Unknown device, bad id, duplicate registration.
    let c = node.request(
        "GET",
        "/admin/v1/devices/nope",
        None,
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    );
    assert_eq!(c.status, 404);
    let dup = node.cli(&["device", "register", "--id", "act-1"]);
    assert!(!dup.status.success());
    assert!(
        String::from_utf8_lossy(&dup.stderr).contains("already"),
        "{}",
        String::from_utf8_lossy(&dup.stderr)
    );
    let bad = node.cli(&["device", "register", "--id", "a:b"]);
    assert!(!bad.status.success());
    // Listing pages through devices in id order.
    for i in 0..5 {
        node.cli_json(&["device", "register", "--id", &format!("p-{i}")]);
    }
    let page = node.cli_json(&["device", "list", "--limit", "3"]);
    assert_eq!(page["devices"].as_array().unwrap().len(), 3);
    let next = page["next"].as_str().unwrap().to_owned();
    let rest = node.cli_json(&["device", "list", "--limit", "10", "--after", &next]);
    assert_eq!(rest["devices"].as_array().unwrap().len(), 3);
}
