//! Conformance tests for VCDIFF against real xdelta3 patches: the committed
//! fixtures always, and freshly made patches when `xdelta3` is on PATH.

mod common;

use common::PAIRS;

use std::path::{Path, PathBuf};
use std::process::Command;

use ninja_fs::patch::vcdiff::{self, SecondaryCompressor};
use ninja_fs::patch::{ApplyOptions, Limits, PatchError};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(relative: &str) -> Vec<u8> {
    let path = fixtures().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn apply(patch: &[u8], source: &[u8]) -> Result<Vec<u8>, PatchError> {
    vcdiff::parse(patch, &Limits::default())?.apply(source, &ApplyOptions::default())
}

#[test]
fn committed_xdelta3_patches_make_their_targets() {
    for (pair, source, target) in PAIRS {
        let source = read(source);
        let target = read(target);
        for flavour in ["xdelta3-default", "xdelta3-plain"] {
            let patch = read(&format!("patches/{pair}.{flavour}.vcdiff"));
            assert!(vcdiff::matches(&patch));
            let parsed = vcdiff::parse(&patch, &Limits::default()).unwrap();
            assert_eq!(parsed.output_size(source.len() as u64), target.len() as u64);
            assert_eq!(parsed.summary().target_size, Some(target.len() as u64));
            let expected_secondary =
                (flavour == "xdelta3-default").then_some(SecondaryCompressor::Lzma);
            assert_eq!(parsed.secondary, expected_secondary, "{pair} {flavour}");
            // `-A` alone turns the application header off.
            let has_names = parsed.app_header_names().is_some();
            assert_eq!(has_names, flavour == "xdelta3-default", "{pair} {flavour}");
            let made = parsed.apply(&source, &ApplyOptions::default()).unwrap();
            assert!(made == target, "{pair} {flavour} made the wrong bytes");
            let mut streamed = Vec::new();
            parsed
                .apply_to_writer(&source, &ApplyOptions::default(), &mut streamed)
                .unwrap();
            assert!(
                streamed == target,
                "{pair} {flavour} streamed the wrong bytes"
            );
        }
    }
}

#[test]
fn app_header_gives_the_file_names() {
    let patch = read("patches/nes15_ntsc2pal.xdelta3-default.vcdiff");
    let parsed = vcdiff::parse(&patch, &Limits::default()).unwrap();
    assert_eq!(
        parsed.app_header,
        Some(&b"nes15-PAL.nes//nes15-NTSC.nes/"[..])
    );
    let names = parsed.app_header_names().unwrap();
    assert_eq!(names.target_name, b"nes15-PAL.nes");
    assert_eq!(names.target_compression, b"");
    assert_eq!(names.source_name, Some(&b"nes15-NTSC.nes"[..]));
    assert_eq!(names.source_compression, Some(&b""[..]));
}

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A source that compresses somewhat (words and noise), and a target made
/// from it with scattered edits, inserts, deletions and a grown tail.
fn make_pair(seed: u64, len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng(seed | 1);
    let words: [&[u8]; 6] = [
        b"alpha ",
        b"beta ",
        b"gamma ",
        b"delta ",
        b"sprite",
        b"\x00\x00\x00\x00",
    ];
    let mut source = Vec::with_capacity(len + 16);
    while source.len() < len {
        if rng.below(4) == 0 {
            source.push(rng.next() as u8);
        } else {
            source.extend_from_slice(words[rng.below(words.len())]);
        }
    }
    source.truncate(len);
    let mut target = source.clone();
    for _ in 0..(len / 2048).max(4) {
        let at = rng.below(target.len().max(1));
        match rng.below(3) {
            0 => {
                let end = (at + rng.below(64)).min(target.len());
                for byte in &mut target[at..end] {
                    *byte = rng.next() as u8;
                }
            }
            1 => {
                let insert: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
                target.splice(at..at, insert);
            }
            _ => {
                let end = (at + rng.below(300)).min(target.len());
                target.drain(at..end);
            }
        }
    }
    let tail = target.len() / 8;
    for index in 0..tail {
        target.push(if index % 7 == 0 {
            rng.next() as u8
        } else {
            b"growth"[index % 6]
        });
    }
    (source, target)
}

fn xdelta3_available() -> bool {
    match Command::new("xdelta3").arg("-V").output() {
        Ok(_) => true,
        Err(e) => {
            eprintln!(
                "skipped: xdelta3 is not on PATH ({e}); install Debian's xdelta3 to run this test"
            );
            false
        }
    }
}

/// Runs `xdelta3 -e` with extra flags and returns the patch.
fn xdelta3_encode(dir: &Path, source: &[u8], target: &[u8], flags: &[&str]) -> Vec<u8> {
    let (source_path, target_path, patch_path) = (
        dir.join("source.bin"),
        dir.join("target.bin"),
        dir.join("patch.vcdiff"),
    );
    std::fs::write(&source_path, source).unwrap();
    std::fs::write(&target_path, target).unwrap();
    let status = Command::new("xdelta3")
        .args(["-e", "-f"])
        .args(flags)
        .arg("-s")
        .arg(&source_path)
        .arg(&target_path)
        .arg(&patch_path)
        .status()
        .unwrap();
    assert!(status.success(), "xdelta3 -e {flags:?} failed");
    std::fs::read(&patch_path).unwrap()
}

fn check_round_trip(dir: &Path, source: &[u8], target: &[u8], flags: &[&str]) -> usize {
    let patch = xdelta3_encode(dir, source, target, flags);
    let parsed = vcdiff::parse(&patch, &Limits::default())
        .unwrap_or_else(|e| panic!("parse with {flags:?}: {e}"));
    assert_eq!(parsed.output_size(source.len() as u64), target.len() as u64);
    let made = parsed
        .apply(source, &ApplyOptions::default())
        .unwrap_or_else(|e| panic!("apply with {flags:?}: {e}"));
    assert!(made == target, "xdelta3 {flags:?}: wrong bytes");
    let mut streamed = Vec::new();
    let written = parsed
        .apply_to_writer(source, &ApplyOptions::default(), &mut streamed)
        .unwrap_or_else(|e| panic!("apply_to_writer with {flags:?}: {e}"));
    assert_eq!(written, target.len() as u64);
    assert!(
        streamed == target,
        "xdelta3 {flags:?}: wrong streamed bytes"
    );
    parsed.windows.len()
}

#[test]
fn xdelta3_patches_in_every_setting_apply() {
    if !xdelta3_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (source, target) = make_pair(7, 200_000);
    for secondary in [None, Some("djw"), Some("none"), Some("lzma"), Some("fgk")] {
        for app_header in [true, false] {
            for level in ["-9", "-0", "-3"] {
                let mut flags = vec![level];
                if let Some(name) = secondary {
                    flags.extend(["-S", name]);
                }
                if !app_header {
                    flags.push("-A");
                }
                check_round_trip(dir.path(), &source, &target, &flags);
            }
        }
    }
}

#[test]
fn xdelta3_multi_window_patches_apply() {
    if !xdelta3_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (source, target) = make_pair(11, 3 << 20);
    for secondary in ["lzma", "djw", "none"] {
        let windows = check_round_trip(
            dir.path(),
            &source,
            &target,
            &["-S", secondary, "-W", "65536", "-B", "524288"],
        );
        assert!(windows > 40, "{secondary}: only {windows} windows");
    }
}

#[test]
fn xdelta3_small_and_empty_files_apply() {
    if !xdelta3_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (source, target) = make_pair(3, 3000);
    for (source, target) in [
        (&source[..], &target[..]),
        (&[][..], &target[..]),
        (&source[..], &[][..]),
        (&[][..], &[][..]),
        (&source[..100], &source[..100]),
    ] {
        for secondary in ["lzma", "djw", "none", "fgk"] {
            check_round_trip(dir.path(), source, target, &["-S", secondary]);
        }
    }
}

/// Runs `xdelta3 -d`; `None` when xdelta3 refuses the patch.
fn xdelta3_decode(dir: &Path, source: &[u8], patch: &[u8]) -> Option<Vec<u8>> {
    let (source_path, patch_path, output_path) = (
        dir.join("d_source.bin"),
        dir.join("d_patch.vcdiff"),
        dir.join("d_output.bin"),
    );
    std::fs::write(&source_path, source).unwrap();
    std::fs::write(&patch_path, patch).unwrap();
    let output = Command::new("xdelta3")
        .args(["-d", "-f", "-s"])
        .arg(&source_path)
        .arg(&patch_path)
        .arg(&output_path)
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| std::fs::read(&output_path).unwrap())
}

/// xdelta3 keeps one FGK tree per section kind across windows, but its
/// encoder also adapts the tree for sections it then stores uncompressed,
/// so xdelta3 cannot decode some of its own multi-window FGK patches. We
/// must agree with `xdelta3 -d` either way: same bytes, or an error.
#[test]
fn xdelta3_multi_window_fgk_patches_agree_with_xdelta3() {
    if !xdelta3_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut decoded_by_both = 0;
    for (seed, len) in [(11u64, 3usize << 20), (12, 1 << 20), (13, 600_000)] {
        let (source, target) = make_pair(seed, len);
        let patch = xdelta3_encode(
            dir.path(),
            &source,
            &target,
            &["-S", "fgk", "-W", "65536", "-B", "524288"],
        );
        let ours = apply(&patch, &source);
        match xdelta3_decode(dir.path(), &source, &patch) {
            Some(theirs) => {
                assert!(theirs == target);
                assert!(
                    ours.as_deref() == Ok(&target[..]),
                    "seed {seed}: xdelta3 decodes it, we do not"
                );
                decoded_by_both += 1;
            }
            None => assert!(
                ours.is_err(),
                "seed {seed}: xdelta3 refuses it, we accept it"
            ),
        }
    }
    // Every window compresses all three sections here, so xdelta3's encoder
    // and decoder trees stay in step and xdelta3 decodes it.
    let mut rng = Rng(2);
    let words: [&[u8]; 4] = [b"alpha ", b"beta ", b"gamma ", b"delta "];
    let mut source = Vec::new();
    while source.len() < 4 * 65536 {
        source.extend_from_slice(words[rng.below(4)]);
    }
    source.truncate(4 * 65536);
    let mut target = source.clone();
    for at in (0..target.len() - 3).step_by(97) {
        target[at..at + 3].copy_from_slice(b"xyz");
    }
    let patch = xdelta3_encode(dir.path(), &source, &target, &["-S", "fgk", "-W", "65536"]);
    let parsed = vcdiff::parse(&patch, &Limits::default()).unwrap();
    assert_eq!(parsed.windows.len(), 4);
    assert_eq!(
        xdelta3_decode(dir.path(), &source, &patch).as_deref(),
        Some(&target[..])
    );
    assert!(apply(&patch, &source).unwrap() == target);
    eprintln!("{decoded_by_both} of 3 other multi-window FGK patches decodable by xdelta3");
}

#[test]
fn created_patches_apply_here_and_in_xdelta3() {
    let mut cases = vec![
        (Vec::new(), Vec::new()),
        (Vec::new(), b"only new bytes".to_vec()),
        (b"only old bytes".to_vec(), Vec::new()),
    ];
    for (seed, len) in [(21u64, 5000usize), (22, 300_000), (23, 6 << 20)] {
        cases.push(make_pair(seed, len));
    }
    for (_, source, target) in PAIRS {
        cases.push((read(source), read(target)));
    }
    let xdelta3 = xdelta3_available();
    let dir = tempfile::tempdir().unwrap();
    for (source, target) in &cases {
        let patch = vcdiff::create(source, target).unwrap();
        assert!(apply(&patch, source).unwrap() == *target);
        if xdelta3 {
            let decoded = xdelta3_decode(dir.path(), source, &patch);
            assert!(
                decoded.as_deref() == Some(&target[..]),
                "xdelta3 -d rejects or mis-decodes our {}-byte to {}-byte patch",
                source.len(),
                target.len()
            );
        }
    }
}
