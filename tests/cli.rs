//! The command line as a user meets it: outputs, refusals, messages.

mod common;

use common::{fixture, ninja, read_fixture, stderr_of};

#[test]
fn normalize_writes_the_common_format() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.sfc");
    ninja()
        .args([
            "normalize",
            fixture("roms/snes/cputest-basic.smc").to_str().unwrap(),
            "-o",
        ])
        .arg(&out)
        .assert()
        .success();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        read_fixture("roms/snes/cputest-basic.sfc")
    );
}

#[test]
fn deinterleave_to_stdout_keeps_the_lnx_header() {
    let lnx = fixture("roms/lynx/cc65_tgi_hello.lnx");
    let out = ninja()
        .args(["deinterleave", lnx.to_str().unwrap(), "-o", "-"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(out, read_fixture("roms/lynx/cc65_tgi_hello.lnx"));
    let out = ninja()
        .args(["normalize", lnx.to_str().unwrap(), "-o", "-"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(out, read_fixture("roms/lynx/cc65_tgi_hello.lyx"));
}

#[test]
fn system_override_is_obeyed() {
    // A v64 read as raw stays byte-swapped.
    let v64 = fixture("roms/n64/bigbass1997_minimal.v64");
    let out = ninja()
        .args([
            "normalize",
            v64.to_str().unwrap(),
            "-o",
            "-",
            "--system",
            "raw",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(out, read_fixture("roms/n64/bigbass1997_minimal.v64"));
}

#[test]
fn existing_output_is_refused_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.z64");
    std::fs::write(&out, b"keep me").unwrap();
    let rom = fixture("roms/n64/bigbass1997_minimal.v64");
    let err = stderr_of(
        ninja()
            .args(["normalize", rom.to_str().unwrap(), "-o"])
            .arg(&out),
    );
    assert!(
        err.contains("already exists (use --force to replace it)"),
        "{err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    ninja()
        .args(["normalize", rom.to_str().unwrap(), "--force", "-o"])
        .arg(&out)
        .assert()
        .success();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        read_fixture("roms/n64/bigbass1997_minimal.z64")
    );
}

#[test]
fn an_input_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let rom = dir.path().join("game.smc");
    std::fs::copy(fixture("roms/snes/cputest-basic.smc"), &rom).unwrap();
    let err = stderr_of(
        ninja()
            .args(["normalize", "--force", "-o"])
            .arg(&rom)
            .arg(&rom),
    );
    assert!(err.contains("is also an input"), "{err}");
    assert_eq!(
        std::fs::read(&rom).unwrap(),
        read_fixture("roms/snes/cputest-basic.smc")
    );
}

#[test]
fn bad_inputs_fail_clearly_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.sfc");
    std::fs::write(&empty, b"").unwrap();
    let tiny = dir.path().join("tiny.bin");
    std::fs::write(&tiny, b"abc").unwrap();
    let unif = dir.path().join("broken.unf");
    let mut bytes = b"UNIF".to_vec();
    bytes.resize(0x20, 0);
    bytes.extend_from_slice(b"PRG0\x00\x40\x00\x00abc");
    std::fs::write(&unif, &bytes).unwrap();
    let ines = dir.path().join("short.nes");
    std::fs::write(&ines, b"NES\x1a\x01\x01").unwrap();

    let cases: Vec<(&std::path::Path, &[&str], String)> = vec![
        (
            &empty,
            &["--system", "snes"],
            format!("{}: the file is empty", empty.display()),
        ),
        (
            &tiny,
            &["--system", "snes"],
            format!(
                "{}: too small for a SNES image: 3 bytes, and at least 32768 are needed",
                tiny.display()
            ),
        ),
        (
            &unif,
            &["--system", "nes"],
            format!(
                "{}: UNIF chunk 'PRG0' at offset 0x20 claims 16384 bytes but only 3 remain: the file is truncated or corrupt",
                unif.display()
            ),
        ),
        (
            &ines,
            &[],
            format!(
                "{}: too small for a iNES image: 6 bytes, and at least 16 are needed",
                ines.display()
            ),
        ),
        (
            dir.path(),
            &[],
            format!("{}: is a directory, not a file", dir.path().display()),
        ),
    ];
    for (input, extra, expected) in cases {
        let out = dir.path().join("out.bin");
        let err = stderr_of(
            ninja()
                .arg("normalize")
                .arg(input)
                .args(extra)
                .arg("-o")
                .arg(&out),
        );
        assert_eq!(err.trim_end(), format!("ninja-fs: {expected}"));
        assert!(
            !out.exists(),
            "an output was written for {}",
            input.display()
        );
    }
}

#[test]
fn unknown_system_word_is_explained() {
    let err = stderr_of(ninja().args(["info", "x", "--system", "psx"]));
    assert!(
        err.contains("unknown system 'psx': use one of raw nes fds snes n64 gb sms mega pce lynx"),
        "{err}"
    );
}

#[test]
fn info_table_shows_what_was_found() {
    let out = ninja()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["info", "tests/fixtures/roms/snes/cputest-basic.ufo"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    for line in [
        "tests/fixtures/roms/snes/cputest-basic.ufo",
        "  system               snes (Super NES / Super Famicom)",
        "  header               copier (Super UFO), 512 bytes, dropped from the deinterleaved image",
        "  interleave           none",
        "  title                65C816 TEST",
        "  map mode             0x30 (LoROM, FastROM)",
        "  checksum             0xffff (stored in the header)",
        "  checksum computed    0x6477 (the sum of the image's bytes)",
        "  checksum valid       no, stored != computed",
        "  raw size             262656 bytes",
        "  normalized size      262144 bytes (256 KiB)",
        "  deinterleaved size   262144 bytes (256 KiB)",
        "  normalized crc32     4de40f6b",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[test]
fn info_json_is_stable() {
    let out = ninja()
        .args([
            "info",
            "--json",
            fixture("roms/n64/bigbass1997_minimal.v64")
                .to_str()
                .unwrap(),
            fixture("roms/gb/sdcc_makebin.gbc").to_str().unwrap(),
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let n64 = &json[0];
    assert_eq!(n64["system"], "n64");
    assert_eq!(n64["system_code"], 4);
    assert_eq!(n64["byte_order"], "byte-swapped (v64)");
    assert_eq!(n64["header"], serde_json::Value::Null);
    assert_eq!(n64["sizes"]["raw"], 1052672);
    assert_eq!(n64["sizes"]["normalized"], 1052672);
    assert_eq!(n64["normalized"]["crc32"], "e688b23e");
    let gb = &json[1];
    assert_eq!(gb["system"], "gb");
    assert_eq!(gb["internal"]["color"], "Game Boy Color enhanced");
    assert_eq!(gb["internal"]["header_checksum_valid"], true);
    assert_eq!(gb["normalized"]["crc32"], "c72fa15b");
}

#[test]
fn info_shows_an_xdelta3_patchs_file_names_as_text() {
    let patch = fixture("patches/nes15_ntsc2pal.xdelta3-default.vcdiff");
    let out = ninja().arg("info").arg(&patch).assert().success();
    assert_eq!(
        String::from_utf8_lossy(&out.get_output().stdout),
        format!(
            "{}\n\
             \x20 format                 VCDIFF\n\
             \x20 windows                1\n\
             \x20 secondary compression  LZMA\n\
             \x20 target name            nes15-PAL.nes\n\
             \x20 source name            nes15-NTSC.nes\n\
             \x20 target size            28688 bytes\n",
            patch.display()
        )
    );
}

#[test]
fn info_escapes_file_names_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    if let Err(e) = std::process::Command::new("xdelta3").arg("-V").output() {
        println!(
            "skipped: xdelta3 is not on PATH ({e}); install Debian's xdelta3 to run this test"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A Latin-1 name, as an old disk may hold: byte 0xE9 alone is not UTF-8.
    let source = std::ffi::OsStr::from_bytes(b"caf\xe9.nes");
    let target = "Zelda (PAL).nes";
    std::fs::copy(fixture("roms/nes/nes15-NTSC.nes"), dir.path().join(source)).unwrap();
    std::fs::copy(fixture("roms/nes/nes15-PAL.nes"), dir.path().join(target)).unwrap();
    let status = std::process::Command::new("xdelta3")
        .current_dir(dir.path())
        .args(["-e", "-S", "none", "-s"])
        .arg(source)
        .args([target, "out.vcdiff"])
        .status()
        .unwrap();
    assert!(status.success(), "xdelta3 -e failed");
    let patch = dir.path().join("out.vcdiff");

    let out = ninja().arg("info").arg(&patch).assert().success();
    assert_eq!(
        String::from_utf8_lossy(&out.get_output().stdout),
        format!(
            "{}\n\
             \x20 format       VCDIFF\n\
             \x20 windows      1\n\
             \x20 target name  Zelda (PAL).nes\n\
             \x20 source name  caf\\xe9.nes\n\
             \x20 target size  28688 bytes\n",
            patch.display()
        )
    );

    let out = ninja()
        .args(["info", "--json"])
        .arg(&patch)
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json[0]["patch"]["format"], "VCDIFF");
    assert_eq!(
        json[0]["patch"]["details"],
        serde_json::json!([
            ["format", "VCDIFF"],
            ["windows", "1"],
            ["target name", "Zelda (PAL).nes"],
            ["source name", "caf\\xe9.nes"],
            ["target size", "28688 bytes"],
        ])
    );
}
