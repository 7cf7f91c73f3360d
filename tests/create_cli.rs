//! `ninja-fs create` and `ninja-fs info` on patches, as a user meets them:
//! made patches apply to their targets, NINJA 2.0's own patches are made
//! byte for byte, folders, metadata, refusals.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use common::{fixture, ninja, read_fixture, stderr_of};
use ninja_fs::patch::rup;

fn stdout_of(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.assert().success().get_output().clone();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const PAIRS: [(&str, &str); 3] = [
    ("roms/nes/nes15-NTSC.nes", "roms/nes/nes15-PAL.nes"),
    (
        "roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb",
        "roms/gb/mooneye_emulator-only_mbc1_rom_1Mb.gb",
    ),
    ("roms/snes/cputest-basic.sfc", "roms/snes/cputest-full.sfc"),
];

#[test]
fn every_format_made_here_applies_to_its_target() {
    let dir = tempfile::tempdir().unwrap();
    for (source, target) in PAIRS {
        for format in [
            "rup", "bps", "ips", "ups", "ppf", "aps", "gdiff", "pat", "ffp", "fc",
        ] {
            let patch = dir.path().join(format!("made.{format}"));
            let size_changes = read_fixture(source).len() != read_fixture(target).len();
            if size_changes && ["pat", "ffp", "fc"].contains(&format) {
                let err = stderr_of(
                    ninja()
                        .arg("create")
                        .arg(fixture(source))
                        .arg(fixture(target))
                        .arg("-o")
                        .arg(&patch)
                        .arg("--force"),
                );
                let name = match format {
                    "fc" => "fc /b".to_string(),
                    other => other.to_uppercase(),
                };
                assert_eq!(
                    err,
                    format!(
                        "ninja-fs: cannot create the {name} patch: text patches change \
                         bytes in place and cannot turn a 65536-byte file into a 131072-byte one\n"
                    )
                );
                continue;
            }
            ninja()
                .arg("create")
                .arg(fixture(source))
                .arg(fixture(target))
                .arg("-o")
                .arg(&patch)
                .arg("--force")
                .assert()
                .success();
            let out = stdout_of(
                ninja()
                    .arg("apply")
                    .arg(fixture(source))
                    .arg(&patch)
                    .args(["-o", "-"]),
            );
            assert!(out == read_fixture(target), "{format}: {source}");
        }
        // --format wins over the name.
        let patch = dir.path().join("made.patch");
        ninja()
            .arg("create")
            .arg(fixture(source))
            .arg(fixture(target))
            .args(["--format", "bps", "--force", "-o"])
            .arg(&patch)
            .assert()
            .success();
        assert!(std::fs::read(&patch).unwrap().starts_with(b"BPS1"));
    }
}

#[test]
fn a_rup_made_from_a_copier_headered_snes_is_the_headerless_patch() {
    // NINJA's type 3 normalizes both: the .smc and the .sfc make one patch.
    let dir = tempfile::tempdir().unwrap();
    let from_smc = dir.path().join("smc.rup");
    let from_sfc = dir.path().join("sfc.rup");
    for (source, out) in [
        ("roms/snes/cputest-basic.smc", &from_smc),
        ("roms/snes/cputest-basic.sfc", &from_sfc),
    ] {
        ninja()
            .arg("create")
            .arg(fixture(source))
            .arg(fixture("roms/snes/cputest-full.sfc"))
            .arg("-o")
            .arg(out)
            .assert()
            .success();
    }
    let bytes = std::fs::read(&from_smc).unwrap();
    assert_eq!(bytes, std::fs::read(&from_sfc).unwrap());
    let patch = rup::parse(&bytes, &Default::default()).unwrap();
    assert_eq!(patch.entries[0].system_type, 3);
    assert_eq!(patch.entries[0].source_size, 262_144);
}

/// (vector stem, system word) for every vector with src and tgt files.
const VECTORS: [(&str, &str); 10] = [
    ("gb", "gb"),
    ("lynx", "lynx"),
    ("n64", "n64"),
    ("nes_ines_grow", "nes"),
    ("nes_ines_shrink", "nes"),
    ("nes_unif", "nes"),
    ("pce", "pce"),
    ("raw_grow_5to10", "raw"),
    ("raw_grow_offset0", "raw"),
    ("snes_lorom", "snes"),
];

/// The vector file `stem.role` or `stem.role.<ext>`.
fn vector_file(stem: &str, role: &str) -> PathBuf {
    let dir = fixture("rup-vectors");
    let exact = format!("{stem}.{role}");
    let prefixed = format!("{stem}.{role}.");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name == exact || name.starts_with(&prefixed)
        })
        .collect();
    assert_eq!(found.len(), 1, "{stem}.{role}");
    found.pop().unwrap()
}

#[test]
fn rup_made_here_is_byte_identical_to_ninja_2() {
    let dir = tempfile::tempdir().unwrap();
    for (stem, system) in VECTORS {
        let out = dir.path().join(format!("{stem}.rup"));
        ninja()
            .arg("create")
            .arg(vector_file(stem, "src"))
            .arg(vector_file(stem, "tgt"))
            .args(["--system", system, "-o"])
            .arg(&out)
            .assert()
            .success();
        let made = std::fs::read(&out).unwrap();
        let original = read_fixture(&format!("rup-vectors/{stem}.rup"));
        assert!(made == original, "{stem}: differs from NINJA 2.0's patch");
        // And to stdout, the same bytes.
        let stdout = stdout_of(
            ninja()
                .arg("create")
                .arg(vector_file(stem, "src"))
                .arg(vector_file(stem, "tgt"))
                .args(["--system", system, "--format", "rup", "-o", "-"]),
        );
        assert!(stdout == original, "{stem}: stdout");
    }
}

#[test]
fn detected_systems_make_the_same_rups_where_the_name_tells() {
    // Without --system the extension and content decide; for these the
    // detection agrees with the type NINJA 2.0 was given.
    for (stem, _) in VECTORS.iter().filter(|(stem, _)| !stem.starts_with("raw_")) {
        let stdout = stdout_of(
            ninja()
                .arg("create")
                .arg(vector_file(stem, "src"))
                .arg(vector_file(stem, "tgt"))
                .args(["--format", "rup", "-o", "-"]),
        );
        assert!(
            stdout == read_fixture(&format!("rup-vectors/{stem}.rup")),
            "{stem}"
        );
    }
}

/// Every file under `dir` with its bytes, by relative path.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for name in ninja_fs::apply::list_files(dir).unwrap() {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        out.push((name, bytes));
    }
    out
}

#[test]
fn a_folder_patch_takes_the_top_level_files_as_ninja_did() {
    let dir = tempfile::tempdir().unwrap();
    let a = fixture("rup-vectors/multifile_A");
    let b = fixture("rup-vectors/multifile_B");
    let patch = dir.path().join("out.rup");
    ninja()
        .arg("create")
        .arg(&a)
        .arg(&b)
        .arg("-o")
        .arg(&patch)
        .assert()
        .success();
    // NINJA 2.0's own patch for these folders, byte for byte: sub/c.bin
    // differs but is not in it.
    assert_eq!(
        std::fs::read(&patch).unwrap(),
        read_fixture("rup-vectors/multifile_dir.rup")
    );

    // --recursive is for folders only.
    let err = stderr_of(
        ninja()
            .arg("create")
            .arg("--recursive")
            .arg(fixture("rup-vectors/multifile_A/a.bin"))
            .arg(fixture("rup-vectors/multifile_B/a.bin"))
            .arg("-o")
            .arg(dir.path().join("one.rup")),
    );
    assert_eq!(
        err,
        "ninja-fs: --recursive is for patches between two folders\n"
    );
    assert!(!dir.path().join("one.rup").exists());
}

#[test]
fn a_recursive_folder_patch_reproduces_every_file_and_extends_ninjas_by_subfolders() {
    let dir = tempfile::tempdir().unwrap();
    let a = fixture("rup-vectors/multifile_A");
    let b = fixture("rup-vectors/multifile_B");
    let patch = dir.path().join("out.rup");
    ninja()
        .arg("create")
        .arg("--recursive")
        .arg(&a)
        .arg(&b)
        .arg("-o")
        .arg(&patch)
        .assert()
        .success();
    let made = std::fs::read(&patch).unwrap();

    // NINJA 2.0 did not descend into sub/: ours is its patch with the
    // sub/c.bin entry before END, made exactly as a one-entry patch.
    let ninja2 = read_fixture("rup-vectors/multifile_dir.rup");
    let c_source = read_fixture("rup-vectors/multifile_A/sub/c.bin");
    let c_target = read_fixture("rup-vectors/multifile_B/sub/c.bin");
    assert_ne!(c_source, c_target);
    let c_only = rup::create(
        &[rup::CreateEntry {
            name: Some("sub/c.bin"),
            system_type: 0,
            source: &c_source,
            target: &c_target,
        }],
        &rup::RupInfo::default(),
    )
    .unwrap();
    let mut expected = ninja2[..ninja2.len() - 1].to_vec();
    assert_eq!(ninja2.last(), Some(&0), "NINJA's patch ends with END");
    expected.extend_from_slice(&c_only[0x800..]);
    assert_eq!(made, expected);
    assert_eq!(made.len(), 2211);

    // Applied to A, it gives B: every file.
    let out_dir = dir.path().join("patched");
    ninja()
        .arg("apply")
        .arg(&a)
        .arg(&patch)
        .arg("-o")
        .arg(&out_dir)
        .assert()
        .success();
    assert_eq!(tree(&out_dir), tree(&b));

    // NINJA's own patch gives B except for the file it skipped.
    let ninja_out = dir.path().join("patched-by-ninja2");
    ninja()
        .arg("apply")
        .arg(&a)
        .arg(fixture("rup-vectors/multifile_dir.rup"))
        .arg("-o")
        .arg(&ninja_out)
        .assert()
        .success();
    let mut expected_tree = tree(&b);
    for (name, bytes) in &mut expected_tree {
        if name == "sub/c.bin" {
            *bytes = c_source.clone();
        }
    }
    assert_eq!(tree(&ninja_out), expected_tree);

    // Applied to B, each entry goes in reverse: A again.
    let back = dir.path().join("back");
    ninja()
        .arg("apply")
        .arg(&b)
        .arg(&patch)
        .arg("-o")
        .arg(&back)
        .assert()
        .success();
    assert_eq!(tree(&back), tree(&a));

    // An existing output folder is refused without --force.
    let err = stderr_of(
        ninja()
            .arg("apply")
            .arg(&a)
            .arg(&patch)
            .arg("-o")
            .arg(&out_dir),
    );
    assert_eq!(
        err,
        format!(
            "ninja-fs: {}: already exists (use --force to replace it)\n",
            out_dir.display()
        )
    );
    ninja()
        .arg("apply")
        .arg(&a)
        .arg(&patch)
        .arg("--force")
        .arg("-o")
        .arg(&out_dir)
        .assert()
        .success();
    assert_eq!(tree(&out_dir), tree(&b));

    // Folders make only rup patches; a folder and a file make none.
    let err = stderr_of(
        ninja()
            .arg("create")
            .arg(&a)
            .arg(&b)
            .arg("-o")
            .arg(dir.path().join("x.bps")),
    );
    assert_eq!(
        err,
        "ninja-fs: patches between folders are rup patches; BPS holds one file\n"
    );
    let err = stderr_of(
        ninja()
            .arg("create")
            .arg(&a)
            .arg(fixture("rup-vectors/in16.bin"))
            .arg("-o")
            .arg(dir.path().join("x.rup")),
    );
    assert_eq!(
        err,
        "ninja-fs: ORIGINAL and MODIFIED must both be files or both be folders\n"
    );
}

#[test]
fn metadata_is_written_and_shown_by_info() {
    let dir = tempfile::tempdir().unwrap();
    let patch = dir.path().join("meta.rup");
    ninja()
        .arg("create")
        .arg(fixture("roms/nes/nes15-NTSC.nes"))
        .arg(fixture("roms/nes/nes15-PAL.nes"))
        .args([
            "--title",
            "nes15 PAL",
            "--author",
            "Zoë",
            "--version",
            "1.0",
            "--genre",
            "Puzzle",
            "--language",
            "English",
            "--date",
            "20240102",
            "--website",
            "https://example.org/nes15",
            "--description",
            "First line\nSecond line",
            "-o",
        ])
        .arg(&patch)
        .assert()
        .success();
    let bytes = std::fs::read(&patch).unwrap();
    // The header as NINJA 2.0 lays it out: UTF-8, NUL-padded fields, the
    // line break as the two characters \n.
    assert_eq!(&bytes[..7], b"NINJA2\x01");
    let field = |at: usize, len: usize| {
        let raw = &bytes[at..at + len];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(len);
        String::from_utf8(raw[..end].to_vec()).unwrap()
    };
    assert_eq!(field(0x007, 84), "Zoë");
    assert_eq!(field(0x05B, 11), "1.0");
    assert_eq!(field(0x066, 256), "nes15 PAL");
    assert_eq!(field(0x166, 48), "Puzzle");
    assert_eq!(field(0x196, 48), "English");
    assert_eq!(field(0x1C6, 8), "20240102");
    assert_eq!(field(0x1CE, 512), "https://example.org/nes15");
    assert_eq!(field(0x3CE, 1074), "First line\\nSecond line");

    let text = String::from_utf8(stdout_of(ninja().arg("info").arg(&patch))).unwrap();
    let expected = format!(
        "{}
  format        RUP
  title         nes15 PAL
  author        Zoë
  version       1.0
  genre         Puzzle
  language      English
  date          20240102
  website       https://example.org/nes15
  description   First line
    Second line
  entries       1
  entry 1       (single file), system nes: 28672 -> 28672 bytes, 10 XOR records
    source md5  {}
    target md5  {}
",
        patch.display(),
        common::md5_hex(&read_fixture("roms/nes/nes15-NTSC.nes")[16..]),
        common::md5_hex(&read_fixture("roms/nes/nes15-PAL.nes")[16..]),
    );
    assert_eq!(text, expected);

    let json: serde_json::Value =
        serde_json::from_slice(&stdout_of(ninja().arg("info").arg("--json").arg(&patch))).unwrap();
    let details = json[0]["patch"]["details"].as_array().unwrap();
    assert!(details.contains(&serde_json::json!([
        "description",
        "First line\n    Second line"
    ])));
    assert!(details.contains(&serde_json::json!(["author", "Zoë"])));

    // The patch applies like one without metadata.
    let out = stdout_of(
        ninja()
            .arg("apply")
            .arg(fixture("roms/nes/nes15-NTSC.nes"))
            .arg(&patch)
            .args(["-o", "-"]),
    );
    assert!(out == read_fixture("roms/nes/nes15-PAL.nes"));
}

#[test]
fn metadata_that_does_not_fit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let patch = dir.path().join("meta.rup");
    let create = |extra: &[&str]| {
        let mut cmd = ninja();
        cmd.arg("create")
            .arg(fixture("rup-vectors/raw_grow_5to10.src"))
            .arg(fixture("rup-vectors/raw_grow_5to10.tgt"))
            .args(extra)
            .arg("-o")
            .arg(&patch);
        cmd
    };
    let err = stderr_of(&mut create(&["--version", "123456789012"]));
    assert_eq!(
        err,
        "ninja-fs: cannot create the RUP patch: the version is 12 bytes long; its field holds at most 11\n"
    );
    assert!(!patch.exists());
    // Exactly the field's size fits (no terminator needed).
    create(&["--version", "12345678901"]).assert().success();
    std::fs::remove_file(&patch).unwrap();

    let err = stderr_of(ninja().args(["create", "a.bin", "b.bin", "-o", "x.ips", "--title", "T"]));
    assert_eq!(
        err,
        "ninja-fs: --title, --author and the other metadata options are for rup patches, not IPS\n"
    );
    let err = stderr_of(&mut create(&["--format", "ebp"]));
    assert!(
        err.contains(
            "unknown patch format 'ebp': use one of rup bps ips ups ppf aps gdiff pat ffp fc"
        ),
        "{err}"
    );
    let err = stderr_of(
        ninja()
            .arg("create")
            .arg(fixture("rup-vectors/raw_grow_5to10.src"))
            .arg(fixture("rup-vectors/raw_grow_5to10.tgt"))
            .arg("-o")
            .arg(dir.path().join("patch.xyz")),
    );
    assert_eq!(
        err,
        format!(
            "ninja-fs: {}: cannot tell the patch format from the name; say --format rup, bps, ips, ups, ppf, aps, gdiff, vcdiff, pat, ffp, fc, ips32 or bdf\n",
            dir.path().join("patch.xyz").display()
        )
    );
}

#[test]
fn info_shows_format_sizes_and_checksums_of_patches() {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = String::from_utf8(stdout_of(ninja().current_dir(root).args([
        "info",
        "tests/fixtures/patches/snes_cputest_basic2full.flips-delta.bps",
        "tests/fixtures/patches/mbc1_512k_to_1M.rompatcherjs.ups",
        "tests/fixtures/patches/nes15_ntsc2pal.flips.ips",
        "tests/fixtures/rup-vectors/snes_lorom.rup",
    ])))
    .unwrap();
    assert_eq!(
        text,
        "tests/fixtures/patches/snes_cputest_basic2full.flips-delta.bps
  format           BPS
  actions          6071
  source size      262144 bytes (256 KiB)
  target size      262144 bytes (256 KiB)
  source checksum  CRC32 4de40f6b
  target checksum  CRC32 31ff7f92

tests/fixtures/patches/mbc1_512k_to_1M.rompatcherjs.ups
  format           UPS
  hunks            19
  source size      65536 bytes (64 KiB)
  target size      131072 bytes (128 KiB)
  source checksum  CRC32 f3830969
  target checksum  CRC32 4cabff6a

tests/fixtures/patches/nes15_ntsc2pal.flips.ips
  format   IPS
  records  5

tests/fixtures/rup-vectors/snes_lorom.rup
  format        RUP
  entries       1
  entry 1       (single file), system snes: 131072 -> 131072 bytes, 2 XOR records
    source md5  d650929621845f5a3ec151b87a95c994
    target md5  f1ce52f836fb6a419f59337458cce75c
"
    );

    let json: serde_json::Value =
        serde_json::from_slice(&stdout_of(ninja().current_dir(root).args([
            "info",
            "--json",
            "tests/fixtures/patches/snes_cputest_basic2full.flips-delta.bps",
            "tests/fixtures/rup-vectors/multifile_dir.rup",
            "tests/fixtures/patches/mbc1_512k_to_1M.rompatcherjs.rup",
        ])))
        .unwrap();
    assert_eq!(
        json[0],
        serde_json::json!({
            "file": "tests/fixtures/patches/snes_cputest_basic2full.flips-delta.bps",
            "patch": {
                "format": "BPS",
                "source_size": 262144,
                "target_size": 262144,
                "source_checksum": "CRC32 4de40f6b",
                "target_checksum": "CRC32 31ff7f92",
                "details": [
                    ["format", "BPS"],
                    ["actions", "6071"],
                    ["source size", "262144 bytes (256 KiB)"],
                    ["target size", "262144 bytes (256 KiB)"],
                    ["source checksum", "CRC32 4de40f6b"],
                    ["target checksum", "CRC32 31ff7f92"]
                ]
            }
        })
    );
    // A multi-file patch has no single source or target.
    let multi = &json[1]["patch"];
    assert_eq!(multi["format"], "RUP");
    assert_eq!(multi["source_size"], serde_json::Value::Null);
    assert_eq!(multi["source_checksum"], serde_json::Value::Null);
    assert_eq!(
        multi["details"][2],
        serde_json::json!([
            "entry 1",
            "a.bin, system raw: 11 -> 13 bytes, 1 XOR records"
        ])
    );
    assert_eq!(
        multi["details"][5],
        serde_json::json!(["entry 2", "b.bin, system raw: 4 -> 4 bytes, 1 XOR records"])
    );
    // A single-entry one carries both MD5s and sizes.
    let single = &json[2]["patch"];
    assert_eq!(single["source_size"], 65536);
    assert_eq!(single["target_size"], 131072);
    let source_md5 = common::md5_hex(&read_fixture(
        "roms/gb/mooneye_emulator-only_mbc1_rom_512Kb.gb",
    ));
    let target_md5 = common::md5_hex(&read_fixture(
        "roms/gb/mooneye_emulator-only_mbc1_rom_1Mb.gb",
    ));
    assert_eq!(single["source_checksum"], format!("MD5 {source_md5}"));
    assert_eq!(single["target_checksum"], format!("MD5 {target_md5}"));
}

#[test]
fn create_refuses_an_existing_output_and_never_overwrites_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("a.bin");
    let target = dir.path().join("b.bin");
    std::fs::write(&source, b"hello world").unwrap();
    std::fs::write(&target, b"hello World!").unwrap();
    let patch = dir.path().join("p.ips");
    std::fs::write(&patch, b"keep me").unwrap();
    let err = stderr_of(
        ninja()
            .arg("create")
            .arg(&source)
            .arg(&target)
            .arg("-o")
            .arg(&patch),
    );
    assert_eq!(
        err,
        format!(
            "ninja-fs: {}: already exists (use --force to replace it)\n",
            patch.display()
        )
    );
    assert_eq!(std::fs::read(&patch).unwrap(), b"keep me");
    ninja()
        .arg("create")
        .arg(&source)
        .arg(&target)
        .arg("--force")
        .arg("-o")
        .arg(&patch)
        .assert()
        .success();
    let made = std::fs::read(&patch).unwrap();
    assert_eq!(made, b"PATCH\x00\x00\x06\x00\x06World!EOF".to_vec());
    let err = stderr_of(
        ninja()
            .arg("create")
            .arg(&source)
            .arg(&target)
            .args(["--force", "--format", "ips", "-o"])
            .arg(&target),
    );
    assert_eq!(
        err,
        format!(
            "ninja-fs: {}: is also an input; write the output somewhere else\n",
            target.display()
        )
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"hello World!");
    // To stdout.
    let out = stdout_of(
        ninja()
            .arg("create")
            .arg(&source)
            .arg(&target)
            .args(["--format", "ips", "-o", "-"]),
    );
    assert_eq!(out, made);
}
