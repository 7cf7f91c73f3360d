//! `apply --revert` and reverted variants in the mount, bit-reversed
//! TurboGrafx-16 dumps, and plain ExHiROM images: through the command line
//! and through the views layer (the filesystem core without FUSE).

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::{fixture, names, ninja, read_all, read_fixture, stderr_of};
use ninja_fs::patch::Limits;
use ninja_fs::views::NinjaFs;

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn mount(root: &Path) -> NinjaFs {
    NinjaFs::new(root, 64 << 20, Limits::default()).unwrap()
}

/// Runs `ninja-fs apply ARGS -o -` and returns what it wrote.
fn apply_stdout(args: &[&OsStr]) -> Vec<u8> {
    let out = ninja()
        .arg("apply")
        .args(args)
        .args(["-o", "-"])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

// ---- PPF 3.0 undo data ----

/// A PPF 3.0 patch (BIN, no block check) with undo data: each record is
/// (offset, new bytes, original bytes), as PPF-O-Matic writes them.
fn ppf3_with_undo(records: &[(u64, &[u8], &[u8])]) -> Vec<u8> {
    let mut bytes = b"PPF30\x02".to_vec();
    bytes.extend_from_slice(&[b' '; 50]);
    bytes.extend_from_slice(&[0, 0, 1, 0]);
    for (offset, data, undo) in records {
        assert_eq!(data.len(), undo.len());
        bytes.extend_from_slice(&offset.to_le_bytes());
        bytes.push(data.len() as u8);
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(undo);
    }
    bytes
}

/// cc65's hello world, and a PPF with undo data that changes its text.
fn hello_and_ppf() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let original = read_fixture("roms/pce/cc65_hello.pce");
    let mut patched = original.clone();
    let mut records = Vec::new();
    for (offset, new) in [(0x100usize, &b"NINJA"[..]), (0x1F00, &b"\x42\x43"[..])] {
        let old = original[offset..offset + new.len()].to_vec();
        assert_ne!(old, new);
        patched[offset..offset + new.len()].copy_from_slice(new);
        records.push((offset as u64, new.to_vec(), old));
    }
    let borrowed: Vec<(u64, &[u8], &[u8])> = records
        .iter()
        .map(|(offset, new, old)| (*offset, &new[..], &old[..]))
        .collect();
    (original, patched, ppf3_with_undo(&borrowed))
}

#[test]
fn apply_revert_undoes_a_ppf_with_undo_data_and_plain_apply_never_does() {
    let dir = tempfile::tempdir().unwrap();
    let (original, patched, ppf) = hello_and_ppf();
    let rom = dir.path().join("Hello.pce");
    let hacked = dir.path().join("Hello (hacked).pce");
    let patch = dir.path().join("Hello.ppf");
    std::fs::write(&rom, &original).unwrap();
    std::fs::write(&hacked, &patched).unwrap();
    std::fs::write(&patch, &ppf).unwrap();

    assert!(apply_stdout(&[rom.as_os_str(), patch.as_os_str()]) == patched);
    // Applied to the patched file, a PPF writes its bytes again: nothing
    // is undone unless asked.
    assert!(apply_stdout(&[hacked.as_os_str(), patch.as_os_str()]) == patched);
    let revert = OsStr::new("--revert");
    assert!(apply_stdout(&[revert, hacked.as_os_str(), patch.as_os_str()]) == original);

    // The original holds other bytes at the records: nothing to undo.
    let err = stderr_of(
        ninja()
            .args(["apply", "--revert"])
            .arg(&rom)
            .arg(&patch)
            .args(["-o", "-"]),
    );
    assert_eq!(
        err,
        format!(
            "ninja-fs: {rom} does not match {patch}: the patch expects at its records the bytes \
             it writes (a file it patched); this file's image (raw, normalized and deinterleaved \
             alike) has other bytes there\n",
            rom = rom.display(),
            patch = patch.display()
        )
    );
    // --ignore-checksum undoes it anyway.
    assert!(
        apply_stdout(&[
            revert,
            OsStr::new("--ignore-checksum"),
            rom.as_os_str(),
            patch.as_os_str()
        ]) == original
    );
}

#[test]
fn apply_revert_refuses_formats_without_original_bytes_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ntsc = fixture("roms/nes/nes15-NTSC.nes");
    let pal = fixture("roms/nes/nes15-PAL.nes");
    let cases = [
        (
            "patches/nes15_ntsc2pal.flips.ips",
            "IPS patch cannot be used here: IPS carries no original bytes, so it cannot be reverted; keep the original ROM",
        ),
        (
            "patches/nes15_ntsc2pal.flips-delta.bps",
            "BPS patch cannot be used here: BPS builds the new file from the original's bytes without carrying them, so it cannot be reverted; keep the original ROM",
        ),
        (
            "patches/nes15_ntsc2pal.xdelta3-plain.vcdiff",
            "VCDIFF patch cannot be used here: VCDIFF carries no original bytes, so it cannot be reverted; keep the original ROM",
        ),
        (
            "patches/nes15_ntsc2pal.ucon64.ppf",
            "PPF patch cannot be used here: this PPF 2.0 patch carries no undo data, so it cannot be reverted (only a PPF 3.0 made with undo data can be); keep the original ROM",
        ),
    ];
    for (patch, reason) in cases {
        let patch = fixture(patch);
        let out = dir.path().join("out.nes");
        let err = stderr_of(
            ninja()
                .args(["apply", "--revert"])
                .arg(&pal)
                .arg(&patch)
                .arg("-o")
                .arg(&out),
        );
        assert_eq!(err, format!("ninja-fs: {}: {reason}\n", patch.display()));
        assert!(!out.exists(), "nothing is written");
    }
    // A UPS undoes to its source from its target, as a NINJA2 patch does.
    for patch in [
        "patches/nes15_ntsc2pal.rompatcherjs.ups",
        "patches/nes15_ntsc2pal.rompatcherjs.rup",
    ] {
        let patch = fixture(patch);
        let back = apply_stdout(&[OsStr::new("--revert"), pal.as_os_str(), patch.as_os_str()]);
        assert!(
            back == read_fixture("roms/nes/nes15-NTSC.nes"),
            "{}",
            patch.display()
        );
        // Its source is no file it patched.
        let err = stderr_of(
            ninja()
                .args(["apply", "--revert"])
                .arg(&ntsc)
                .arg(&patch)
                .args(["-o", "-"]),
        );
        assert!(
            err.starts_with(&format!(
                "ninja-fs: {} does not match {}: the patch expects a target with ",
                ntsc.display(),
                patch.display()
            )),
            "{err}"
        );
    }
}

#[test]
fn apply_revert_undoes_a_stack_in_the_order_given() {
    let pal = fixture("roms/nes/nes15-PAL.nes");
    let dir = tempfile::tempdir().unwrap();
    // PAL, then a PPF with undo data over it: undone last step first.
    let pal_bytes = read_fixture("roms/nes/nes15-PAL.nes");
    let mut hacked = pal_bytes.clone();
    hacked[0x20] ^= 0xFF;
    let ppf = ppf3_with_undo(&[(0x20, &[hacked[0x20]], &[pal_bytes[0x20]])]);
    let ppf_path = dir.path().join("step2.ppf");
    std::fs::write(&ppf_path, &ppf).unwrap();
    let hacked_path = dir.path().join("hacked.nes");
    std::fs::write(&hacked_path, &hacked).unwrap();
    let ups = fixture("patches/nes15_ntsc2pal.rompatcherjs.ups");
    let back = apply_stdout(&[
        OsStr::new("--revert"),
        hacked_path.as_os_str(),
        ppf_path.as_os_str(),
        ups.as_os_str(),
    ]);
    assert!(back == read_fixture("roms/nes/nes15-NTSC.nes"));
    assert!(pal.exists());
}

#[test]
fn apply_revert_undoes_a_multi_file_patch_in_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("back");
    ninja()
        .args(["apply", "--revert"])
        .arg(fixture("rup-vectors/multifile_B"))
        .arg(fixture("rup-vectors/multifile_dir.rup"))
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    for name in ["a.bin", "b.bin"] {
        assert_eq!(
            std::fs::read(out.join(name)).unwrap(),
            read_fixture(&format!("rup-vectors/multifile_A/{name}")),
            "{name}"
        );
    }
    // NINJA's patch leaves sub/ out: the file is copied as it is.
    assert_eq!(
        std::fs::read(out.join("sub/c.bin")).unwrap(),
        read_fixture("rup-vectors/multifile_B/sub/c.bin")
    );
    // Its source folder is no folder it patched.
    let err = stderr_of(
        ninja()
            .args(["apply", "--revert"])
            .arg(fixture("rup-vectors/multifile_A"))
            .arg(fixture("rup-vectors/multifile_dir.rup"))
            .arg("-o")
            .arg(dir.path().join("never")),
    );
    assert!(err.contains("the patch expects a target with MD5"), "{err}");
    assert!(!dir.path().join("never").exists());
}

#[test]
fn the_mount_shows_a_ppf_with_undo_data_reverted_where_the_rom_holds_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (original, patched, ppf) = hello_and_ppf();
    write(dir.path(), "clean/Hello.pce", &original);
    write(dir.path(), "clean/Hello.ppf", &ppf);
    write(dir.path(), "hacked/Hello.pce", &patched);
    write(dir.path(), "hacked/Hello.ppf", &ppf);
    let fs = mount(dir.path());

    assert_eq!(names(&fs, "patched/clean"), ["Hello [Hello].pce"]);
    assert!(read_all(&fs, "patched/clean/Hello [Hello].pce") == patched);
    assert_eq!(names(&fs, "patched/hacked"), ["Hello [Hello reverted].pce"]);
    assert!(read_all(&fs, "patched/hacked/Hello [Hello reverted].pce") == original);

    let info = String::from_utf8(read_all(&fs, "info/hacked/Hello.pce.txt")).unwrap();
    assert!(
        info.contains(
            "  [Hello reverted] hacked/Hello.ppf: beside the ROM with its name; the ROM holds \
             the bytes it writes at every record, so its undo data un-patches it\n    \
             shown as patched/hacked/Hello [Hello reverted].pce\n"
        ),
        "{info}"
    );

    // A PPF without undo data beside a patched ROM stays a forward variant.
    let no_undo = ninja_fs::patch::ppf::create(&original, &patched).unwrap();
    write(dir.path(), "hacked/Hello.ppf", &no_undo);
    let fs = mount(dir.path());
    assert_eq!(names(&fs, "patched/hacked"), ["Hello [Hello].pce"]);
    assert!(read_all(&fs, "patched/hacked/Hello [Hello].pce") == patched);
}

// ---- bit-reversed TurboGrafx-16 dumps ----

/// cc65's hello world as a US TurboGrafx-16 dumper reads it: every byte's
/// bits reversed.
fn reversed_hello() -> Vec<u8> {
    read_fixture("roms/pce/cc65_hello.pce")
        .iter()
        .map(|byte| byte.reverse_bits())
        .collect()
}

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

#[test]
fn a_bit_reversed_dump_normalizes_to_the_plain_image_through_the_library() {
    use ninja_fs::system::{self, SystemType};
    let plain = read_fixture("roms/pce/cc65_hello.pce");
    let reversed = reversed_hello();
    let layout = system::identify(Some("Hello (U).pce"), &reversed, None).unwrap();
    assert_eq!(layout.system, SystemType::Pce);
    assert!(layout.bits_reversed);
    assert_eq!(
        layout.notes,
        ["bit order reversed (US TurboGrafx-16 dump): undone"]
    );
    let normalized = system::normalize(&reversed, &layout).unwrap();
    assert!(normalized.as_ref() == plain.as_slice());
    assert!(system::restore(&normalized, &layout).unwrap().as_ref() == plain.as_slice());
    // The plain dump is left as it is.
    let layout = system::identify(Some("Hello (J).pce"), &plain, None).unwrap();
    assert!(!layout.bits_reversed);
    assert!(layout.notes.is_empty());

    // And in the mount's views.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "j/Hello.pce", &plain);
    write(dir.path(), "u/Hello.pce", &reversed);
    let fs = mount(dir.path());
    for view in ["normalized", "deinterleaved"] {
        assert!(
            read_all(&fs, &format!("{view}/j/Hello.pce")) == plain,
            "{view}"
        );
        assert!(
            read_all(&fs, &format!("{view}/u/Hello.pce")) == plain,
            "{view}"
        );
    }
    let info = String::from_utf8(read_all(&fs, "info/u/Hello.pce.txt")).unwrap();
    assert!(
        info.contains("  note                bit order reversed (US TurboGrafx-16 dump): undone\n"),
        "{info}"
    );
}

#[test]
fn info_and_the_commands_undo_a_bit_reversed_dump() {
    let dir = tempfile::tempdir().unwrap();
    let plain_path = fixture("roms/pce/cc65_hello.pce");
    let reversed_path = dir.path().join("Hello (U).pce");
    std::fs::write(&reversed_path, reversed_hello()).unwrap();

    let plain_info = info_text(&plain_path, &[]);
    let reversed_info = info_text(&reversed_path, &[]);
    assert!(!plain_info.contains("bit order"), "{plain_info}");
    assert!(
        reversed_info.contains("bit order reversed (US TurboGrafx-16 dump): undone\n"),
        "{reversed_info}"
    );
    // The same normalized image: the same digests.
    let digests = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.trim_start().starts_with("normalized "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(digests(&plain_info).len(), 4, "{plain_info}");
    assert_eq!(digests(&plain_info), digests(&reversed_info));

    // --system pce on a name that says nothing finds it too.
    let bin = dir.path().join("dump.bin");
    std::fs::write(&bin, reversed_hello()).unwrap();
    let bin_info = info_text(&bin, &["--system", "pce"]);
    assert!(bin_info.contains("bit order reversed"), "{bin_info}");
    for command in ["normalize", "deinterleave"] {
        let out = ninja()
            .arg(command)
            .arg(&bin)
            .args(["--system", "pce", "-o", "-"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        assert!(out == read_fixture("roms/pce/cc65_hello.pce"), "{command}");
    }
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
