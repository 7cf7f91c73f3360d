//! `apply --revert` and reverted variants in the mount, bit-reversed
//! TurboGrafx-16 dumps, and plain ExHiROM images: through the command line
//! and through the views layer (the filesystem core without FUSE).

mod common;

use std::path::Path;

use common::ninja;

fn info_text(path: &Path, extra: &[&str]) -> String {
    let out = ninja()
        .arg("info")
        .arg(path)
        .args(extra)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

// ---- plain ExHiROM ----

/// A plain 48 Mbit ExHiROM: the internal header only at 0x40FFC0, with a
/// checksum pair that holds and is the image's own sum.
fn exhirom_image() -> Vec<u8> {
    const HEADER: usize = 0x40_FFC0;
    let mut image: Vec<u8> = (0..0x60_0000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    image[HEADER..HEADER + 21].copy_from_slice(b"NINJA EXHIROM TEST   ");
    image[HEADER + 0x15] = 0x35; // ExHiROM, FastROM
    image[HEADER + 0x17] = 0x0D; // 8 MiB declared
    image[HEADER + 0x1C..HEADER + 0x20].copy_from_slice(&[0xFF, 0xFF, 0x00, 0x00]);
    // The console's sum: 4 MiB, then the 2 MiB past it mirrored twice.
    let sum = |bytes: &[u8]| bytes.iter().map(|&b| u64::from(b)).sum::<u64>();
    let checksum = ((sum(&image[..0x40_0000]) + 2 * sum(&image[0x40_0000..])) & 0xFFFF) as u16;
    image[HEADER + 0x1C..HEADER + 0x1E].copy_from_slice(&(!checksum).to_le_bytes());
    image[HEADER + 0x1E..HEADER + 0x20].copy_from_slice(&checksum.to_le_bytes());
    image
}

#[test]
fn a_plain_exhirom_is_read_at_its_own_header_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ExHi.sfc");
    let image = exhirom_image();
    std::fs::write(&path, &image).unwrap();
    let info = info_text(&path, &[]);
    assert!(!info.contains("fails at both header places"), "{info}");
    assert!(!info.contains("note"), "{info}");
    assert!(info.contains("  interleave "), "{info}");
    assert!(
        info.contains("0x40ffc0 (the ExHiROM place, in the normalized image)"),
        "{info}"
    );
    assert!(info.contains("NINJA EXHIROM TEST"), "{info}");
    let layout = ninja_fs::system::identify(Some("ExHi.sfc"), &image, None).unwrap();
    assert_eq!(layout.interleave, ninja_fs::system::Interleave::None);
    assert!(layout.notes.is_empty());
    // Served as it is.
    let out = ninja()
        .arg("normalize")
        .arg(&path)
        .args(["-o", "-"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(out == image);
}
