//! Famicom Disk System images against DATs that name the `fds.xml` header
//! skipper (No-Intro's FDS DAT): such a DAT hashes the disk without the
//! 16-byte fwNES header, which ninja-fs's normalized FDS image keeps. The
//! disks are made here (no FDS dump is among the fixtures), the DATs
//! written by hand in both formats: through `info --dat`, the views
//! without a mount, the header cache, and a real mount.

mod common;
mod mount_support;

use std::path::Path;

use common::{fs_with_dats, lookup, names, ninja, read_all, stdout_of};
use ninja_fs::digest::Digests;
use ninja_fs::views::NinjaFs;

const SIDE_LEN: usize = 65_500;
const LOGIQX_DAT: &str = "Nintendo - Family Computer Disk System";
const CMP_DAT: &str = "Nintendo - Family Computer Disk System (clrmamepro)";
const HEADERED_DAT: &str = "Nintendo - Family Computer Disk System (Headered)";

/// One disk side as the FDS BIOS reads it: the disk info block (56 bytes:
/// block code 1, `*NINTENDO-HVC*`, maker, a 3-letter game code...), the
/// file amount block (no files), then the gaps, zeros to 65,500 bytes.
fn disk(code: &[u8; 3]) -> Vec<u8> {
    let mut side = vec![0x01];
    side.extend_from_slice(b"*NINTENDO-HVC*");
    side.push(0x00); // maker
    side.extend_from_slice(code);
    side.extend_from_slice(b" \x00\x00\x00"); // type, revision, side, disk
    side.resize(56, 0);
    side.extend_from_slice(&[0x02, 0x00]);
    side.resize(SIDE_LEN, 0);
    side
}

/// `disk` behind a fwNES header for one side.
fn headered(disk: &[u8]) -> Vec<u8> {
    let mut file = b"FDS\x1a\x01".to_vec();
    file.resize(16, 0);
    file.extend_from_slice(disk);
    file
}

fn alpha() -> Vec<u8> {
    disk(b"ALP")
}

fn beta() -> Vec<u8> {
    disk(b"BET")
}

/// A `rom` element's or line's fields for `bytes`.
fn fields(bytes: &[u8]) -> (usize, String, String, String) {
    let d = Digests::of(bytes);
    (bytes.len(), d.crc32_hex(), d.md5_hex(), d.sha1_hex())
}

/// The DATs, by hand: a Logiqx one naming No-Intro's skipper file, a
/// clrmamepro one naming `fds.xml`, and a headered one (no skipper) that
/// lists the whole `.fds` file of Alpha.
fn write_dats(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let (size, crc, md5, sha1) = fields(&alpha());
    let (b_size, b_crc, b_md5, b_sha1) = fields(&beta());
    let logiqx = format!(
        r#"<?xml version="1.0"?>
<datafile>
	<header>
		<name>{LOGIQX_DAT}</name>
		<version>20261207</version>
		<clrmamepro header="No-Intro_FDS.xml"/>
	</header>
	<game name="Alpha Disk (Japan)">
		<rom name="Alpha Disk (Japan).fds" size="{size}" crc="{crc}" md5="{md5}" sha1="{sha1}"/>
	</game>
	<game name="Beta Disk (Japan)">
		<rom name="Beta Disk (Japan).fds" size="{b_size}" crc="{b_crc}" md5="{b_md5}" sha1="{b_sha1}"/>
	</game>
	<game name="Gamma Disk (Japan)">
		<rom name="Gamma Disk (Japan).fds" size="131000" crc="01234567"/>
	</game>
</datafile>
"#
    );
    std::fs::write(dir.join("fds.xml"), logiqx).unwrap();
    let cmp = format!(
        "clrmamepro (\n\tname \"{CMP_DAT}\"\n\tversion 20261207\n\theader \"fds.xml\"\n)\n\n\
         game (\n\tname \"Alpha (Japan)\"\n\trom ( name \"Alpha (Japan).fds\" size {size} crc {crc} md5 {md5} sha1 {sha1} )\n)\n"
    );
    std::fs::write(dir.join("fds-cmp.dat"), cmp).unwrap();
    let (h_size, h_crc, h_md5, h_sha1) = fields(&headered(&alpha()));
    let headered_dat = format!(
        "clrmamepro (\n\tname \"{HEADERED_DAT}\"\n)\n\n\
         game (\n\tname \"Alpha (Japan)\"\n\trom ( name \"Alpha (Japan).fds\" size {h_size} crc {h_crc} md5 {h_md5} sha1 {h_sha1} )\n)\n"
    );
    std::fs::write(dir.join("fds-headered.dat"), headered_dat).unwrap();
}

/// A backing folder: Alpha with its fwNES header, Beta without one, both
/// badly named.
fn backing() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("fds")).unwrap();
    std::fs::write(dir.path().join("fds/a.fds"), headered(&alpha())).unwrap();
    std::fs::write(dir.path().join("fds/b.fds"), beta()).unwrap();
    dir
}

/// The DAT section of Alpha's report: both skipper DATs match its disk,
/// the headered one its whole file (for FDS the normalized image).
fn alpha_dat_section() -> String {
    format!(
        "\nDAT\n  {CMP_DAT} (version 20261207): game 'Alpha (Japan)', rom 'Alpha (Japan).fds'\n    the disk image without its 16-byte fwNES header matches by size and SHA-1\n    the DAT hashes headerless images (header skipper fds.xml)\n  {LOGIQX_DAT} (version 20261207): game 'Alpha Disk (Japan)', rom 'Alpha Disk (Japan).fds'\n    the disk image without its 16-byte fwNES header matches by size and SHA-1\n    the DAT hashes headerless images (header skipper fds.xml)\n  {HEADERED_DAT}: game 'Alpha (Japan)', rom 'Alpha (Japan).fds'\n    the normalized image matches by size and SHA-1\n"
    )
}

fn beta_dat_section() -> String {
    format!(
        "\nDAT\n  {LOGIQX_DAT} (version 20261207): game 'Beta Disk (Japan)', rom 'Beta Disk (Japan).fds'\n    the disk image (the file has no fwNES header) matches by size and SHA-1\n    the DAT hashes headerless images (header skipper fds.xml)\n"
    )
}

fn logiqx_report(dats: &Path) -> String {
    format!(
        "{LOGIQX_DAT} (version 20261207)\nfrom {}/fds.xml\nthe DAT hashes headerless images (header skipper fds.xml)\n\nhave 2 of 3 ROMs\n\nmissing: 1\n  Gamma Disk (Japan).fds\n\nfiles matching more than one entry: 0\n\nmatched by CRC32 alone: 0\n\nbad or altered dumps: 0\n",
        dats.display()
    )
}

#[test]
fn info_says_the_disk_without_its_header_matched() {
    let backing = backing();
    let dats = tempfile::tempdir().unwrap();
    write_dats(dats.path());
    let info = |file: &str| {
        stdout_of(
            ninja()
                .arg("info")
                .arg(backing.path().join(file))
                .arg("--dat")
                .arg(dats.path()),
        )
    };
    let text = info("fds/a.fds");
    assert!(text.contains(&alpha_dat_section()), "{text}");
    let text = info("fds/b.fds");
    assert!(text.contains(&beta_dat_section()), "{text}");

    let text = stdout_of(
        ninja()
            .arg("info")
            .arg("--json")
            .arg(backing.path().join("fds/a.fds"))
            .arg(backing.path().join("fds/b.fds"))
            .arg("--dat")
            .arg(dats.path().join("fds.xml")),
    );
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value[0]["dat"]["matches"],
        serde_json::json!([{
            "dat": LOGIQX_DAT,
            "dat_version": "20261207",
            "dat_file": dats.path().join("fds.xml").display().to_string(),
            "dat_skipper": "fds.xml",
            "game": "Alpha Disk (Japan)",
            "rom": "Alpha Disk (Japan).fds",
            "size": SIDE_LEN,
            "image": "headerless",
            "image_is": "the disk image without its 16-byte fwNES header",
            "matched_by": "SHA-1",
        }])
    );
    let beta = &value[1]["dat"]["matches"][0];
    assert_eq!(beta["rom"], "Beta Disk (Japan).fds");
    assert_eq!(beta["image"], "headerless");
    assert_eq!(
        beta["image_is"],
        "the disk image (the file has no fwNES header)"
    );
}

#[test]
fn verified_serves_the_disk_without_its_header() {
    let backing = backing();
    let dats = tempfile::tempdir().unwrap();
    write_dats(dats.path());
    let fs = fs_with_dats(backing.path(), dats.path());
    assert_eq!(
        names(&fs, "verified"),
        [
            LOGIQX_DAT,
            HEADERED_DAT,
            &format!("{HEADERED_DAT}.txt"),
            CMP_DAT,
            &format!("{CMP_DAT}.txt"),
            &format!("{LOGIQX_DAT}.txt"),
        ]
    );
    assert_eq!(
        names(&fs, &format!("verified/{LOGIQX_DAT}")),
        ["Alpha Disk (Japan).fds", "Beta Disk (Japan).fds"]
    );
    let alpha_path = format!("verified/{LOGIQX_DAT}/Alpha Disk (Japan).fds");
    assert_eq!(lookup(&fs, &alpha_path).unwrap().size, SIDE_LEN as u64);
    assert_eq!(read_all(&fs, &alpha_path), alpha());
    assert_eq!(
        read_all(&fs, &format!("verified/{LOGIQX_DAT}/Beta Disk (Japan).fds")),
        beta()
    );
    assert_eq!(
        read_all(&fs, &format!("verified/{CMP_DAT}/Alpha (Japan).fds")),
        alpha()
    );
    // The headered DAT describes the whole file.
    assert_eq!(
        read_all(&fs, &format!("verified/{HEADERED_DAT}/Alpha (Japan).fds")),
        headered(&alpha())
    );
    assert_eq!(
        String::from_utf8(read_all(&fs, &format!("verified/{LOGIQX_DAT}.txt"))).unwrap(),
        logiqx_report(dats.path())
    );
    let report = String::from_utf8(read_all(&fs, "info/fds/a.fds.txt")).unwrap();
    assert!(report.contains(&alpha_dat_section()), "{report}");
    let report = String::from_utf8(read_all(&fs, "info/fds/b.fds.txt")).unwrap();
    assert!(report.contains(&beta_dat_section()), "{report}");
    // The other views are as they were: the normalized image keeps the header.
    assert_eq!(read_all(&fs, "normalized/fds/a.fds"), headered(&alpha()));
}

#[test]
fn without_a_skipper_dat_no_disk_image_is_hashed() {
    let backing = backing();
    let dats = tempfile::tempdir().unwrap();
    // A DAT without a skipper that lists a disk-sized entry: only the
    // three layouts count, and none of Alpha's has that size.
    let (size, crc, _, sha1) = fields(&alpha());
    std::fs::write(
        dats.path().join("plain.dat"),
        format!(
            "clrmamepro (\n\tname \"Plain\"\n)\n\ngame (\n\tname \"Alpha\"\n\trom ( name \"Alpha.fds\" size {size} crc {crc} sha1 {sha1} )\n)\n"
        ),
    )
    .unwrap();
    std::fs::remove_file(backing.path().join("fds/b.fds")).unwrap();
    let fs = fs_with_dats(backing.path(), dats.path());
    assert_eq!(names(&fs, "verified/Plain"), Vec::<String>::new());
    assert_eq!(
        fs.library().roms_hashed(),
        0,
        "hashed without a skipper DAT"
    );
    let report = String::from_utf8(read_all(&fs, "info/fds/a.fds.txt")).unwrap();
    assert!(
        report.contains("\nDAT\n  not in any loaded DAT\n"),
        "{report}"
    );
}

#[test]
fn the_header_cache_keeps_the_disk_digests() {
    let backing = backing();
    let dats = tempfile::tempdir().unwrap();
    write_dats(dats.path());
    let cache = tempfile::tempdir().unwrap();
    let listing = |fs: &NinjaFs| names(fs, &format!("verified/{LOGIQX_DAT}"));
    let first = fs_with_dats(backing.path(), dats.path());
    first.library().use_header_cache(cache.path());
    let shown = listing(&first);
    // Each file read and hashed once, its disk image with its layouts.
    assert_eq!(first.library().roms_hashed(), 2);
    first.library().flush_header_cache();
    drop(first);
    let second = fs_with_dats(backing.path(), dats.path());
    second.library().use_header_cache(cache.path());
    assert_eq!(listing(&second), shown);
    assert_eq!(second.library().roms_hashed(), 0, "hashed again");
    assert_eq!(
        read_all(
            &second,
            &format!("verified/{LOGIQX_DAT}/Alpha Disk (Japan).fds")
        ),
        alpha()
    );
}

#[test]
fn a_real_mount_serves_the_disk_without_its_header() {
    if let Some(reason) = mount_support::fuse_unavailable() {
        eprintln!("skipped: {reason}");
        return;
    }
    let backing = backing();
    let dats = tempfile::tempdir().unwrap();
    write_dats(dats.path());
    let mnt = tempfile::tempdir().unwrap();
    let (_guard, _) = mount_support::mount_with_args(
        backing.path(),
        mnt.path(),
        [
            Path::new("--dat"),
            &dats.path().join("fds.xml"),
            Path::new("--dat"),
            &dats.path().join("fds-cmp.dat"),
        ],
    );
    let folder = mnt.path().join("verified").join(LOGIQX_DAT);
    let mut listed: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, ["Alpha Disk (Japan).fds", "Beta Disk (Japan).fds"]);
    let alpha_file = folder.join("Alpha Disk (Japan).fds");
    assert_eq!(
        std::fs::metadata(&alpha_file).unwrap().len(),
        SIDE_LEN as u64
    );
    assert_eq!(std::fs::read(&alpha_file).unwrap(), alpha());
    assert_eq!(
        std::fs::read(folder.join("Beta Disk (Japan).fds")).unwrap(),
        beta()
    );
    assert_eq!(
        std::fs::read(
            mnt.path()
                .join("verified")
                .join(CMP_DAT)
                .join("Alpha (Japan).fds")
        )
        .unwrap(),
        alpha()
    );
    assert_eq!(
        std::fs::read_to_string(mnt.path().join(format!("verified/{LOGIQX_DAT}.txt"))).unwrap(),
        logiqx_report(dats.path())
    );
    let info = std::fs::read_to_string(mnt.path().join("info/fds/b.fds.txt")).unwrap();
    assert!(info.contains(&beta_dat_section()), "{info}");
}

#[test]
fn a_disk_image_asked_for_later_is_hashed_once_and_kept() {
    let backing = backing();
    std::fs::remove_file(backing.path().join("fds/b.fds")).unwrap();
    let dats = tempfile::tempdir().unwrap();
    write_dats(dats.path());
    let headered_only = tempfile::tempdir().unwrap();
    std::fs::copy(
        dats.path().join("fds-headered.dat"),
        headered_only.path().join("fds-headered.dat"),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mount = |dats: &Path| {
        let fs = fs_with_dats(backing.path(), dats);
        fs.library().use_header_cache(cache.path());
        fs
    };
    // A headered DAT alone: the layouts are hashed, no disk image.
    let first = mount(headered_only.path());
    assert_eq!(
        names(&first, &format!("verified/{HEADERED_DAT}")),
        ["Alpha (Japan).fds"]
    );
    assert_eq!(first.library().roms_hashed(), 1);
    first.library().flush_header_cache();
    drop(first);
    // With a skipper DAT, the file is read once more for its disk.
    let second = mount(dats.path());
    assert_eq!(
        names(&second, &format!("verified/{LOGIQX_DAT}")),
        ["Alpha Disk (Japan).fds"]
    );
    assert_eq!(second.library().roms_hashed(), 1);
    second.library().flush_header_cache();
    drop(second);
    let third = mount(dats.path());
    assert_eq!(
        names(&third, &format!("verified/{LOGIQX_DAT}")),
        ["Alpha Disk (Japan).fds"]
    );
    assert_eq!(third.library().roms_hashed(), 0, "hashed again");
}
