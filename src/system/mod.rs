//! The system engine: per console family, find what wraps a dump (copier
//! headers, interleave, byte order), turn it into NINJA 2.0's common format
//! ("normalized") and back into the layout emulators play ("deinterleaved").
//!
//! Work is split in two so that a filesystem can list thousands of ROMs
//! cheaply: [`analyze`] reads only headers and returns a [`Layout`] with exact
//! sizes; [`normalize`] and [`restore`] then touch the data.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod checksum;
pub mod fds;
mod gb;
mod gba;
mod lynx;
mod n64;
mod nes;
mod pce;
mod sega;
mod snes;

pub use checksum::{
    ChecksumError, ChecksumField, ChecksumStatus, Endian, FieldChange, Fixed, checksum_status,
    fix_checked, fix_checksum, has_checksum, status_words,
};
pub use snes::{CHART_20MBIT, CHART_24MBIT, CHART_48MBIT};

/// The console families NINJA 2.0 knows; the discriminant is NINJA2's
/// `FILE_TYPE` byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SystemType {
    Raw = 0,
    Nes = 1,
    Fds = 2,
    Snes = 3,
    N64 = 4,
    Gb = 5,
    Sms = 6,
    Mega = 7,
    Pce = 8,
    Lynx = 9,
}

impl SystemType {
    pub const ALL: [SystemType; 10] = [
        SystemType::Raw,
        SystemType::Nes,
        SystemType::Fds,
        SystemType::Snes,
        SystemType::N64,
        SystemType::Gb,
        SystemType::Sms,
        SystemType::Mega,
        SystemType::Pce,
        SystemType::Lynx,
    ];

    /// NINJA2's `FILE_TYPE` byte.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<SystemType> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// The word used on the command line and in JSON.
    pub fn word(self) -> &'static str {
        match self {
            SystemType::Raw => "raw",
            SystemType::Nes => "nes",
            SystemType::Fds => "fds",
            SystemType::Snes => "snes",
            SystemType::N64 => "n64",
            SystemType::Gb => "gb",
            SystemType::Sms => "sms",
            SystemType::Mega => "mega",
            SystemType::Pce => "pce",
            SystemType::Lynx => "lynx",
        }
    }

    /// A name for people.
    pub fn name(self) -> &'static str {
        match self {
            SystemType::Raw => "raw (no system)",
            SystemType::Nes => "NES / Famicom",
            SystemType::Fds => "Famicom Disk System",
            SystemType::Snes => "Super NES / Super Famicom",
            SystemType::N64 => "Nintendo 64",
            SystemType::Gb => "Game Boy",
            SystemType::Sms => "Master System / Game Gear",
            SystemType::Mega => "Mega Drive / Genesis",
            SystemType::Pce => "PC Engine / TurboGrafx-16",
            SystemType::Lynx => "Atari Lynx",
        }
    }
}

impl fmt::Display for SystemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl FromStr for SystemType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.word() == lower)
            .ok_or_else(|| {
                let words: Vec<&str> = Self::ALL.iter().map(|t| t.word()).collect();
                format!("unknown system '{s}': use one of {}", words.join(" "))
            })
    }
}

/// Why a dump could not be read as the system it was said to be.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SystemError {
    #[error("the file is empty")]
    Empty,

    #[error("too small for a {system} image: {len} bytes, and at least {need} are needed")]
    TooSmall {
        system: &'static str,
        len: usize,
        need: usize,
    },

    #[error("not a NES image: no iNES, Famtasia (FFE) or UNIF header found")]
    NotNes,

    #[error(
        "UNIF chunk '{id}' at offset {offset:#x} claims {len} bytes but only {available} remain: the file is truncated or corrupt"
    )]
    UnifChunkOverrun {
        id: String,
        offset: usize,
        len: u64,
        available: usize,
    },

    #[error("UNIF file ends inside a chunk header at offset {offset:#x}: the file is truncated")]
    UnifTruncatedChunk { offset: usize },

    #[error("UNIF file holds no PRG or CHR chunk, so there is no game data in it")]
    UnifNoRomData,

    #[error(
        "the image is {actual} bytes but the UNIF file's PRG/CHR chunks hold {expected}: a UNIF file's chunk sizes cannot change"
    )]
    UnifSizeChanged { expected: usize, actual: usize },

    #[error("not a Game Boy image: the Nintendo logo is missing at 0x104")]
    NoGameBoyLogo,

    #[error(
        "Super Magic Drive dump holds {len} bytes after its header, not a whole number of 16 KiB blocks: the file is truncated or not an SMD dump"
    )]
    SmdPartialBlock { len: usize },

    #[error("the layout given was read from a {expected}-byte file, not this {actual}-byte one")]
    LayoutMismatch { expected: usize, actual: usize },
}

/// A header found in front of (or, for UNIF, around) the game data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HeaderKind {
    /// iNES (or NES 2.0), 16 bytes, kept.
    Ines,
    /// NES 2.0, 16 bytes, kept.
    Nes20,
    /// Famtasia / Front Fareast, 512 bytes, kept.
    Ffe,
    /// UNIF container, kept around the PRG/CHR chunks.
    Unif,
    /// A 512-byte SNES copier header, dropped.
    SnesCopier(Copier),
    /// A 512-byte NSRT header, kept.
    Nsrt,
    /// Game Boy SmartCard header, 512 bytes, dropped.
    SmartCard,
    /// Super Magic Drive header, 512 bytes, dropped.
    Smd,
    /// Magic Super Griffin header, 512 bytes, dropped.
    MagicGriffin,
    /// Atari Lynx LNX header, 64 bytes, kept.
    Lnx,
}

impl HeaderKind {
    /// Whether NINJA 2.0's write-back puts this header back (its bytes are
    /// then in [`Layout::header_bytes`]). The deinterleaved image may put
    /// another in its place: see [`Layout::conversion`].
    pub fn kept(self) -> bool {
        matches!(
            self,
            HeaderKind::Ines
                | HeaderKind::Nes20
                | HeaderKind::Ffe
                | HeaderKind::Unif
                | HeaderKind::Nsrt
                | HeaderKind::Lnx
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            HeaderKind::Ines => "iNES",
            HeaderKind::Nes20 => "NES 2.0",
            HeaderKind::Ffe => "Famtasia/FFE",
            HeaderKind::Unif => "UNIF",
            HeaderKind::SnesCopier(_) => "copier",
            HeaderKind::Nsrt => "NSRT",
            HeaderKind::SmartCard => "SmartCard",
            HeaderKind::Smd => "Super Magic Drive",
            HeaderKind::MagicGriffin => "Magic Super Griffin",
            HeaderKind::Lnx => "LNX",
        }
    }
}

/// Which SNES copier wrote a 512-byte header, as far as its bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Copier {
    GameDoctor,
    SuperUfo,
    SuperWildCard,
    ProFighter,
    Unknown,
}

impl Copier {
    pub fn name(self) -> &'static str {
        match self {
            Copier::GameDoctor => "Game Doctor SF3",
            Copier::SuperUfo => "Super UFO",
            Copier::SuperWildCard => "Super Wild Card / SMC",
            Copier::ProFighter => "Pro Fighter",
            Copier::Unknown => "unknown copier",
        }
    }
}

/// How the game data is shuffled in the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Interleave {
    None,
    /// SNES HiROM stored with the 20 Mbit chart.
    SnesChart20,
    /// SNES HiROM stored with the 24 Mbit chart.
    SnesChart24,
    /// SNES ExHiROM stored with the 48 Mbit chart.
    SnesChart48,
    /// SNES HiROM stored odd 32 KiB blocks first, then even ones.
    SnesGeneric,
    /// Super Magic Drive: each 16 KiB block holds odd bytes, then even bytes.
    Smd,
}

impl Interleave {
    pub fn name(self) -> &'static str {
        match self {
            Interleave::None => "none",
            Interleave::SnesChart20 => "SNES HiROM, 20 Mbit chart",
            Interleave::SnesChart24 => "SNES HiROM, 24 Mbit chart",
            Interleave::SnesChart48 => "SNES ExHiROM, 48 Mbit chart",
            Interleave::SnesGeneric => "SNES HiROM, odd/even 32 KiB blocks",
            Interleave::Smd => "SMD, odd/even bytes in 16 KiB blocks",
        }
    }
}

/// Byte order of an N64 dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ByteOrder {
    /// Big-endian (.z64), the native order.
    Big,
    /// Every 16-bit pair swapped (.v64).
    Swapped16,
    /// Every 32-bit word reversed (.n64).
    Little32,
}

impl ByteOrder {
    pub fn name(self) -> &'static str {
        match self {
            ByteOrder::Big => "big-endian (z64)",
            ByteOrder::Swapped16 => "byte-swapped (v64)",
            ByteOrder::Little32 => "little-endian (n64)",
        }
    }
}

/// One piece of a UNIF file: bytes kept verbatim, or a PRG/CHR chunk's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnifPiece {
    Kept { offset: usize, len: usize },
    Rom { offset: usize, len: usize },
}

/// How the deinterleaved image departs from NINJA 2.0's write-back for a
/// dump that emulators refuse in the form NINJA wrote it. NINJA's form
/// stays available: [`Layout::ninja_write_back`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Conversion {
    /// These bytes in place of `header_bytes`: the dumped header with the
    /// bytes emulators check set right (an iNES header whose magic is
    /// `NES\x19`), or nothing (an NSRT header, which SNES emulators do not
    /// skip).
    Header(Vec<u8>),
    /// A Famtasia/FFE dump as an iNES file: a 16-byte iNES header in place
    /// of the 512-byte FFE one.
    FfeToInes(InesFromFfe),
}

/// The iNES file made from a Famtasia/FFE dump: what its header says, and
/// the copier padding left out. The header is made when restoring, from the
/// normalized image's length (a patch may change it), so it never claims
/// more PRG/CHR than the file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InesFromFfe {
    pub mapper: u8,
    /// Vertical (`true`) or horizontal nametable mirroring.
    pub vertical: bool,
    /// The normalized image starts with a 512-byte trainer.
    pub trainer: bool,
    /// PRG and CHR bytes the iNES header declares (whole 16 KiB and 8 KiB
    /// banks), counted after the padding left out.
    pub prg_len: usize,
    pub chr_len: usize,
    /// A blank upper half of a 32 KiB PRG (a 16 KiB game padded by the
    /// copier tool), as offset and length in the normalized image: left out.
    pub skip: Option<(usize, usize)>,
}

/// What [`analyze`] found in a dump: everything needed to normalize it and to
/// restore the deinterleaved layout, and the exact sizes of both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub system: SystemType,
    pub raw_len: usize,
    /// The header found, if any; its bytes are in `header_bytes`.
    pub header: Option<HeaderKind>,
    /// The header's bytes when it is put back (kept headers only).
    pub header_bytes: Vec<u8>,
    /// Where the game data starts in the raw file and how long it is (all
    /// systems but UNIF, whose data is spread over chunks).
    pub data_offset: usize,
    pub data_len: usize,
    pub interleave: Interleave,
    pub byte_order: ByteOrder,
    /// UNIF only: the file cut into kept bytes and PRG/CHR data, in order.
    pub unif: Vec<UnifPiece>,
    /// UNIF only: the bytes kept verbatim, concatenated in file order.
    pub unif_kept: Vec<u8>,
    /// Where the deinterleaved image is not NINJA 2.0's write-back, because
    /// no emulator loads that (an FFE dump becomes an iNES file).
    #[serde(default)]
    pub conversion: Option<Conversion>,
    /// Things worth telling the user (a beta cart, a guess).
    pub notes: Vec<String>,
    /// PC Engine: every byte's bits are reversed (a US TurboGrafx-16 dump);
    /// the normalized and deinterleaved images have them in order.
    #[serde(default)]
    pub bits_reversed: bool,
}

impl Layout {
    fn plain(system: SystemType, raw: &[u8]) -> Layout {
        Layout {
            system,
            raw_len: raw.len(),
            header: None,
            header_bytes: Vec::new(),
            data_offset: 0,
            data_len: raw.len(),
            interleave: Interleave::None,
            byte_order: ByteOrder::Big,
            unif: Vec::new(),
            unif_kept: Vec::new(),
            conversion: None,
            notes: Vec::new(),
            bits_reversed: false,
        }
    }

    /// A layout whose first `header_len` bytes are a header and the rest is data.
    fn headered(system: SystemType, raw: &[u8], kind: HeaderKind, header_len: usize) -> Layout {
        let header_len = header_len.min(raw.len());
        Layout {
            header: Some(kind),
            header_bytes: if kind.kept() {
                raw[..header_len].to_vec()
            } else {
                Vec::new()
            },
            data_offset: header_len,
            data_len: raw.len() - header_len,
            ..Layout::plain(system, raw)
        }
    }

    /// Size of the header found in the raw file (0 if none).
    pub fn header_len(&self) -> usize {
        match self.header {
            None => 0,
            Some(HeaderKind::Unif) => self.raw_len - self.normalized_len(),
            Some(_) => self.data_offset,
        }
    }

    /// Exact size of the normalized image.
    pub fn normalized_len(&self) -> usize {
        if self.header == Some(HeaderKind::Unif) {
            self.unif
                .iter()
                .map(|p| match p {
                    UnifPiece::Rom { len, .. } => *len,
                    UnifPiece::Kept { .. } => 0,
                })
                .sum()
        } else {
            self.data_len
        }
    }

    /// Exact size of the deinterleaved image made from a normalized image of
    /// `normalized_len` bytes (which a patch may have changed).
    pub fn restored_len(&self, normalized_len: usize) -> usize {
        match &self.conversion {
            _ if self.header == Some(HeaderKind::Unif) => self.unif_kept.len() + normalized_len,
            Some(Conversion::Header(header)) => header.len() + normalized_len,
            Some(Conversion::FfeToInes(ines)) => ines.restored_len(normalized_len),
            None => self.header_bytes.len() + normalized_len,
        }
    }

    /// This layout with the deinterleaved image NINJA 2.0 wrote after
    /// patching: the dumped header put back as it was (an FFE dump keeps
    /// its FFE header), which is what NINJA-exact tools expect.
    pub fn ninja_write_back(&self) -> Layout {
        Layout {
            conversion: None,
            ..self.clone()
        }
    }

    /// True when the normalized image is the raw file itself, byte for byte.
    pub fn normalized_is_raw(&self) -> bool {
        self.header != Some(HeaderKind::Unif)
            && self.normalized_is_slice()
            && self.data_offset == 0
            && self.data_len == self.raw_len
    }

    /// True when the deinterleaved image is the raw file itself: nothing is
    /// converted, and a header, if any, is put back exactly where it was.
    pub fn deinterleaved_is_raw(&self) -> bool {
        self.header != Some(HeaderKind::Unif)
            && self.conversion.is_none()
            && self.normalized_is_slice()
            && self.header_bytes.len() == self.data_offset
            && self.data_offset + self.data_len == self.raw_len
    }

    /// True when the normalized image is a plain slice of the raw file.
    pub fn normalized_is_slice(&self) -> bool {
        match self.header {
            Some(HeaderKind::Unif) => {
                self.unif
                    .iter()
                    .filter(|p| matches!(p, UnifPiece::Rom { .. }))
                    .count()
                    <= 1
            }
            _ => {
                self.interleave == Interleave::None
                    && self.byte_order == ByteOrder::Big
                    && !self.bits_reversed
            }
        }
    }
}

/// Reads the headers of `raw` as a `system` dump and says how it is laid
/// out. Reads only what detection needs (headers, UNIF chunk headers), so
/// it is cheap on a memory-mapped file.
pub fn analyze(raw: &[u8], system: SystemType) -> Result<Layout, SystemError> {
    if raw.is_empty() && system != SystemType::Raw && system != SystemType::Fds {
        return Err(SystemError::Empty);
    }
    match system {
        // NINJA hashed FDS images whole: a type-2 .rup needs them raw.
        SystemType::Raw | SystemType::Fds => Ok(Layout::plain(system, raw)),
        SystemType::Nes => nes::analyze(raw),
        SystemType::Snes => snes::analyze(raw),
        SystemType::N64 => Ok(n64::analyze(raw)),
        SystemType::Gb => gb::analyze(raw),
        SystemType::Sms | SystemType::Mega => sega::analyze(raw, system),
        SystemType::Pce => Ok(pce::analyze(raw)),
        SystemType::Lynx => Ok(lynx::analyze(raw)),
    }
}

/// NINJA's common format of `raw`, laid out as `layout` (from [`analyze`] of
/// the same bytes) says. A header strip is a borrowed slice, not a copy.
pub fn normalize<'a>(raw: &'a [u8], layout: &Layout) -> Result<Cow<'a, [u8]>, SystemError> {
    if raw.len() != layout.raw_len {
        return Err(SystemError::LayoutMismatch {
            expected: layout.raw_len,
            actual: raw.len(),
        });
    }
    if layout.header == Some(HeaderKind::Unif) {
        return Ok(nes::unif_normalize(raw, layout));
    }
    let data = &raw[layout.data_offset..layout.data_offset + layout.data_len];
    if layout.bits_reversed {
        return Ok(Cow::Owned(pce::reverse_bits(data)));
    }
    Ok(match (layout.interleave, layout.byte_order) {
        (Interleave::None, ByteOrder::Big) => Cow::Borrowed(data),
        (Interleave::None, order) => Cow::Owned(n64::to_big_endian(data, order)),
        (Interleave::Smd, _) => Cow::Owned(sega::smd_deinterleave(data)),
        (snes_scheme, _) => Cow::Owned(snes::deinterleave(data, snes_scheme)),
    })
}

/// The deinterleaved image: `normalized` (possibly patched) with the headers
/// an emulator needs put back, as NINJA 2.0 wrote after patching, except
/// where emulators refuse what NINJA wrote ([`Layout::conversion`]: an FFE
/// dump becomes an iNES file).
pub fn restore<'a>(normalized: &'a [u8], layout: &Layout) -> Result<Cow<'a, [u8]>, SystemError> {
    if layout.header == Some(HeaderKind::Unif) {
        return nes::unif_restore(normalized, layout).map(Cow::Owned);
    }
    let header = match &layout.conversion {
        Some(Conversion::FfeToInes(ines)) => return Ok(Cow::Owned(ines.restore(normalized))),
        Some(Conversion::Header(header)) => header,
        None => &layout.header_bytes,
    };
    if header.is_empty() {
        return Ok(Cow::Borrowed(normalized));
    }
    let mut out = Vec::with_capacity(header.len() + normalized.len());
    out.extend_from_slice(header);
    out.extend_from_slice(normalized);
    Ok(Cow::Owned(out))
}

/// The system a file extension names, or `None` when it says nothing (or is
/// ambiguous, like `.bin`).
pub fn system_for_extension(file_name: &str) -> Option<SystemType> {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    let (stem, ext) = base.rsplit_once('.')?;
    // No extension named here is longer than four letters; the lowercase
    // copy lives on the stack, as a scan asks this of every file.
    if stem.is_empty() || ext.len() > 4 {
        return None;
    }
    let mut lower = [0u8; 4];
    let lower = &mut lower[..ext.len()];
    lower.copy_from_slice(ext.as_bytes());
    lower.make_ascii_lowercase();
    Some(match &*lower {
        b"nes" | b"unf" | b"unif" | b"ffe" => SystemType::Nes,
        b"fds" => SystemType::Fds,
        b"sfc" | b"smc" | b"swc" | b"fig" | b"gd3" | b"gd7" | b"ufo" | b"048" | b"058" | b"078" => {
            SystemType::Snes
        }
        b"z64" | b"v64" | b"n64" => SystemType::N64,
        b"gb" | b"gbc" | b"sgb" => SystemType::Gb,
        b"sms" | b"gg" => SystemType::Sms,
        b"md" | b"gen" | b"smd" => SystemType::Mega,
        b"pce" => SystemType::Pce,
        b"lnx" | b"lyx" => SystemType::Lynx,
        _ => return None,
    })
}

/// Guesses the system from the content alone: magic numbers first, then
/// internal headers. Reads only a few header bytes.
pub fn sniff(raw: &[u8]) -> SystemType {
    if raw.starts_with(b"NES\x1a") || raw.starts_with(b"UNIF") {
        return SystemType::Nes;
    }
    if raw.starts_with(b"FDS\x1a") {
        return SystemType::Fds;
    }
    if raw.starts_with(b"LYNX") {
        return SystemType::Lynx;
    }
    if n64::byte_order(raw).is_some() {
        return SystemType::N64;
    }
    if sega::looks_like_mega(raw) {
        return SystemType::Mega;
    }
    if sega::looks_like_sms(raw) {
        return SystemType::Sms;
    }
    if gb::has_logo_anywhere(raw) {
        return SystemType::Gb;
    }
    if snes::looks_like_snes(raw) {
        return SystemType::Snes;
    }
    if nes::looks_like_ffe(raw) {
        return SystemType::Nes;
    }
    SystemType::Raw
}

/// Which system a file is, without being told: by extension, then by
/// content. A file nothing recognizes is raw, never refused; one that looks
/// like a system but is damaged is shown raw too, with a note saying why.
pub fn detect(file_name: Option<&str>, raw: &[u8]) -> Layout {
    match detect_strict(file_name, raw) {
        Ok(layout) => layout,
        Err((system, error)) => {
            let mut layout = Layout::plain(SystemType::Raw, raw);
            layout.notes.push(format!(
                "looks like a {} image but cannot be read as one ({error}): shown as raw",
                system.name()
            ));
            layout
        }
    }
}

/// How many leading bytes [`detect_from_start`] needs.
pub const START_DETECTION_LEN: usize = 0x400;

/// [`detect`] of a file whose name says it is a Game Boy, iNES, FDS, N64 or
/// Lynx image, from its first [`START_DETECTION_LEN`] bytes: `raw` is as
/// long as the file, but only those bytes need have been read. All these
/// systems keep their headers there, so when the name's system reads the
/// file as its own, `detect` of the whole file gives the same layout
/// (the name's system is tried first, and content decides only when it
/// fails). `None` when the start does not settle it: another system, a
/// UNIF or FFE dump (whose chunks or banks lie further in), or a dump that
/// does not fit; `detect` must then see the full detection regions.
///
/// Listing thousands of zipped ROMs decompresses 1 KiB of each instead of
/// the 33 KiB the SNES and SMS headers would need.
pub fn detect_from_start(file_name: &str, raw: &[u8]) -> Option<Layout> {
    let system = system_for_extension(file_name)?;
    let layout = match system {
        SystemType::Gb | SystemType::Fds | SystemType::N64 | SystemType::Lynx => {
            analyze(raw, system).ok()?
        }
        SystemType::Nes if raw.starts_with(b"NES") => analyze(raw, system).ok()?,
        _ => return None,
    };
    Some(layout)
}

/// Whether [`detect_from_start`] may settle a file so named: its name says
/// one of the systems it knows. Others (SNES, Sega, PCE, no system) are
/// not worth reading a first KiB for, only to read it again.
pub fn may_detect_from_start(file_name: &str) -> bool {
    matches!(
        system_for_extension(file_name),
        Some(
            SystemType::Gb | SystemType::Fds | SystemType::N64 | SystemType::Lynx | SystemType::Nes
        )
    )
}

/// Detection that reports a damaged dump instead of falling back to raw:
/// the system it looked like and what is wrong with it.
fn detect_strict(file_name: Option<&str>, raw: &[u8]) -> Result<Layout, (SystemType, SystemError)> {
    let by_content = sniff(raw);
    let by_name = match file_name.and_then(system_for_extension) {
        // Copiers used .smd/.bin for both Sega consoles: the signature tells.
        Some(SystemType::Sms | SystemType::Mega)
            if matches!(by_content, SystemType::Sms | SystemType::Mega) =>
        {
            Some(by_content)
        }
        other => other,
    };
    let mut damage = None;
    for system in [by_name, Some(by_content)].into_iter().flatten() {
        match analyze(raw, system) {
            Ok(layout) => return Ok(layout),
            // "Not this system" is no damage: another candidate may fit.
            Err(SystemError::NotNes | SystemError::NoGameBoyLogo) => {}
            Err(error) => {
                damage.get_or_insert((system, error));
            }
        }
    }
    match damage {
        Some(damage) => Err(damage),
        None => Ok(Layout::plain(SystemType::Raw, raw)),
    }
}

/// The layout of a file for a command that works on it: as `forced` when
/// the user named the system (a dump that does not fit is an error, never a
/// guess), else detected; a dump that looks like a system but is damaged
/// (empty, truncated) is an error rather than a raw file.
pub fn identify(
    file_name: Option<&str>,
    raw: &[u8],
    forced: Option<SystemType>,
) -> Result<Layout, SystemError> {
    match forced {
        Some(system) => analyze(raw, system),
        None if raw.is_empty() => Err(SystemError::Empty),
        None => detect_strict(file_name, raw).map_err(|(_, error)| error),
    }
}

fn read_u16_le(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([bytes[0], bytes[1]]))
}

fn read_u16_be(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

fn read_u32_le(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn bytes_at(data: &[u8], at: usize, magic: &[u8]) -> bool {
    data.get(at..).is_some_and(|rest| rest.starts_with(magic))
}

/// One internal header field: its value as `info --json` gives it, and
/// how the text report shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub key: &'static str,
    pub value: serde_json::Value,
    pub shown: Shown,
}

/// How the text report shows a field.
#[derive(Debug, Clone, PartialEq)]
pub enum Shown {
    /// The value as it is (a yes/no for a boolean).
    Value,
    /// The value with its unit or meaning (`16384 bytes (16 KiB)`).
    Text(String),
    /// Only in JSON, kept there for scripts: the text shows what it means
    /// in other rows.
    JsonOnly,
}

/// Named header fields of a dump, in display order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(Vec<Field>);

impl Fields {
    pub fn new() -> Fields {
        Fields::default()
    }

    /// A field the text shows as its value.
    pub fn push(&mut self, (key, value): (&'static str, serde_json::Value)) {
        self.0.push(Field {
            key,
            value,
            shown: Shown::Value,
        });
    }

    /// A field the text shows as `text`.
    pub fn push_text(
        &mut self,
        key: &'static str,
        value: impl Into<serde_json::Value>,
        text: impl Into<String>,
    ) {
        self.0.push(Field {
            key,
            value: value.into(),
            shown: Shown::Text(text.into()),
        });
    }

    /// A byte count, shown with its unit.
    pub fn push_bytes(&mut self, key: &'static str, bytes: u64) {
        self.push_text(key, bytes, bytes_text(bytes));
    }

    /// A field kept in JSON only.
    pub fn push_json_only(&mut self, key: &'static str, value: impl Into<serde_json::Value>) {
        self.0.push(Field {
            key,
            value: value.into(),
            shown: Shown::JsonOnly,
        });
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Field> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = &'a Field;
    type IntoIter = std::slice::Iter<'a, Field>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// `16384 bytes (16 KiB)`: a byte count with its unit, and in KiB or MiB
/// when it is a whole number of them.
pub fn bytes_text(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    match bytes {
        n if n >= MIB && n.is_multiple_of(MIB) => format!("{n} bytes ({} MiB)", n / MIB),
        n if n >= KIB && n.is_multiple_of(KIB) => format!("{n} bytes ({} KiB)", n / KIB),
        1 => "1 byte".to_string(),
        n => format!("{n} bytes"),
    }
}

/// The internal header fields worth showing for a dump: titles, mappers,
/// map modes, declared sizes, and whether stored checksums hold.
pub fn describe(raw: &[u8], normalized: &[u8], layout: &Layout) -> Fields {
    let mut fields = Fields::new();
    match layout.system {
        SystemType::Nes => nes::describe(raw, layout, &mut fields),
        SystemType::Snes => snes::describe(normalized, &mut fields),
        SystemType::N64 => n64::describe(normalized, &mut fields),
        SystemType::Gb => gb::describe(normalized, &mut fields),
        SystemType::Sms | SystemType::Mega => {
            sega::describe(normalized, layout.system, &mut fields)
        }
        SystemType::Lynx => lynx::describe(layout, &mut fields),
        SystemType::Raw => gba::describe(normalized, &mut fields),
        SystemType::Fds | SystemType::Pce => {}
    }
    fields
}

/// Conversions back into copier layouts: the inverse of each
/// deinterleave, for tests and tools that write those formats.
pub mod convert {
    pub use super::n64::from_big_endian;
    pub use super::sega::smd_interleave;
    pub use super::snes::interleave as snes_interleave;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A dump of `len` random bytes named `.ext`, with what makes it the
    /// extension's system planted at the start when `planted`.
    fn dump(ext: &str, len: usize, fill: &[u8], planted: bool, headered: bool) -> Vec<u8> {
        let mut raw: Vec<u8> = fill.iter().copied().cycle().take(len).collect();
        let at = |raw: &mut Vec<u8>, offset: usize, bytes: &[u8]| {
            if let Some(slot) = raw.get_mut(offset..offset + bytes.len()) {
                slot.copy_from_slice(bytes);
            }
        };
        if planted {
            match ext {
                "gb" => at(
                    &mut raw,
                    if headered { 0x304 } else { 0x104 },
                    &[0xCE, 0xED, 0x66, 0x66],
                ),
                "nes" => at(&mut raw, 0, b"NES\x1a"),
                "lnx" => at(&mut raw, 0, b"LYNX"),
                "z64" => at(&mut raw, 0, &[0x80, 0x37, 0x12, 0x40]),
                "v64" => at(&mut raw, 0, &[0x37, 0x80, 0x40, 0x12]),
                _ => {}
            }
        }
        raw
    }

    proptest! {
        /// Any name, in any case, with any folders: its extension, lower-
        /// cased, names the system, and nothing else does.
        #[test]
        fn an_extension_names_its_system_in_any_case(
            folder in "[a-zA-Z./]{0,6}",
            stem in "[a-zA-Z.]{0,4}",
            ext in prop::sample::select(vec!["nes", "unif", "fds", "SFC", "sMc", "048", "Z64", "gb", "GBC", "sgb", "gg", "md", "gen", "pce", "lnx", "lyx", "bin", "unifx", "g", ""]),
        ) {
            let name = format!("{folder}{stem}.{ext}");
            let base = name.rsplit('/').next().unwrap_or(&name);
            let expected = match base.rsplit_once('.') {
                Some((stem, ext)) if !stem.is_empty() => match ext.to_ascii_lowercase().as_str() {
                    "nes" | "unif" => Some(SystemType::Nes),
                    "fds" => Some(SystemType::Fds),
                    "sfc" | "smc" | "048" => Some(SystemType::Snes),
                    "z64" => Some(SystemType::N64),
                    "gb" | "gbc" | "sgb" => Some(SystemType::Gb),
                    "gg" => Some(SystemType::Sms),
                    "md" | "gen" => Some(SystemType::Mega),
                    "pce" => Some(SystemType::Pce),
                    "lnx" | "lyx" => Some(SystemType::Lynx),
                    _ => None,
                },
                _ => None,
            };
            prop_assert_eq!(system_for_extension(&name), expected);
        }

        /// Whatever lies past the first 1 KiB, a layout `detect_from_start`
        /// gives is the one `detect` gives the whole file.
        #[test]
        fn the_start_settles_what_it_claims_to(
            ext in prop::sample::select(vec!["gb", "gbc", "nes", "fds", "z64", "v64", "lnx", "sfc", "md", "sms", "pce", "bin"]),
            len in prop_oneof![0usize..0x600, 0x600usize..0x1_2000, Just(0x8000), Just(0x8200), Just(0x4000)],
            fill in prop::collection::vec(any::<u8>(), 1..64),
            rest in prop::collection::vec(any::<u8>(), 1..64),
            planted in any::<bool>(),
            headered in any::<bool>(),
        ) {
            let name = format!("Game.{ext}");
            let whole = dump(ext, len, &fill, planted, headered);
            let mut start_only = whole.clone();
            for (slot, byte) in start_only.iter_mut().skip(START_DETECTION_LEN).zip(rest.iter().cycle()) {
                *slot = *byte;
            }
            if let Some(layout) = detect_from_start(&name, &start_only) {
                prop_assert_eq!(layout, detect(Some(&name), &whole));
            }
        }
    }

    #[test]
    fn the_start_settles_headered_and_plain_game_boy_ines_n64_lynx_and_fds() {
        for (ext, headered) in [
            ("gb", false),
            ("gb", true),
            ("nes", false),
            ("z64", false),
            ("v64", false),
            ("lnx", false),
            ("fds", false),
        ] {
            let len = if headered { 0x8200 } else { 0x8000 };
            let raw = dump(ext, len, &[1, 2, 3], true, headered);
            let layout = detect_from_start(&format!("Game.{ext}"), &raw);
            assert_eq!(layout.as_ref().map(|l| l.raw_len), Some(len), "{ext}");
        }
    }

    #[test]
    fn only_names_of_systems_with_headers_at_the_start_are_tried_from_it() {
        for name in [
            "Game.gb", "Game.gbc", "Game.nes", "Game.fds", "Game.z64", "Game.v64", "Game.lnx",
        ] {
            assert!(may_detect_from_start(name), "{name}");
        }
        for name in [
            "Game.sfc", "Game.smc", "Game.md", "Game.sms", "Game.pce", "Game.bin", "Game",
        ] {
            assert!(!may_detect_from_start(name), "{name}");
        }
    }

    #[test]
    fn the_start_does_not_settle_other_systems_or_misfits() {
        let raw = vec![0u8; 0x8000];
        for name in [
            "Game.sfc", "Game.md", "Game.sms", "Game.pce", "Game.bin", "Game.gb", "Game.nes",
        ] {
            assert_eq!(detect_from_start(name, &raw), None, "{name}");
        }
        let mut unif = vec![0u8; 0x8000];
        unif[..4].copy_from_slice(b"UNIF");
        assert_eq!(detect_from_start("Game.nes", &unif), None);
        let mut ffe = vec![0u8; 0x8200];
        ffe[8..10].copy_from_slice(&[0xAA, 0xBB]);
        assert_eq!(detect_from_start("Game.nes", &ffe), None);
    }
}
