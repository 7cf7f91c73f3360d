//! Hostile patches through the command line: each fails with a clear
//! message, no panic, no output, and no allocation past --max-size.

mod common;

use assert_cmd::Command;
use common::fixture;

fn vlv_ups(mut value: u64, out: &mut Vec<u8>) {
    // UPS/BPS numbers: 7 bits a byte, the last byte flagged, with the
    // "subtract one" trick of the format.
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte | 0x80);
            return;
        }
        out.push(byte);
        value -= 1;
    }
}

fn with_crc(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

fn apply_fails(patch_name: &str, patch: &[u8], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let patch_path = dir.path().join(patch_name);
    std::fs::write(&patch_path, patch).unwrap();
    let out = dir.path().join("out.nes");
    let assert = Command::cargo_bin("ninja-fs")
        .unwrap()
        .arg("apply")
        .arg(fixture("roms/nes/nes15-NTSC.nes"))
        .arg(&patch_path)
        .arg("-o")
        .arg(&out)
        .assert()
        .failure();
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains(expected), "{patch_name}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn a_bps_claiming_an_exabyte_target_is_refused_before_allocating() {
    let mut body = b"BPS1".to_vec();
    vlv_ups(28688, &mut body);
    vlv_ups(1 << 60, &mut body);
    vlv_ups(0, &mut body);
    body.extend_from_slice(&[0; 8]);
    apply_fails(
        "huge.bps",
        &with_crc(body),
        "would make a 1152921504606846976-byte image, over the maximum of 1073741824 bytes",
    );
}

#[test]
fn a_ups_claiming_an_exabyte_target_is_refused_before_allocating() {
    let mut body = b"UPS1".to_vec();
    vlv_ups(28688, &mut body);
    vlv_ups(1 << 60, &mut body);
    body.extend_from_slice(&[0; 8]);
    apply_fails(
        "huge.ups",
        &with_crc(body),
        "would make a 1152921504606846976-byte image, over the maximum of 1073741824 bytes",
    );
}

#[test]
fn an_ips_record_past_16_mib_is_refused() {
    // A record at 0xFFFFFF of 0xFFFF bytes ends past what IPS can address.
    let mut ips = b"PATCH".to_vec();
    ips.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    ips.extend(std::iter::repeat_n(0xAA, 0xFFFF));
    ips.extend_from_slice(b"EOF");
    let dir = tempfile::tempdir().unwrap();
    let patch = dir.path().join("far.ips");
    std::fs::write(&patch, &ips).unwrap();
    let assert = Command::cargo_bin("ninja-fs")
        .unwrap()
        .arg("apply")
        .arg(fixture("roms/nes/nes15-NTSC.nes"))
        .arg(&patch)
        .args(["--max-size", "16M", "-o", "-"])
        .assert()
        .failure();
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains("over the maximum of 16777216 bytes"),
        "{stderr}"
    );
}

#[test]
fn a_rup_number_with_200_count_bytes_is_refused() {
    let mut rup = b"NINJA2".to_vec();
    rup.resize(0x800, 0);
    rup.push(0x01);
    rup.push(200);
    rup.extend(std::iter::repeat_n(0xFF, 200));
    apply_fails("vlv.rup", &rup, "claims 200 bytes; a number has at most 8");
}

#[test]
fn truncated_and_garbage_patches_fail_cleanly() {
    let cases: [(&str, &[u8], &str); 4] = [
        ("cut.ips", b"PATCH\x00\x00", "IPS patch is truncated"),
        ("cut.bps", b"BPS1\x80", "BPS patch is truncated"),
        ("cut.rup", b"NINJA2", "RUP patch is truncated"),
        ("noise.ppf", b"PPF30\x02", "PPF patch is truncated"),
    ];
    for (name, bytes, expected) in cases {
        apply_fails(name, bytes, expected);
    }
}
