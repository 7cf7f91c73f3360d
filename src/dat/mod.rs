//! DAT files: the lists of known good dumps (No-Intro, Redump, TOSEC) that
//! collectors verify their ROMs against, in Logiqx XML ([`logiqx`]) or the
//! older clrmamepro text format ([`clrmamepro`]).
//!
//! Loading is parse-only: each DAT becomes a list of ROM entries (name,
//! size, CRC32/MD5/SHA-1), and a [`DatSet`] indexes all loaded entries by
//! size and CRC32 so a ROM is looked up, and hashed at all, only when an
//! entry of one of its image sizes exists.

pub mod clrmamepro;
pub mod logiqx;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::apply::ImageLayout;
use crate::backing::archive::{self, Archive, ArchiveKind};
use crate::digest::{self, Digests};
use crate::text;

/// The largest DAT read: No-Intro's biggest are tens of megabytes; a file
/// past this is refused before it is read.
pub const MAX_DAT_BYTES: u64 = 512 << 20;

/// Longest folder or file name a filesystem takes (Linux's NAME_MAX), less
/// room for a " (N)" that makes a name unique.
const MAX_COMPONENT: usize = 240;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DatError {
    #[error("{file}: cannot be read: {reason}")]
    Read { file: String, reason: String },
    #[error("{file}: {size} bytes, larger than the largest DAT read ({MAX_DAT_BYTES} bytes)")]
    TooLarge { file: String, size: u64 },
    #[error("{file}: empty (0 bytes): not a DAT")]
    Empty { file: String },
    #[error(
        "{file}: neither a Logiqx XML nor a clrmamepro DAT (it starts with neither '<' nor 'clrmamepro')"
    )]
    UnknownFormat { file: String },
    #[error("{file}: line {line}: {problem}")]
    Syntax {
        file: String,
        line: usize,
        problem: String,
    },
    #[error("{file}: no DAT files (.dat or .xml) in it")]
    NoDats { file: String },
}

/// A hash a DAT entry carries, strongest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum HashKind {
    #[serde(rename = "CRC32")]
    Crc32,
    #[serde(rename = "MD5")]
    Md5,
    #[serde(rename = "SHA-1")]
    Sha1,
}

impl fmt::Display for HashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashKind::Crc32 => "CRC32",
            HashKind::Md5 => "MD5",
            HashKind::Sha1 => "SHA-1",
        })
    }
}

/// One ROM a DAT lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatRom {
    /// Its game's position in [`Dat::games`].
    pub game: u32,
    /// As the DAT writes it (untrusted: see [`safe_rom_path`]).
    pub name: String,
    pub size: u64,
    pub crc32: Option<u32>,
    pub md5: Option<[u8; 16]>,
    pub sha1: Option<[u8; 20]>,
}

impl DatRom {
    /// The strongest hash the entry carries.
    pub fn strongest(&self) -> Option<HashKind> {
        if self.sha1.is_some() {
            Some(HashKind::Sha1)
        } else if self.md5.is_some() {
            Some(HashKind::Md5)
        } else if self.crc32.is_some() {
            Some(HashKind::Crc32)
        } else {
            None
        }
    }

    /// Whether `digests` agree with the entry's hash of `kind` (false if it
    /// has none).
    fn agrees(&self, kind: HashKind, digests: &Digests) -> bool {
        match kind {
            HashKind::Sha1 => self.sha1 == Some(digests.sha1),
            HashKind::Md5 => self.md5 == Some(digests.md5),
            HashKind::Crc32 => self.crc32 == Some(digests.crc32),
        }
    }
}

/// One DAT file, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dat {
    /// The file it came from (`archive.zip//member.dat` for a member).
    pub source: String,
    /// The header's name (untrusted text), or the file's stem if it has none.
    pub name: String,
    pub version: Option<String>,
    /// The header skipper the DAT names (`nes.xml`...), if any: its hashes
    /// are of the image without the copier/iNES header.
    pub skipper: Option<String>,
    /// Game names, as the DAT writes them.
    pub games: Vec<String>,
    pub roms: Vec<DatRom>,
}

impl Dat {
    pub fn game_of(&self, rom: &DatRom) -> &str {
        self.games.get(rom.game as usize).map_or("", String::as_str)
    }
}

/// The header skipper a DAT header names, by the names clrmamepro and
/// No-Intro give them (`nes.xml`, `No-Intro_NES.xml`...): the DAT then
/// hashes headerless images.
pub fn skipper_of(header: &str) -> Option<String> {
    let lower = header.to_ascii_lowercase();
    ["a7800", "lynx", "fds", "nes"]
        .into_iter()
        .find(|system| {
            lower
                .strip_suffix(".xml")
                .is_some_and(|stem| stem.ends_with(system))
        })
        .map(|system| format!("{system}.xml"))
}

/// Builds a DAT while it is parsed: refuses a game name twice and checks
/// each entry's fields.
pub(crate) struct DatBuilder {
    dat: Dat,
    /// The games so far by a hash of their name (a second copy of every
    /// name would double what a large DAT holds while it loads): the first
    /// game of each hash, and the rare others of the same hash apart, so
    /// that most games cost one map slot and no allocation of their own.
    seen_games: HashMap<u64, u32>,
    same_hash_games: HashMap<u64, Vec<u32>>,
}

impl DatBuilder {
    pub(crate) fn new(source: &str) -> DatBuilder {
        DatBuilder {
            dat: Dat {
                source: source.to_string(),
                ..Dat::default()
            },
            seen_games: HashMap::new(),
            same_hash_games: HashMap::new(),
        }
    }

    pub(crate) fn set_name(&mut self, name: String) {
        self.dat.name = name;
    }

    pub(crate) fn set_version(&mut self, version: String) {
        self.dat.version = Some(version);
    }

    pub(crate) fn set_skipper_from(&mut self, header: &str) {
        self.dat.skipper = skipper_of(header);
    }

    /// Starts a game; a name given twice is an error.
    pub(crate) fn game(&mut self, name: String) -> Result<u32, String> {
        use std::hash::BuildHasher;
        let key = rustc_hash::FxBuildHasher.hash_one(&name);
        let first = self.seen_games.get(&key).copied();
        let others = self.same_hash_games.get(&key).into_iter().flatten();
        if first
            .into_iter()
            .chain(others.copied())
            .any(|at| self.dat.games.get(at as usize) == Some(&name))
        {
            return Err(format!(
                "the game '{}' is listed twice",
                crate::text::str_as_text(&name)
            ));
        }
        let at = u32::try_from(self.dat.games.len()).map_err(|_| "too many games".to_string())?;
        if first.is_some() {
            self.same_hash_games.entry(key).or_default().push(at);
        } else {
            self.seen_games.insert(key, at);
        }
        self.dat.games.push(name);
        Ok(at)
    }

    /// Adds a ROM of game `game` from its fields as text.
    pub(crate) fn rom(&mut self, game: u32, fields: &RomFields) -> Result<(), String> {
        let name = fields.name.clone().ok_or("a rom has no name".to_string())?;
        let shown = crate::text::str_as_text(&name);
        let size = match &fields.size {
            None => return Err(format!("the rom '{shown}' has no size")),
            Some(size) => parse_size(size)
                .ok_or_else(|| format!("the rom '{shown}' has size '{size}', not a number"))?,
        };
        let crc32 = fields
            .crc
            .as_deref()
            .map(|crc| parse_hex::<4>(crc, "CRC32", &shown).map(u32::from_be_bytes))
            .transpose()?;
        let md5 = fields
            .md5
            .as_deref()
            .map(|md5| parse_hex::<16>(md5, "MD5", &shown))
            .transpose()?;
        let sha1 = fields
            .sha1
            .as_deref()
            .map(|sha1| parse_hex::<20>(sha1, "SHA-1", &shown))
            .transpose()?;
        self.dat.roms.push(DatRom {
            game,
            name,
            size,
            crc32,
            md5,
            sha1,
        });
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Dat {
        // The spare room a growing list keeps is a third of it on average.
        self.dat.games.shrink_to_fit();
        self.dat.roms.shrink_to_fit();
        if self.dat.name.trim().is_empty() {
            let file = self.dat.source.rsplit(['/', '\\']).next().unwrap_or("");
            self.dat.name = crate::library::split_name(file).0.to_string();
        }
        self.dat
    }
}

/// A rom's fields as the DAT writes them.
#[derive(Debug, Default, Clone)]
pub(crate) struct RomFields {
    pub(crate) name: Option<String>,
    pub(crate) size: Option<String>,
    pub(crate) crc: Option<String>,
    pub(crate) md5: Option<String>,
    pub(crate) sha1: Option<String>,
}

fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok();
    }
    text.parse().ok()
}

/// `text` as `N` bytes of hex; a DAT writes CRC32s with or without leading
/// zeros (some tools drop them).
fn parse_hex<const N: usize>(text: &str, what: &str, rom: &str) -> Result<[u8; N], String> {
    let text = text.trim();
    let bad = || {
        format!(
            "the rom '{rom}' has {what} '{}', not {} hex digits",
            crate::text::str_as_text(text),
            N * 2
        )
    };
    let digits = text.as_bytes();
    // Only a CRC32 may have lost its leading zeros.
    let length_fits = if N == 4 {
        (1..=N * 2).contains(&digits.len())
    } else {
        digits.len() == N * 2
    };
    if !length_fits {
        return Err(bad());
    }
    let mut nibbles = vec![0u8; N * 2 - digits.len()];
    for &digit in digits {
        nibbles.push(match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            b'A'..=b'F' => digit - b'A' + 10,
            _ => return Err(bad()),
        });
    }
    let mut bytes = [0u8; N];
    for (at, byte) in bytes.iter_mut().enumerate() {
        *byte = nibbles[2 * at] << 4 | nibbles[2 * at + 1];
    }
    Ok(bytes)
}

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_of(text: &[u8], offset: usize) -> usize {
    let end = offset.min(text.len());
    text[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Parses one DAT's bytes, telling the format by its first characters.
pub fn parse(source: &str, bytes: &[u8]) -> Result<Dat, DatError> {
    if bytes.is_empty() {
        return Err(DatError::Empty {
            file: source.to_string(),
        });
    }
    let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes));
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let head = &bytes[start..];
    if head.starts_with(b"<") || head.starts_with(b"\xEF\xBB\xBF<") {
        logiqx::parse(source, bytes)
    } else if head.starts_with(b"clrmamepro") || head.starts_with(b"game") {
        let text = text.map_err(|error| DatError::Syntax {
            file: source.to_string(),
            line: line_of(bytes, error.valid_up_to()),
            problem: "not UTF-8 text".into(),
        })?;
        clrmamepro::parse(source, text)
    } else {
        Err(DatError::UnknownFormat {
            file: source.to_string(),
        })
    }
}

/// Reads the DAT file, folder (searched recursively for `.dat`, `.xml`
/// and `.zip` files) or archive of DATs at `path`: each DAT read or the
/// reason it could not be, in path order.
pub fn load_path(path: &Path) -> Vec<Result<Dat, DatError>> {
    let shown = path.display().to_string();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(error) => {
            return vec![Err(DatError::Read {
                file: shown,
                reason: error.to_string(),
            })];
        }
    };
    if meta.is_dir() {
        let mut files = Vec::new();
        collect_dat_files(path, &mut files);
        files.sort();
        let loaded: Vec<_> = files.iter().flat_map(|file| load_file(file)).collect();
        if loaded.is_empty() {
            return vec![Err(DatError::NoDats { file: shown })];
        }
        return loaded;
    }
    load_file(path)
}

fn is_dat_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".dat") || lower.ends_with(".xml")
}

fn collect_dat_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        log::warn!("{}: cannot list", dir.display());
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Links to folders are not followed, so a loop cannot make the walk endless.
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => collect_dat_files(&path, files),
            Ok(_) if is_dat_name(&name) || archive::is_archive_name(&name) => files.push(path),
            _ => {}
        }
    }
}

/// One DAT file, or each DAT in an archive.
fn load_file(path: &Path) -> Vec<Result<Dat, DatError>> {
    let shown = path.display().to_string();
    let read_error = |error: std::io::Error| DatError::Read {
        file: shown.clone(),
        reason: error.to_string(),
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) => return vec![Err(read_error(error))],
    };
    let size = match file.metadata() {
        Ok(meta) => meta.len(),
        Err(error) => return vec![Err(read_error(error))],
    };
    let mut head = [0u8; 8];
    let head_len = std::io::Read::read(&mut file, &mut head).unwrap_or(0);
    if let Some(kind) = archive::kind_of(&head[..head_len]) {
        return load_archive(path, file, kind);
    }
    if size > MAX_DAT_BYTES {
        return vec![Err(DatError::TooLarge { file: shown, size })];
    }
    // XML is parsed as it is read: a DAT of tens of megabytes is never
    // whole in memory.
    let starts_xml = head[..head_len]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'<' || b == 0xEF);
    if starts_xml {
        let input = std::io::BufReader::with_capacity(
            1 << 16,
            std::io::Cursor::new(head[..head_len].to_vec()).chain(file.take(MAX_DAT_BYTES)),
        );
        return vec![logiqx::parse_reader(&shown, input)];
    }
    let mut bytes = Vec::with_capacity(size as usize);
    bytes.extend_from_slice(&head[..head_len]);
    if let Err(error) = file.take(MAX_DAT_BYTES).read_to_end(&mut bytes) {
        return vec![Err(read_error(error))];
    }
    vec![parse(&shown, &bytes)]
}

fn load_archive(path: &Path, file: File, kind: ArchiveKind) -> Vec<Result<Dat, DatError>> {
    let shown = path.display().to_string();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let archive = match Archive::open(file, &name, kind) {
        Ok(archive) => archive,
        Err(error) => {
            return vec![Err(DatError::Read {
                file: shown,
                reason: error.to_string(),
            })];
        }
    };
    let mut loaded = Vec::new();
    for (index, member) in archive.members().iter().enumerate() {
        if !is_dat_name(&member.name) {
            continue;
        }
        let source = format!("{shown}//{}", member.name);
        loaded.push(match archive.read_member(index, MAX_DAT_BYTES) {
            Ok(bytes) => parse(&source, &bytes),
            Err(error) => Err(DatError::Read {
                file: source,
                reason: error.to_string(),
            }),
        });
    }
    if loaded.is_empty() {
        loaded.push(Err(DatError::NoDats { file: shown }));
    }
    loaded
}

/// A DAT's name made one safe file name: no `/`, no NUL or control
/// characters, not `.` or `..`, at most 240 bytes.
pub fn safe_dat_name(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| match c {
            '/' | '\\' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let trimmed = text::up_to_char(cleaned.trim(), MAX_COMPONENT);
    match trimmed {
        "" | "." | ".." => "unnamed DAT".to_string(),
        name => name.to_string(),
    }
}

/// A DAT rom name made a safe relative path: its folders kept, `..`,
/// absolute paths, NUL and control characters never leaving the DAT's
/// folder (as archive member names are made safe).
pub fn safe_rom_path(raw: &str) -> String {
    archive::sanitize_name(raw)
}

/// Which entry of which DAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryRef {
    pub dat: u32,
    pub rom: u32,
}

/// A ROM image that matched a DAT entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatMatch {
    pub entry: EntryRef,
    pub layout: ImageLayout,
    pub by: HashKind,
}

/// An entry whose size and CRC32 agree with an image while its stronger
/// hash does not: a bad or altered dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrcOnly {
    pub entry: EntryRef,
    pub layout: ImageLayout,
    /// The stronger hash that disagrees.
    pub disagrees: HashKind,
}

/// What the loaded DATs say of one ROM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Each entry matched once, by the first image (normalized,
    /// deinterleaved, raw) that matches it.
    pub matches: Vec<DatMatch>,
    pub crc_only: Vec<CrcOnly>,
}

/// The images tried, in the order a match is reported: the normalized
/// image is what DATs hash for most systems, the deinterleaved one what
/// headered DATs (iNES) hash.
const LAYOUT_ORDER: [ImageLayout; 3] = [
    ImageLayout::Normalized,
    ImageLayout::Deinterleaved,
    ImageLayout::Raw,
];

/// Every DAT loaded, indexed by size and CRC32.
#[derive(Debug, Default)]
pub struct DatSet {
    pub dats: Vec<Dat>,
    /// Every entry, sorted by (size, CRC32): 24 bytes an entry, where a
    /// map of lists cost about 90 (a slot and an allocation each).
    index: Vec<IndexSlot>,
}

#[derive(Debug, Clone, Copy)]
struct IndexSlot {
    size: u64,
    crc32: Option<u32>,
    entry: EntryRef,
}

impl DatSet {
    pub fn new(dats: Vec<Dat>) -> DatSet {
        let mut set = DatSet {
            dats,
            ..DatSet::default()
        };
        let count = set.dats.iter().map(|dat| dat.roms.len()).sum();
        set.index.reserve_exact(count);
        for (dat_at, dat) in set.dats.iter().enumerate() {
            for (rom_at, rom) in dat.roms.iter().enumerate() {
                set.index.push(IndexSlot {
                    size: rom.size,
                    crc32: rom.crc32,
                    entry: EntryRef {
                        dat: dat_at as u32,
                        rom: rom_at as u32,
                    },
                });
            }
        }
        // Stable: entries of one key stay in DAT order.
        set.index.sort_by_key(|slot| (slot.size, slot.crc32));
        set
    }

    /// The entries of this size and CRC32 (`None`: those without one).
    fn entries_with(&self, size: u64, crc32: Option<u32>) -> impl Iterator<Item = EntryRef> + '_ {
        let key = (size, crc32);
        let start = self
            .index
            .partition_point(|slot| (slot.size, slot.crc32) < key);
        self.index[start..]
            .iter()
            .take_while(move |slot| (slot.size, slot.crc32) == key)
            .map(|slot| slot.entry)
    }

    /// Loads every path (see [`load_path`]): the DATs that loaded, and the
    /// errors of those that did not.
    pub fn load(paths: &[PathBuf]) -> (DatSet, Vec<DatError>) {
        let mut dats = Vec::new();
        let mut errors = Vec::new();
        for path in paths {
            for loaded in load_path(path) {
                match loaded {
                    Ok(dat) => dats.push(dat),
                    Err(error) => errors.push(error),
                }
            }
        }
        (DatSet::new(dats), errors)
    }

    pub fn is_empty(&self) -> bool {
        self.dats.is_empty()
    }

    pub fn entry(&self, entry: EntryRef) -> Option<(&Dat, &DatRom)> {
        let dat = self.dats.get(entry.dat as usize)?;
        Some((dat, dat.roms.get(entry.rom as usize)?))
    }

    /// Whether some entry has one of `sizes`: only then is a ROM worth hashing.
    pub fn wants_any_size(&self, sizes: &[u64]) -> bool {
        sizes.iter().any(|&size| {
            let at = self.index.partition_point(|slot| slot.size < size);
            self.index.get(at).is_some_and(|slot| slot.size == size)
        })
    }

    /// What the DATs say of a ROM whose images have these sizes and digests.
    pub fn verdict(&self, images: &[(ImageLayout, u64, Digests)]) -> Verdict {
        let mut verdict = Verdict::default();
        let mut seen = HashSet::new();
        for want in LAYOUT_ORDER {
            for (layout, size, digests) in images.iter().filter(|(l, ..)| *l == want) {
                let with_crc = self.entries_with(*size, Some(digests.crc32));
                let without = self.entries_with(*size, None);
                for entry in with_crc.chain(without) {
                    let Some((_, rom)) = self.entry(entry) else {
                        continue;
                    };
                    let Some(strongest) = rom.strongest() else {
                        continue;
                    };
                    if rom.agrees(strongest, digests) {
                        if seen.insert(entry) {
                            verdict.matches.push(DatMatch {
                                entry,
                                layout: *layout,
                                by: strongest,
                            });
                        }
                    } else if rom.agrees(HashKind::Crc32, digests)
                        && !verdict.crc_only.iter().any(|c| c.entry == entry)
                    {
                        verdict.crc_only.push(CrcOnly {
                            entry,
                            layout: *layout,
                            disagrees: strongest,
                        });
                    }
                }
            }
        }
        // An entry another image matched fully is no bad dump.
        verdict.crc_only.retain(|c| !seen.contains(&c.entry));
        verdict
    }

    /// The DAT section of a ROM's report, as text lines.
    pub fn describe(&self, verdict: &Verdict) -> String {
        let mut text = String::from("\nDAT\n");
        if verdict.matches.is_empty() && verdict.crc_only.is_empty() {
            text.push_str("  not in any loaded DAT\n");
        }
        for found in &verdict.matches {
            let Some((dat, rom)) = self.entry(found.entry) else {
                continue;
            };
            text.push_str(&format!(
                "  {}{}: game '{}', rom '{}'\n    the {} image matches by size and {}\n",
                crate::text::str_as_text(&dat.name),
                dat.version
                    .as_deref()
                    .map(|v| format!(" (version {})", crate::text::str_as_text(v)))
                    .unwrap_or_default(),
                crate::text::str_as_text(dat.game_of(rom)),
                crate::text::str_as_text(&rom.name),
                found.layout,
                found.by,
            ));
        }
        for bad in &verdict.crc_only {
            let Some((dat, rom)) = self.entry(bad.entry) else {
                continue;
            };
            text.push_str(&format!(
                "  {}: CRC32 matches '{}' but {} does not: a bad or altered dump\n",
                crate::text::str_as_text(&dat.name),
                crate::text::str_as_text(&rom.name),
                bad.disagrees
            ));
        }
        text
    }

    /// The DAT section of a ROM's JSON report.
    pub fn to_json(&self, verdict: &Verdict) -> serde_json::Value {
        let entry_json = |entry: EntryRef| {
            self.entry(entry).map(|(dat, rom)| {
                serde_json::json!({
                    "dat": dat.name,
                    "dat_version": dat.version,
                    "dat_file": dat.source,
                    "game": dat.game_of(rom),
                    "rom": rom.name,
                    "size": rom.size,
                })
            })
        };
        let matches: Vec<serde_json::Value> = verdict
            .matches
            .iter()
            .filter_map(|found| {
                let mut value = entry_json(found.entry)?;
                value["image"] = found.layout.to_string().into();
                value["matched_by"] = found.by.to_string().into();
                Some(value)
            })
            .collect();
        let bad: Vec<serde_json::Value> = verdict
            .crc_only
            .iter()
            .filter_map(|bad| {
                let mut value = entry_json(bad.entry)?;
                value["image"] = bad.layout.to_string().into();
                value["disagrees"] = bad.disagrees.to_string().into();
                Some(value)
            })
            .collect();
        serde_json::json!({ "matches": matches, "crc32_only": bad })
    }
}

/// The size and digests of each of a ROM's images (raw, normalized,
/// deinterleaved), each hashed once, from its bytes `raw` laid out as
/// `layout`: what the command line verifies (the mount has
/// `Library::full_digests`, which keeps them).
pub fn image_digests(
    raw: &[u8],
    layout: &crate::system::Layout,
) -> Result<Vec<(ImageLayout, u64, Digests)>, crate::system::SystemError> {
    let normalized = crate::system::normalize(raw, layout)?;
    let deinterleaved = crate::system::restore(&normalized, layout)?;
    let of = |layout, bytes: &[u8]| (layout, bytes.len() as u64, Digests::of(bytes));
    Ok(vec![
        of(ImageLayout::Raw, raw),
        of(ImageLayout::Normalized, &normalized),
        of(ImageLayout::Deinterleaved, &deinterleaved),
    ])
}

/// Loads the DATs at `paths` for a command: each that failed is said on
/// stderr; an error only when none loaded.
pub fn load_for_command(paths: &[PathBuf]) -> Result<DatSet, String> {
    let (set, errors) = DatSet::load(paths);
    for error in &errors {
        eprintln!("ninja-fs: DAT not loaded: {error}");
    }
    if set.is_empty() && !errors.is_empty() {
        return Err(format!(
            "no DAT could be loaded ({} failed; see above)",
            errors.len()
        ));
    }
    Ok(set)
}

/// Adds what the DATs say of the ROM at `path` to its `info` table and
/// JSON object (`"dat"`); a patch or an archive listing gets nothing.
pub fn add_to_report(
    dats: &DatSet,
    path: &Path,
    forced: Option<crate::system::SystemType>,
    table: &mut String,
    object: &mut serde_json::Value,
) {
    use crate::files::{self, Opened};
    let max = crate::patch::Limits::default().max_image_size;
    let Ok(Opened::One(input)) = files::read_any(path, max) else {
        return;
    };
    if forced.is_none()
        && crate::patch::any::PatchFormat::detect(Some(&input.name), &input.bytes).is_some()
    {
        return;
    }
    let Ok(layout) = crate::system::identify(Some(&input.name), &input.bytes, forced) else {
        return;
    };
    let verdict = match image_digests(&input.bytes, &layout) {
        Ok(images) => dats.verdict(&images),
        Err(_) => return,
    };
    table.push_str(&dats.describe(&verdict));
    if let Some(map) = object.as_object_mut() {
        map.insert("dat".into(), dats.to_json(&verdict));
    }
}

/// Loads the DATs at `paths` for a mount, which starts with those that
/// loaded: each that did not is said on stderr and in the log.
pub fn load_for_mount(paths: &[PathBuf]) -> DatSet {
    let (set, errors) = DatSet::load(paths);
    for error in &errors {
        eprintln!("ninja-fs: DAT not loaded: {error}");
        log::warn!("DAT not loaded: {error}");
    }
    let entries: usize = set.dats.iter().map(|dat| dat.roms.len()).sum();
    log::info!(
        "{} DATs loaded ({entries} entries), {} not",
        set.dats.len(),
        errors.len()
    );
    set
}

/// The digests of a DAT entry as hex, for writing DATs.
pub(crate) fn hex_fields(rom: &DatRom) -> (Option<String>, Option<String>, Option<String>) {
    (
        rom.crc32.map(|crc| format!("{crc:08x}")),
        rom.md5.map(|md5| digest::hex(&md5)),
        rom.sha1.map(|sha1| digest::hex(&sha1)),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn dat_strategy() -> impl Strategy<Value = Dat> {
        // Names of any characters a text format can carry; the writers
        // escape what they must.
        let text = "[^\u{0}-\u{1f}\u{7f}\"]{1,12}";
        (
            text,
            proptest::option::of("[0-9a-z.]{1,8}"),
            proptest::option::of(prop_oneof![Just("nes.xml"), Just("lynx.xml")]),
            proptest::collection::vec(
                (
                    text,
                    proptest::collection::vec(
                        (
                            text,
                            0u64..1 << 40,
                            proptest::option::of(any::<u32>()),
                            proptest::option::of(any::<[u8; 16]>()),
                            proptest::option::of(any::<[u8; 20]>()),
                        ),
                        0..3,
                    ),
                ),
                0..4,
            ),
        )
            .prop_map(|(name, version, skipper, games)| {
                let mut dat = Dat {
                    source: "generated.dat".into(),
                    name: name.trim().to_string(),
                    version,
                    skipper: skipper.map(String::from),
                    ..Dat::default()
                };
                if dat.name.is_empty() {
                    dat.name = "generated".into();
                }
                let mut seen = HashSet::new();
                for (game, roms) in games {
                    if !seen.insert(game.clone()) {
                        continue;
                    }
                    let at = dat.games.len() as u32;
                    dat.games.push(game);
                    for (name, size, crc32, md5, sha1) in roms {
                        dat.roms.push(DatRom {
                            game: at,
                            name,
                            size,
                            crc32,
                            md5,
                            sha1,
                        });
                    }
                }
                dat
            })
    }

    fn rom(size: u64, crc32: Option<u32>, md5: Option<[u8; 16]>, sha1: Option<[u8; 20]>) -> DatRom {
        DatRom {
            game: 0,
            name: "Game (USA).sfc".into(),
            size,
            crc32,
            md5,
            sha1,
        }
    }

    fn one_dat(roms: Vec<DatRom>) -> DatSet {
        DatSet::new(vec![Dat {
            source: "t.dat".into(),
            name: "Test".into(),
            games: vec!["Game (USA)".into()],
            roms,
            ..Dat::default()
        }])
    }

    #[test]
    fn matches_by_the_strongest_hash() {
        let image = b"the normalized image";
        let digests = Digests::of(image);
        let other = Digests::of(b"something else");
        let len = image.len() as u64;
        let images = [
            (ImageLayout::Raw, len + 512, other.clone()),
            (ImageLayout::Normalized, len, digests.clone()),
            (ImageLayout::Deinterleaved, len, digests.clone()),
        ];
        let set = one_dat(vec![rom(
            len,
            Some(digests.crc32),
            Some(digests.md5),
            Some(digests.sha1),
        )]);
        let verdict = set.verdict(&images);
        assert_eq!(
            verdict.matches,
            [DatMatch {
                entry: EntryRef { dat: 0, rom: 0 },
                layout: ImageLayout::Normalized,
                by: HashKind::Sha1,
            }]
        );
        assert!(verdict.crc_only.is_empty());
        // CRC32 agrees, SHA-1 does not: no match, a bad dump.
        let set = one_dat(vec![rom(len, Some(digests.crc32), None, Some(other.sha1))]);
        let verdict = set.verdict(&images);
        assert!(verdict.matches.is_empty());
        assert_eq!(verdict.crc_only.len(), 1);
        assert_eq!(verdict.crc_only[0].disagrees, HashKind::Sha1);
        assert!(
            set.describe(&verdict).contains(
                "Test: CRC32 matches 'Game (USA).sfc' but SHA-1 does not: a bad or altered dump"
            ),
            "{}",
            set.describe(&verdict)
        );
        // MD5 alone, CRC32 alone.
        let set = one_dat(vec![rom(len, None, Some(digests.md5), None)]);
        assert_eq!(set.verdict(&images).matches[0].by, HashKind::Md5);
        let set = one_dat(vec![rom(len, Some(digests.crc32), None, None)]);
        assert_eq!(set.verdict(&images).matches[0].by, HashKind::Crc32);
        // The size must agree too.
        let set = one_dat(vec![rom(len + 1, Some(digests.crc32), None, None)]);
        assert!(set.verdict(&images).matches.is_empty());
        assert!(!set.wants_any_size(&[len, len + 512]));
        assert_eq!(
            set.describe(&set.verdict(&images)),
            "\nDAT\n  not in any loaded DAT\n"
        );
    }

    #[test]
    fn the_index_finds_every_entry_of_a_size_and_crc() {
        let image = b"an image";
        let digests = Digests::of(image);
        let len = image.len() as u64;
        let sha1 = Some(digests.sha1);
        let set = one_dat(vec![
            rom(len + 1, Some(digests.crc32), None, sha1),
            rom(len, Some(digests.crc32 ^ 1), None, None),
            rom(len, None, None, sha1),
            rom(len, Some(digests.crc32), None, sha1),
            rom(len - 1, None, None, sha1),
        ]);
        let images = [(ImageLayout::Normalized, len, digests)];
        let found: Vec<u32> = set
            .verdict(&images)
            .matches
            .iter()
            .map(|m| m.entry.rom)
            .collect();
        assert_eq!(found, [3, 2]);
        assert!(set.wants_any_size(&[0, len - 1]));
        assert!(set.wants_any_size(&[len + 1]));
        assert!(!set.wants_any_size(&[0, len - 2, len + 2]));
        assert!(!DatSet::new(Vec::new()).wants_any_size(&[len]));
    }

    #[test]
    fn a_game_twice_is_refused_among_many() {
        let mut builder = DatBuilder::new("t.dat");
        for n in 0..1000 {
            builder.game(format!("Game {n}")).unwrap();
        }
        assert_eq!(
            builder.game("Game 500".into()).unwrap_err(),
            "the game 'Game 500' is listed twice"
        );
        assert_eq!(builder.game("Game 1000".into()), Ok(1000));
    }

    #[test]
    fn hex_fields_parse_strictly() {
        assert_eq!(
            parse_hex::<4>("0badcafe", "CRC32", "r"),
            Ok([0x0b, 0xad, 0xca, 0xfe])
        );
        assert_eq!(
            parse_hex::<4>("badcafe", "CRC32", "r"),
            Ok([0x0b, 0xad, 0xca, 0xfe])
        );
        assert_eq!(
            parse_hex::<4>("xyz", "CRC32", "r"),
            Err("the rom 'r' has CRC32 'xyz', not 8 hex digits".to_string())
        );
        assert!(parse_hex::<16>("00", "MD5", "r").is_err());
        assert!(parse_hex::<20>(&"a".repeat(41), "SHA-1", "r").is_err());
        assert_eq!(parse_size("0x10"), Some(16));
        assert_eq!(parse_size("12k"), None);
    }

    #[test]
    fn skippers_by_name() {
        assert_eq!(skipper_of("No-Intro_NES.xml").as_deref(), Some("nes.xml"));
        assert_eq!(skipper_of("nes.xml").as_deref(), Some("nes.xml"));
        assert_eq!(skipper_of("No-Intro_FDS.xml").as_deref(), Some("fds.xml"));
        assert_eq!(skipper_of("lynx.xml").as_deref(), Some("lynx.xml"));
        assert_eq!(
            skipper_of("No-Intro_A7800.xml").as_deref(),
            Some("a7800.xml")
        );
        assert_eq!(skipper_of("snes.xml").as_deref(), Some("nes.xml"));
        assert_eq!(skipper_of("other.txt"), None);
    }

    #[test]
    fn hostile_names_are_made_safe() {
        assert_eq!(safe_dat_name("../.."), ".._..");
        assert_eq!(safe_dat_name(".."), "unnamed DAT");
        assert_eq!(safe_dat_name("a/b\0c"), "a_b_c");
        assert_eq!(safe_rom_path("/etc/passwd"), "etc/passwd");
        assert_eq!(safe_rom_path("../../x.sfc"), "x.sfc");
        assert_eq!(safe_rom_path("Disc\\Track 1.bin"), "Disc/Track 1.bin");
        assert_eq!(safe_rom_path("a\u{1b}b"), "a_b");
    }

    #[test]
    fn empty_and_unknown_files_are_refused() {
        assert_eq!(
            parse("x.dat", b"").unwrap_err().to_string(),
            "x.dat: empty (0 bytes): not a DAT"
        );
        assert!(matches!(
            parse("x.dat", b"PK\x03\x04"),
            Err(DatError::UnknownFormat { .. })
        ));
    }

    proptest! {
        #[test]
        fn safe_names_never_escape(raw in ".{0,40}") {
            let dat = safe_dat_name(&raw);
            prop_assert!(!dat.contains('/') && dat != ".." && dat != "." && !dat.is_empty());
            prop_assert!(!dat.chars().any(char::is_control));
            let rom = safe_rom_path(&raw);
            prop_assert!(!rom.starts_with('/'));
            prop_assert!(rom.split('/').all(|p| p != ".." && p != "." && !p.is_empty()));
            prop_assert!(!rom.chars().any(char::is_control));
        }

        #[test]
        fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse("fuzz.dat", &bytes);
        }
    }
}
