//! The `info` text people read: exact lines, units beside numbers, titles
//! from ROM headers shown as text with anything unprintable escaped (in
//! JSON too), no trailing spaces, and a report `file` calls text.

mod common;

use std::path::Path;

use common::{fixture, ninja, read_fixture};

fn info(args: &[&std::ffi::OsStr]) -> String {
    let out = ninja()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("info")
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).expect("info prints UTF-8")
}

fn info_of(path: &Path) -> String {
    info(&[path.as_os_str()])
}

/// What a terminal must never be handed: control bytes other than the
/// line feed, and lines that end in a space.
fn assert_plain_text(text: &str) {
    for (n, line) in text.lines().enumerate() {
        assert!(
            !line.ends_with(' '),
            "line {} ends in a space: {line:?}",
            n + 1
        );
        assert!(
            !line.chars().any(|c| c.is_control()),
            "line {} holds a control character: {line:?}",
            n + 1
        );
    }
}

#[test]
fn an_ffe_dump_says_what_its_header_means() {
    let text = info(&["tests/fixtures/roms/nes/nes15-NTSC.ffe".as_ref()]);
    assert_eq!(
        text,
        "tests/fixtures/roms/nes/nes15-NTSC.ffe
  system              nes (NES / Famicom)
  header              Famtasia/FFE, 512 bytes, replaced by an iNES header in the deinterleaved image
  interleave          none
  ffe header          Magic Card 1M/2M game (byte 0 = 0x80)
  ffe mode            0xea: latch mode 7, NROM: 32 KiB PRG, 8 KiB CHR; vertical mirroring
  trainer             no
  mapper              0 (NROM), in the iNES header
  prg rom             16384 bytes (16 KiB)
  chr rom             8192 bytes (8 KiB)
  mirroring           vertical
  ines header         4e 45 53 1a 01 01 01 00 00 00 00 00 00 00 00 00 (made for the deinterleaved image)
  raw size            45568 bytes
  normalized size     45056 bytes (44 KiB)
  deinterleaved size  28688 bytes
  normalized crc32    35485ad2
  normalized md5      295b408d9d8189ef43bf283730991332
  normalized sha1     07b751ea896cc34901d5edbaee6fd041bc71da4e
  note                the FFE file pads a 16 KiB PRG to the 32 KiB its NROM mode maps, with a blank upper half: the iNES image leaves that half out, as the game's own 16 KiB
"
    );
}

#[test]
fn an_ines_dump_gives_units_and_board_names() {
    let text = info(&["tests/fixtures/roms/nes/nes15-NTSC.nes".as_ref()]);
    assert_eq!(
        text,
        "tests/fixtures/roms/nes/nes15-NTSC.nes
  system              nes (NES / Famicom)
  header              iNES, 16 bytes, kept in the deinterleaved image
  interleave          none
  mapper              0 (NROM)
  prg rom             16384 bytes (16 KiB)
  chr rom             8192 bytes (8 KiB)
  mirroring           vertical
  battery             no
  trainer             no
  raw size            28688 bytes
  normalized size     28672 bytes (28 KiB)
  deinterleaved size  28688 bytes
  normalized crc32    76eda451
  normalized md5      bb2dda7725be42c8bb90c648ef5e4155
  normalized sha1     458b4dc5105b5720e2b2859342db5c7d5294ec0f
"
    );
}

#[test]
fn checksum_validity_is_worded_to_one_width() {
    let text = info(&["tests/fixtures/roms/gb/sdcc_makebin.gbc".as_ref()]);
    for line in [
        "  header checksum        0x78 (stored, over 0x134-0x14c)",
        "  header checksum valid  yes, stored = computed",
        "  global checksum valid  yes, stored = computed",
        "  ram size code          0 (no cartridge RAM)",
        "  super game boy         no",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert_eq!(
        "yes, stored = computed".len(),
        "no, stored != computed".len()
    );
}

/// cputest with its internal title replaced by bytes meant for a terminal:
/// a colour escape, a bell, a byte that is not UTF-8.
fn rom_with_a_hostile_title(dir: &Path) -> std::path::PathBuf {
    let mut rom = read_fixture("roms/snes/cputest-basic.sfc");
    let title = b"\x1b[31mEVIL\x07\xff \\ OK";
    rom[0x7FC0..0x7FC0 + 21].fill(b' ');
    rom[0x7FC0..0x7FC0 + title.len()].copy_from_slice(title);
    let path = dir.join("evil.sfc");
    std::fs::write(&path, rom).unwrap();
    path
}

const ESCAPED_TITLE: &str = "\\x1b[31mEVIL\\x07\\xff \\\\ OK";

#[test]
fn control_characters_in_a_title_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let rom = rom_with_a_hostile_title(dir.path());
    let text = info_of(&rom);
    assert_plain_text(&text);
    let line = format!("  title                {ESCAPED_TITLE}");
    assert!(
        text.lines().any(|l| l == line),
        "missing {line:?} in\n{text}"
    );

    let out = ninja()
        .arg("info")
        .arg("--json")
        .arg(&rom)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON, valid UTF-8");
    assert_eq!(json[0]["internal"]["title"], ESCAPED_TITLE);
}

#[test]
fn a_game_boy_title_is_escaped_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut rom = read_fixture("roms/gb/sdcc_makebin.gbc");
    rom[0x134..0x134 + 6].copy_from_slice(b"A\x1bB\x9bC\x00");
    let path = dir.path().join("evil.gbc");
    std::fs::write(&path, rom).unwrap();
    let text = info_of(&path);
    assert_plain_text(&text);
    assert!(
        text.lines()
            .any(|l| l == "  title                  A\\x1bB\\x9bC"),
        "{text}"
    );
}

#[test]
fn file_calls_the_report_text() {
    let Ok(version) = std::process::Command::new("file").arg("--version").output() else {
        println!("skipped: `file` is not installed (Debian's `file` package)");
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().unwrap();
    let rom = rom_with_a_hostile_title(dir.path());
    let report = dir.path().join("report.txt");
    std::fs::write(&report, info_of(&rom)).unwrap();
    let out = std::process::Command::new("file")
        .arg("-b")
        .arg(&report)
        .output()
        .unwrap();
    let kind = String::from_utf8_lossy(&out.stdout);
    assert!(kind.contains("text"), "file says {kind:?}");
    assert!(!kind.contains("escape sequences"), "file says {kind:?}");
}

#[test]
fn every_fixture_report_is_plain_text() {
    let mut paths = Vec::new();
    for folder in [
        "roms/nes",
        "roms/snes",
        "roms/gb",
        "roms/n64",
        "roms/sms_gg",
        "roms/pce",
        "roms/lynx",
        "patches",
    ] {
        for entry in std::fs::read_dir(fixture(folder)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_file() && !name.ends_with(".LICENSE") && !name.ends_with(".copyright") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    let args: Vec<&std::ffi::OsStr> = paths.iter().map(|p| p.as_os_str()).collect();
    let text = info(&args);
    assert_plain_text(&text);
    assert!(
        !text.contains("V2") && !text.contains("V3"),
        "PPF versions in words"
    );
}

#[test]
fn a_ppf_patch_says_its_version_and_checks_in_words() {
    let text = info(&["tests/fixtures/patches/nes15_ntsc2pal.ucon64.ppf".as_ref()]);
    assert_eq!(
        text,
        "tests/fixtures/patches/nes15_ntsc2pal.ucon64.ppf
  format       PPF
  version      2.0
  records      10
  undo data    no
  block check  yes: 1024 bytes of the image at 0x9320 must match
  source size  28688 bytes
  target size  28688 bytes
"
    );
}
