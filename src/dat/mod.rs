//! DAT files: the lists of known good dumps (No-Intro, Redump, TOSEC) that
//! collectors verify their ROMs against, in Logiqx XML ([`logiqx`]) or the
//! older clrmamepro text format ([`clrmamepro`]).
//!
//! Loading is parse-only: each DAT becomes a list of ROM entries (name,
//! size, CRC32/MD5/SHA-1), and a [`DatSet`] indexes all loaded entries by
//! size and CRC32 so a ROM is looked up, and hashed at all, only when an
//! entry of one of its image sizes exists.

pub mod clrmamepro;
mod column;
pub mod logiqx;
mod names;
mod table;

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::hash::BuildHasherDefault;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::apply::ImageLayout;
use crate::backing::archive::{self, Archive, ArchiveKind};
use crate::digest::{self, Digests};
use crate::text;
use column::Column;
use names::{Cursor, NameArena};
use table::HashTable;
pub use table::Hashes;

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

/// An image of a ROM that a DAT may hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatImage {
    /// One the views make: raw, normalized or deinterleaved.
    Layout(ImageLayout),
    /// A Famicom Disk System disk without its fwNES header, which a DAT
    /// naming the `fds.xml` header skipper hashes (the normalized image
    /// keeps the header); `had_header` says whether the file had one.
    FdsDisk { had_header: bool },
}

impl From<ImageLayout> for DatImage {
    fn from(layout: ImageLayout) -> DatImage {
        DatImage::Layout(layout)
    }
}

/// The short name, as `info --json` gives it (`raw`, `normalized`,
/// `deinterleaved`, `headerless`).
impl fmt::Display for DatImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatImage::Layout(layout) => layout.fmt(f),
            DatImage::FdsDisk { .. } => f.write_str("headerless"),
        }
    }
}

impl DatImage {
    /// What the image is, in words a report uses.
    pub fn words(self) -> String {
        match self {
            DatImage::Layout(layout) => format!("the {layout} image"),
            DatImage::FdsDisk { had_header: true } => format!(
                "the disk image without its {}-byte fwNES header",
                crate::system::fds::FWNES_HEADER_LEN
            ),
            DatImage::FdsDisk { had_header: false } => {
                "the disk image (the file has no fwNES header)".to_string()
            }
        }
    }

    /// Which image a match is reported by when several match: the one a
    /// skipper DAT describes, then the normalized image (what DATs hash
    /// for most systems), the deinterleaved one (what headered DATs, iNES,
    /// hash), the raw file.
    fn rank(self) -> u8 {
        match self {
            DatImage::FdsDisk { .. } => 0,
            DatImage::Layout(ImageLayout::Normalized) => 1,
            DatImage::Layout(ImageLayout::Deinterleaved) => 2,
            DatImage::Layout(ImageLayout::Raw) => 3,
        }
    }
}

/// One ROM a DAT lists, with its name read out of the DAT's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatRom {
    /// As the DAT writes it (untrusted: see [`safe_rom_path`]).
    pub name: String,
    pub size: u64,
    pub crc32: Option<u32>,
    pub md5: Option<[u8; 16]>,
    pub sha1: Option<[u8; 20]>,
}

impl DatRom {
    fn hashes(&self) -> Hashes {
        Hashes {
            size: self.size,
            crc32: self.crc32,
            md5: self.md5,
            sha1: self.sha1,
        }
    }

    fn with_name(name: String, hashes: Hashes) -> DatRom {
        DatRom {
            name,
            size: hashes.size,
            crc32: hashes.crc32,
            md5: hashes.md5,
            sha1: hashes.sha1,
        }
    }
}

/// One game of a DAT and its ROMs, read out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatGame {
    pub name: String,
    /// The number of its first ROM in the DAT.
    pub first_rom: u32,
    pub roms: Vec<DatRom>,
}

/// One DAT file, parsed: its header, and its entries held compactly (a
/// large DAT's names are more bytes than its hashes). The hashes are in
/// arrays ([`HashTable`]); the names in compressed blocks
/// ([`NameArena`]), read out only when asked for: a game's name, then
/// its ROMs' names, game after game. A game's name that is its first
/// ROM's name less the extension, as No-Intro's almost always are, is
/// not stored again.
#[derive(Clone, Default)]
pub struct Dat {
    /// The file it came from (`archive.zip//member.dat` for a member).
    pub source: String,
    /// The header's name (untrusted text), or the file's stem if it has none.
    pub name: String,
    pub version: Option<String>,
    /// The header skipper the DAT names (`nes.xml`...), if any: its hashes
    /// are of the image without the copier/iNES header.
    pub skipper: Option<String>,
    hashes: HashTable,
    /// Each game's first ROM (its ROMs follow each other).
    game_starts: Column<u32>,
    names: NameArena,
    /// The game started last, until its first ROM says whether its name
    /// is that ROM's stem.
    pending_game: Option<String>,
}

/// How a game's name is stored: the first byte of its string.
const GAME_NAME_IS_STEM: u8 = 0;
const GAME_NAME_FOLLOWS: u8 = 1;

/// A ROM name less its extension, which a game's name usually is.
fn stem_of(rom_name: &str) -> &str {
    match rom_name.rsplit_once('.') {
        Some((stem, ext)) if !ext.contains(['/', '\\']) => stem,
        _ => rom_name,
    }
}

impl fmt::Debug for Dat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dat")
            .field("source", &self.source)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("skipper", &self.skipper)
            .field("games", &self.games().collect::<Vec<_>>())
            .finish()
    }
}

/// Two DATs are equal when they say the same: header and games.
impl PartialEq for Dat {
    fn eq(&self, other: &Dat) -> bool {
        (&self.source, &self.name, &self.version, &self.skipper)
            == (&other.source, &other.name, &other.version, &other.skipper)
            && self.game_count() == other.game_count()
            && self.rom_count() == other.rom_count()
            && self.games().eq(other.games())
    }
}

impl Eq for Dat {}

impl Dat {
    /// A DAT of no games, for writing one (tests, generated fixtures).
    pub fn new(source: &str, name: &str) -> Dat {
        Dat {
            source: source.to_string(),
            name: name.to_string(),
            ..Dat::default()
        }
    }

    /// Adds a game and its ROMs. No check that the name is new: the
    /// parsers' builder does that.
    pub fn add_game(&mut self, name: &str, roms: &[DatRom]) -> Result<(), String> {
        self.start_game(name.to_string())?;
        for rom in roms {
            self.push_rom(rom)?;
        }
        self.close_game()
    }

    pub fn rom_count(&self) -> usize {
        self.hashes.entry_count()
    }

    pub fn game_count(&self) -> usize {
        self.game_starts.len()
    }

    /// The number of the string of game `game`'s name; its ROMs' follow.
    fn game_string(&self, game: u32) -> Option<u32> {
        self.game_starts.get(game as usize)?.checked_add(game)
    }

    fn start_game(&mut self, name: String) -> Result<u32, String> {
        self.close_game()?;
        let game = u32::try_from(self.game_starts.len()).map_err(|_| "too many games")?;
        let first = u32::try_from(self.hashes.entry_count()).map_err(|_| "too many roms")?;
        first.checked_add(game).ok_or("too many games and roms")?;
        self.game_starts.push(first);
        self.pending_game = Some(name);
        Ok(game)
    }

    /// Stores the started game's name in full: it has no ROM whose stem
    /// it could be.
    fn close_game(&mut self) -> Result<(), String> {
        if let Some(name) = self.pending_game.take() {
            let mut record = vec![GAME_NAME_FOLLOWS];
            record.extend_from_slice(name.as_bytes());
            self.names.push(&record).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Adds a ROM to the game started last.
    fn push_rom(&mut self, rom: &DatRom) -> Result<(), String> {
        if self.game_starts.is_empty() {
            return Err("a rom outside any game".into());
        }
        if let Some(game) = self.pending_game.take() {
            if game == stem_of(&rom.name) {
                self.names.push(&[GAME_NAME_IS_STEM])
            } else {
                let mut record = vec![GAME_NAME_FOLLOWS];
                record.extend_from_slice(game.as_bytes());
                self.names.push(&record)
            }
            .map_err(|e| e.to_string())?;
        }
        u32::try_from(self.hashes.entry_count() + 1).map_err(|_| "too many roms")?;
        self.names
            .push(rom.name.as_bytes())
            .map_err(|e| e.to_string())?;
        self.hashes.push(&rom.hashes());
        Ok(())
    }

    /// Seals the names and sorts the index: called once the last game
    /// is added (more may be added after, at the cost of sorting again).
    fn finish(&mut self) -> Result<(), String> {
        self.close_game()?;
        self.names.finish().map_err(|e| e.to_string())?;
        self.game_starts.shrink_to_fit();
        self.hashes.index();
        Ok(())
    }

    /// The game that ROM `rom` belongs to.
    pub fn game_of(&self, rom: u32) -> Option<u32> {
        if rom as usize >= self.hashes.entry_count() {
            return None;
        }
        // The last game starting at or before it: games without ROMs
        // start where the next one does.
        let after = self.game_starts.partition_point(|start| start <= rom);
        after.checked_sub(1).map(|game| game as u32)
    }

    /// ROM `rom`, its name read out.
    pub fn rom(&self, rom: u32) -> Option<DatRom> {
        let game = self.game_of(rom)?;
        let string = rom.checked_add(game)?.checked_add(1)?;
        let name = text_of(&self.names.get(string)?);
        Some(DatRom::with_name(name, self.hashes.get(rom)?))
    }

    /// The size and hashes of ROM `rom`.
    pub fn hashes(&self, rom: u32) -> Option<Hashes> {
        self.hashes.get(rom)
    }

    /// The name of game `game`.
    pub fn game_name(&self, game: u32) -> Option<String> {
        let string = self.game_string(game)?;
        let mut cursor = Cursor::default();
        let record = cursor.get(&self.names, string)?.to_vec();
        match record.split_first() {
            Some((&GAME_NAME_FOLLOWS, name)) => Some(text_of(name)),
            Some((&GAME_NAME_IS_STEM, [])) => {
                let first_rom = text_of(cursor.get(&self.names, string + 1)?);
                Some(stem_of(&first_rom).to_string())
            }
            _ => None,
        }
    }

    /// Every game with its ROMs, in DAT order, the names read out once.
    pub fn games(&self) -> impl Iterator<Item = DatGame> + '_ {
        let mut cursor = Cursor::default();
        (0..self.game_starts.len() as u32).map_while(move |game| {
            let string = self.game_string(game)?;
            let first_rom = self.game_starts.get(game as usize)?;
            let end = self
                .game_starts
                .get(game as usize + 1)
                .unwrap_or(self.hashes.entry_count() as u32);
            let record = cursor.get(&self.names, string)?.to_vec();
            let mut roms = Vec::new();
            for (n, rom) in (first_rom..end).enumerate() {
                let name = text_of(cursor.get(&self.names, string + 1 + n as u32)?);
                roms.push(DatRom::with_name(name, self.hashes.get(rom)?));
            }
            let name = match record.split_first() {
                Some((&GAME_NAME_FOLLOWS, name)) => text_of(name),
                Some((&GAME_NAME_IS_STEM, [])) => stem_of(&roms.first()?.name).to_string(),
                _ => return None,
            };
            Some(DatGame {
                name,
                first_rom,
                roms,
            })
        })
    }

    /// Every ROM in DAT order, the names read out once.
    pub fn roms(&self) -> impl Iterator<Item = DatRom> + '_ {
        self.games().flat_map(|game| game.roms)
    }

    /// Whether its hashes are of the image `image`: a DAT naming a header
    /// skipper hashes images without the header it names. For iNES and
    /// LNX that is the normalized image (the raw file too when it has no
    /// header: then the two are one); for an FDS disk's fwNES header,
    /// which the normalized image keeps, the disk image. A skipper the
    /// code does not know may be either.
    pub fn hashes_image(&self, image: DatImage) -> bool {
        match (self.skipper.as_deref(), image) {
            (None, DatImage::Layout(_)) => true,
            (None, DatImage::FdsDisk { .. }) => false,
            (Some(_), DatImage::Layout(layout)) => layout == ImageLayout::Normalized,
            (Some(skipper), DatImage::FdsDisk { .. }) => {
                skipper == FDS_SKIPPER || !KNOWN_SKIPPERS.contains(&skipper)
            }
        }
    }

    /// What a report says of a DAT with a header skipper.
    pub fn skipper_note(&self) -> Option<String> {
        self.skipper.as_ref().map(|skipper| {
            format!(
                "the DAT hashes headerless images (header skipper {})",
                crate::text::str_as_text(skipper)
            )
        })
    }

    /// The bytes its entries hold on the heap (hashes, index and names).
    pub fn heap_bytes(&self) -> usize {
        self.hashes.heap_bytes() + self.game_starts.heap_bytes() + self.names.heap_bytes()
    }
}

/// A name as stored: the DAT's text, which was UTF-8.
fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The header skippers the code knows, by the names reports give them.
const KNOWN_SKIPPERS: [&str; 4] = ["a7800.xml", "lynx.xml", FDS_SKIPPER, "nes.xml"];

const FDS_SKIPPER: &str = "fds.xml";

/// The header skipper a DAT header names: a known one by the names
/// clrmamepro and No-Intro give them (`nes.xml`, `No-Intro_NES.xml`,
/// `No-Intro_FDS.xml`...), any other `.xml` by its own name (the DAT still
/// hashes headerless images). A system's name counts only as a whole
/// word: `snes.xml` is not `nes.xml`.
pub fn skipper_of(header: &str) -> Option<String> {
    let header = header.trim();
    let lower = header.to_ascii_lowercase();
    let stem = lower.strip_suffix(".xml")?;
    let known = KNOWN_SKIPPERS.into_iter().find(|skipper| {
        let system = skipper.trim_end_matches(".xml");
        stem.strip_suffix(system)
            .is_some_and(|before| !before.ends_with(|c: char| c.is_ascii_alphanumeric()))
    });
    Some(known.unwrap_or(header).to_string())
}

/// Builds a DAT while it is parsed: refuses a game name twice and checks
/// each entry's fields.
pub(crate) struct DatBuilder {
    dat: Dat,
    /// A 32-bit hash of each game's name so far, seeded anew each run (a
    /// DAT cannot be made to collide on purpose): a name whose hash was
    /// seen is compared with the names read back, which is rare.
    seen_games: HashSet<u32, BuildHasherDefault<rustc_hash::FxHasher>>,
    seed: std::collections::hash_map::RandomState,
}

impl DatBuilder {
    pub(crate) fn new(source: &str) -> DatBuilder {
        DatBuilder {
            dat: Dat::new(source, ""),
            seen_games: HashSet::default(),
            seed: std::collections::hash_map::RandomState::new(),
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
    pub(crate) fn game(&mut self, name: String) -> Result<(), String> {
        use std::hash::BuildHasher;
        // The game before is stored first, so that reading back sees it.
        self.dat.close_game()?;
        let key = self.seed.hash_one(&name) as u32;
        if !self.seen_games.insert(key) && self.dat.games().any(|game| game.name == name) {
            return Err(format!(
                "the game '{}' is listed twice",
                crate::text::str_as_text(&name)
            ));
        }
        self.dat.start_game(name)?;
        Ok(())
    }

    /// Adds a ROM to the game started last, from its fields as text.
    pub(crate) fn rom(&mut self, fields: &RomFields) -> Result<(), String> {
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
        self.dat.push_rom(&DatRom {
            name,
            size,
            crc32,
            md5,
            sha1,
        })
    }

    pub(crate) fn finish(mut self) -> Result<Dat, String> {
        self.seen_games = HashSet::default();
        self.dat.finish()?;
        if self.dat.name.trim().is_empty() {
            let file = self.dat.source.rsplit(['/', '\\']).next().unwrap_or("");
            self.dat.name = crate::library::split_name(file).0.to_string();
        }
        Ok(self.dat)
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
    pub image: DatImage,
    pub by: HashKind,
}

/// An entry whose size and CRC32 agree with an image while its stronger
/// hash does not: a bad or altered dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrcOnly {
    pub entry: EntryRef,
    pub image: DatImage,
    /// The stronger hash that disagrees.
    pub disagrees: HashKind,
}

/// What the loaded DATs say of one ROM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Each entry matched once, by the first image (see
    /// [`DatImage::rank`]) that matches it.
    pub matches: Vec<DatMatch>,
    pub crc_only: Vec<CrcOnly>,
}

/// Every DAT loaded, each indexed by size and CRC32.
#[derive(Debug, Default)]
pub struct DatSet {
    pub dats: Vec<Dat>,
}

impl DatSet {
    pub fn new(mut dats: Vec<Dat>) -> DatSet {
        for dat in &mut dats {
            // A DAT made by `add_game` rather than parsed is finished here.
            if (!dat.hashes.is_indexed() || dat.pending_game.is_some())
                && let Err(problem) = dat.finish()
            {
                log::warn!("{}: {problem}", dat.source);
            }
        }
        DatSet { dats }
    }

    /// The entries of this size and CRC32 (`None`: those without one).
    fn entries_with(&self, size: u64, crc32: Option<u32>) -> impl Iterator<Item = EntryRef> + '_ {
        self.dats.iter().enumerate().flat_map(move |(dat_at, dat)| {
            dat.hashes
                .entries_with(size, crc32)
                .map(move |rom| EntryRef {
                    dat: dat_at as u32,
                    rom,
                })
        })
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

    /// An entry, its name read out.
    pub fn entry(&self, entry: EntryRef) -> Option<(&Dat, DatRom)> {
        let dat = self.dats.get(entry.dat as usize)?;
        Some((dat, dat.rom(entry.rom)?))
    }

    /// The name of an entry's game.
    fn game_name_of(&self, entry: EntryRef) -> String {
        self.dats
            .get(entry.dat as usize)
            .and_then(|dat| dat.game_name(dat.game_of(entry.rom)?))
            .unwrap_or_default()
    }

    /// Whether some entry has the size of one of a ROM's `images` (each
    /// its layout and size) in a DAT that hashes that image: only then is
    /// the ROM worth hashing.
    pub fn wants_any_size(&self, images: &[(DatImage, u64)]) -> bool {
        images.iter().any(|&(image, size)| {
            self.dats
                .iter()
                .any(|dat| dat.hashes_image(image) && dat.hashes.has_size(size))
        })
    }

    /// Whether some DAT hashes FDS disks without their fwNES header (it
    /// names the `fds.xml` skipper): only then is that image hashed.
    pub fn hashes_fds_disks(&self) -> bool {
        self.dats
            .iter()
            .any(|dat| dat.hashes_image(DatImage::FdsDisk { had_header: true }))
    }

    /// The bytes the entries of every DAT hold on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.dats.iter().map(Dat::heap_bytes).sum()
    }

    /// What the DATs say of a ROM whose images have these sizes and digests.
    pub fn verdict(&self, images: &[(DatImage, u64, Digests)]) -> Verdict {
        let mut verdict = Verdict::default();
        let mut seen = HashSet::new();
        let mut ranked: Vec<_> = images.iter().collect();
        ranked.sort_by_key(|(image, ..)| image.rank());
        for (image, size, digests) in ranked {
            let with_crc = self.entries_with(*size, Some(digests.crc32));
            let without = self.entries_with(*size, None);
            for entry in with_crc.chain(without) {
                let Some(rom) = self
                    .dats
                    .get(entry.dat as usize)
                    .filter(|dat| dat.hashes_image(*image))
                    .and_then(|dat| dat.hashes(entry.rom))
                else {
                    continue;
                };
                let Some(strongest) = rom.strongest() else {
                    continue;
                };
                if rom.agrees(strongest, digests) {
                    if seen.insert(entry) {
                        verdict.matches.push(DatMatch {
                            entry,
                            image: *image,
                            by: strongest,
                        });
                    }
                } else if rom.agrees(HashKind::Crc32, digests)
                    && !verdict.crc_only.iter().any(|c| c.entry == entry)
                {
                    verdict.crc_only.push(CrcOnly {
                        entry,
                        image: *image,
                        disagrees: strongest,
                    });
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
                "  {}{}: game '{}', rom '{}'\n    {} matches by size and {}\n",
                crate::text::str_as_text(&dat.name),
                dat.version
                    .as_deref()
                    .map(|v| format!(" (version {})", crate::text::str_as_text(v)))
                    .unwrap_or_default(),
                crate::text::str_as_text(&self.game_name_of(found.entry)),
                crate::text::str_as_text(&rom.name),
                found.image.words(),
                found.by,
            ));
            if let Some(note) = dat.skipper_note() {
                text.push_str(&format!("    {note}\n"));
            }
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
            if let Some(note) = dat.skipper_note() {
                text.push_str(&format!("    {note}\n"));
            }
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
                    "dat_skipper": dat.skipper,
                    "game": self.game_name_of(entry),
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
                value["image"] = found.image.to_string().into();
                value["image_is"] = found.image.words().into();
                value["matched_by"] = found.by.to_string().into();
                Some(value)
            })
            .collect();
        let bad: Vec<serde_json::Value> = verdict
            .crc_only
            .iter()
            .filter_map(|bad| {
                let mut value = entry_json(bad.entry)?;
                value["image"] = bad.image.to_string().into();
                value["image_is"] = bad.image.words().into();
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

/// The disk image of an FDS ROM whose bytes are `raw`, as a DAT naming
/// the `fds.xml` skipper hashes it: its size and digests (`raw_digests`,
/// those of `raw`, when it has no fwNES header: the disk is the file).
pub fn fds_disk_digests(raw: &[u8], raw_digests: &Digests) -> (DatImage, u64, Digests) {
    let disk = crate::system::fds::disk_image(raw);
    let had_header = disk.len() != raw.len();
    let digests = if had_header {
        Digests::of(disk)
    } else {
        raw_digests.clone()
    };
    (DatImage::FdsDisk { had_header }, disk.len() as u64, digests)
}

/// A ROM's images as the DATs see them, with its FDS disk image when it is
/// an FDS ROM and some DAT hashes FDS disks.
fn dat_images(
    dats: &DatSet,
    raw: &[u8],
    layout: &crate::system::Layout,
    images: Vec<(ImageLayout, u64, Digests)>,
) -> Vec<(DatImage, u64, Digests)> {
    let fds_disk = (layout.system == crate::system::SystemType::Fds && dats.hashes_fds_disks())
        .then(|| {
            images
                .iter()
                .find(|(image, ..)| *image == ImageLayout::Raw)
                .map(|(_, _, raw_digests)| fds_disk_digests(raw, raw_digests))
        })
        .flatten();
    images
        .into_iter()
        .map(|(image, size, digests)| (image.into(), size, digests))
        .chain(fds_disk)
        .collect()
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

/// Adds what the DATs say of a ROM to its `info` table and JSON object
/// (`"dat"`), from the bytes `info` read (`name` is the file's or
/// archive member's, as detection reads it): the ROM is not read again.
pub fn add_to_report(
    dats: &DatSet,
    name: &str,
    bytes: &[u8],
    forced: Option<crate::system::SystemType>,
    table: &mut String,
    object: &mut serde_json::Value,
) {
    let Ok(layout) = crate::system::identify(Some(name), bytes, forced) else {
        return;
    };
    let verdict = match image_digests(bytes, &layout) {
        Ok(images) => dats.verdict(&dat_images(dats, bytes, &layout, images)),
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
    let entries: usize = set.dats.iter().map(Dat::rom_count).sum();
    log::info!(
        "{} DATs loaded ({entries} entries, {} KiB in memory), {} not",
        set.dats.len(),
        set.heap_bytes() / 1024,
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
            proptest::option::of(prop_oneof![
                Just("nes.xml"),
                Just("lynx.xml"),
                Just("fds.xml"),
                Just("snes.xml")
            ]),
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
                let mut dat = Dat::new("generated.dat", name.trim());
                dat.version = version;
                dat.skipper = skipper.map(String::from);
                if dat.name.is_empty() {
                    dat.name = "generated".into();
                }
                let mut seen = HashSet::new();
                for (game, roms) in games {
                    if !seen.insert(game.clone()) {
                        continue;
                    }
                    let roms: Vec<DatRom> = roms
                        .into_iter()
                        .map(|(name, size, crc32, md5, sha1)| DatRom {
                            // Half the games are named as No-Intro's are:
                            // their first rom's name less its extension.
                            name: if size % 2 == 0 {
                                format!("{game}.{name}")
                            } else {
                                name
                            },
                            size,
                            crc32,
                            md5,
                            sha1,
                        })
                        .collect();
                    dat.add_game(&game, &roms).unwrap();
                }
                dat
            })
    }

    fn rom(size: u64, crc32: Option<u32>, md5: Option<[u8; 16]>, sha1: Option<[u8; 20]>) -> DatRom {
        DatRom {
            name: "Game (USA).sfc".into(),
            size,
            crc32,
            md5,
            sha1,
        }
    }

    fn one_dat(roms: Vec<DatRom>) -> DatSet {
        let mut dat = Dat::new("t.dat", "Test");
        dat.add_game("Game (USA)", &roms).unwrap();
        DatSet::new(vec![dat])
    }

    #[test]
    fn matches_by_the_strongest_hash() {
        let image = b"the normalized image";
        let digests = Digests::of(image);
        let other = Digests::of(b"something else");
        let len = image.len() as u64;
        let images = [
            (ImageLayout::Raw.into(), len + 512, other.clone()),
            (ImageLayout::Normalized.into(), len, digests.clone()),
            (ImageLayout::Deinterleaved.into(), len, digests.clone()),
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
                image: DatImage::Layout(ImageLayout::Normalized),
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
        assert!(!set.wants_any_size(&[
            (ImageLayout::Normalized.into(), len),
            (ImageLayout::Raw.into(), len + 512)
        ]));
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
        let images = [(ImageLayout::Normalized.into(), len, digests)];
        let found: Vec<u32> = set
            .verdict(&images)
            .matches
            .iter()
            .map(|m| m.entry.rom)
            .collect();
        assert_eq!(found, [3, 2]);
        let sizes = |sizes: &[u64]| -> Vec<(DatImage, u64)> {
            sizes
                .iter()
                .map(|&size| (ImageLayout::Raw.into(), size))
                .collect()
        };
        assert!(set.wants_any_size(&sizes(&[0, len - 1])));
        assert!(set.wants_any_size(&sizes(&[len + 1])));
        assert!(!set.wants_any_size(&sizes(&[0, len - 2, len + 2])));
        assert!(!DatSet::new(Vec::new()).wants_any_size(&sizes(&[len])));
    }

    #[test]
    fn a_game_twice_is_refused_among_many() {
        let mut builder = DatBuilder::new("t.dat");
        for n in 0..1000 {
            builder.game(format!("Game {n}")).unwrap();
            if n % 2 == 0 {
                let fields = RomFields {
                    name: Some(format!("Game {n}.sfc")),
                    size: Some("1".into()),
                    ..RomFields::default()
                };
                builder.rom(&fields).unwrap();
            }
        }
        for twice in ["Game 500", "Game 501", "Game 999", "Game 0"] {
            assert_eq!(
                builder.game(twice.into()).unwrap_err(),
                format!("the game '{twice}' is listed twice")
            );
        }
        assert_eq!(builder.game("Game 1000".into()), Ok(()));
        let dat = builder.finish().unwrap();
        assert_eq!(dat.game_count(), 1001);
        assert_eq!(dat.rom_count(), 500);
        assert_eq!(dat.game_name(500).as_deref(), Some("Game 500"));
        assert_eq!(dat.game_name(501).as_deref(), Some("Game 501"));
        assert_eq!(dat.game_of(250), Some(500));
        assert_eq!(dat.rom(250).unwrap().name, "Game 500.sfc");
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
        // A system's name counts as a whole word: an unknown skipper keeps
        // its own name (the DAT still hashes headerless images).
        assert_eq!(skipper_of("snes.xml").as_deref(), Some("snes.xml"));
        assert_eq!(
            skipper_of("No-Intro_SNES.xml").as_deref(),
            Some("No-Intro_SNES.xml")
        );
        assert_eq!(
            skipper_of("No-Intro_SNES.XML ").as_deref(),
            Some("No-Intro_SNES.XML")
        );
        assert_eq!(skipper_of("FDS.XML").as_deref(), Some("fds.xml"));
        assert_eq!(skipper_of("atari-lynx.xml").as_deref(), Some("lynx.xml"));
        assert_eq!(skipper_of("other.txt"), None);
        assert_eq!(skipper_of(""), None);
    }

    fn dat_with_skipper(skipper: Option<&str>) -> Dat {
        let mut dat = Dat::new("t.dat", "T");
        dat.skipper = skipper.map(String::from);
        dat
    }

    #[test]
    fn which_images_a_dat_hashes_by_its_skipper() {
        let disk = DatImage::FdsDisk { had_header: true };
        let normalized = DatImage::Layout(ImageLayout::Normalized);
        let raw = DatImage::Layout(ImageLayout::Raw);
        let plain = dat_with_skipper(None);
        assert!(plain.hashes_image(raw) && plain.hashes_image(normalized));
        assert!(!plain.hashes_image(disk));
        let fds = dat_with_skipper(Some("fds.xml"));
        assert!(fds.hashes_image(disk) && fds.hashes_image(normalized));
        assert!(!fds.hashes_image(raw));
        // The iNES skipper cuts no fwNES header.
        let nes = dat_with_skipper(Some("nes.xml"));
        assert!(nes.hashes_image(normalized) && !nes.hashes_image(disk));
        // An unknown skipper may cut it.
        assert!(dat_with_skipper(Some("snes.xml")).hashes_image(disk));
        assert!(!DatSet::new(vec![nes.clone(), plain.clone()]).hashes_fds_disks());
        assert!(DatSet::new(vec![nes, fds]).hashes_fds_disks());
    }

    #[test]
    fn an_fds_disk_matches_a_skipper_dat_without_its_header() {
        let disk = b"\x01*NINTENDO-HVC*a disk side".to_vec();
        let mut headered = b"FDS\x1a\x01".to_vec();
        headered.resize(16, 0);
        headered.extend_from_slice(&disk);
        let disk_digests = Digests::of(&disk);
        let mut dat = dat_with_skipper(Some("fds.xml"));
        dat.name = "Nintendo - Family Computer Disk System".into();
        let entry = DatRom {
            name: "Disk (Japan).fds".into(),
            size: disk.len() as u64,
            crc32: Some(disk_digests.crc32),
            md5: None,
            sha1: Some(disk_digests.sha1),
        };
        dat.add_game("Disk (Japan)", &[entry]).unwrap();
        let set = DatSet::new(vec![dat]);
        let layout = crate::system::identify(Some("disk.fds"), &headered, None).unwrap();
        let images = dat_images(
            &set,
            &headered,
            &layout,
            image_digests(&headered, &layout).unwrap(),
        );
        assert_eq!(
            images.last(),
            Some(&(
                DatImage::FdsDisk { had_header: true },
                disk.len() as u64,
                disk_digests.clone()
            ))
        );
        let verdict = set.verdict(&images);
        assert_eq!(verdict.matches.len(), 1);
        assert_eq!(
            verdict.matches[0].image,
            DatImage::FdsDisk { had_header: true }
        );
        assert_eq!(
            set.describe(&verdict),
            "\nDAT\n  Nintendo - Family Computer Disk System: game 'Disk (Japan)', rom 'Disk (Japan).fds'\n    the disk image without its 16-byte fwNES header matches by size and SHA-1\n    the DAT hashes headerless images (header skipper fds.xml)\n"
        );
        let json = set.to_json(&verdict);
        assert_eq!(json["matches"][0]["image"], "headerless");
        assert_eq!(
            json["matches"][0]["image_is"],
            "the disk image without its 16-byte fwNES header"
        );
        assert_eq!(json["matches"][0]["dat_skipper"], "fds.xml");
        // A headerless file is its disk: the same digests, no hashing again.
        let layout = crate::system::identify(Some("disk.fds"), &disk, None).unwrap();
        let images = dat_images(&set, &disk, &layout, image_digests(&disk, &layout).unwrap());
        let verdict = set.verdict(&images);
        assert_eq!(
            verdict.matches[0].image,
            DatImage::FdsDisk { had_header: false }
        );
        assert!(set.describe(&verdict).contains(
            "    the disk image (the file has no fwNES header) matches by size and SHA-1\n"
        ));
        // Without a DAT that hashes disks, the disk image is not made.
        let plain = DatSet::new(vec![dat_with_skipper(None)]);
        let layout = crate::system::identify(Some("disk.fds"), &headered, None).unwrap();
        let images = dat_images(
            &plain,
            &headered,
            &layout,
            image_digests(&headered, &layout).unwrap(),
        );
        assert_eq!(images.len(), 3);
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
        fn a_skipper_named_once_is_named_the_same_again(header in "[ -~]{0,20}") {
            let named = skipper_of(&header);
            prop_assert_eq!(named.is_some(), header.trim().to_ascii_lowercase().ends_with(".xml"));
            if let Some(named) = named {
                prop_assert_eq!(skipper_of(&named), Some(named.clone()));
                prop_assert!(KNOWN_SKIPPERS.contains(&named.as_str()) || named == header.trim());
            }
        }

        #[test]
        fn a_known_skipper_is_found_after_any_word(prefix in "[A-Za-z0-9 -]{0,12}", at in 0usize..4) {
            let known = KNOWN_SKIPPERS[at];
            let header = format!("{prefix}_{}", known.to_ascii_uppercase());
            prop_assert_eq!(skipper_of(&header), Some(known.to_string()));
        }

        #[test]
        fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse("fuzz.dat", &bytes);
        }
    }
}
