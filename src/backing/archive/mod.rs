//! Archives read member by member: zip, 7z and gzip files (RAR is
//! recognised and refused). Opening one reads its directory only; a member
//! is decompressed when asked for, a prefix of it (for detection) or all of
//! it (for an image), never past the size its archive states, and checked
//! against its stored CRC32.
//!
//! Everything here takes hostile input: names are made safe relative paths
//! ([`sanitize_name`]), sizes are bounded before anything is allocated, and
//! every failure is an [`ArchiveError`] worded for the user. The decoders
//! are the ecosystem's (`zip`, `sevenz-rust2`, `flate2`); none is written
//! here.
//!
//! An [`Archive`] reads its file with positional reads only ([`ReadAt`]:
//! a local file, or an object in a store), so its methods may run from
//! several threads at once.

mod gzip;
mod sevenz;
mod zip;

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use super::ReadAt;
use crate::text;

/// The archive formats this module knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchiveKind {
    Zip,
    SevenZip,
    Gzip,
    Rar,
}

impl ArchiveKind {
    /// The format's name as users know it.
    pub fn name(self) -> &'static str {
        match self {
            ArchiveKind::Zip => "zip",
            ArchiveKind::SevenZip => "7z",
            ArchiveKind::Gzip => "gzip",
            ArchiveKind::Rar => "RAR",
        }
    }
}

/// Bytes [`kind_of`] looks at: the longest magic number.
pub const MAGIC_LEN: usize = 8;

/// The archive format of a file from its first bytes (magic numbers): zip
/// (`PK\x03\x04`, and `PK\x05\x06` for an empty zip), 7z, gzip (`1f 8b`
/// with deflate, the only method gzip defines), RAR 4 and 5.
pub fn kind_of(head: &[u8]) -> Option<ArchiveKind> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(ArchiveKind::Zip)
    } else if head.starts_with(b"7z\xBC\xAF\x27\x1C") {
        Some(ArchiveKind::SevenZip)
    } else if head.starts_with(&[0x1F, 0x8B, 0x08]) {
        Some(ArchiveKind::Gzip)
    } else if head.starts_with(b"Rar!\x1A\x07\x00") || head.starts_with(b"Rar!\x1A\x07\x01\x00") {
        Some(ArchiveKind::Rar)
    } else {
        None
    }
}

/// Whether a file name is an archive's by its extension (case-insensitive):
/// `.zip`, `.7z`, `.gz`, `.rar`.
pub fn is_archive_name(file_name: &str) -> bool {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ["zip", "7z", "gz", "rar"]
            .iter()
            .any(|known| ext.eq_ignore_ascii_case(known)),
        _ => false,
    }
}

/// One file inside an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Relative path inside the archive, `/`-separated and made safe by
    /// [`sanitize_name`], unique within the archive (a duplicate gets
    /// " (2)" before its extension). Folders appear only as prefixes.
    pub name: String,
    /// Uncompressed size as the archive states it (gzip: from ISIZE,
    /// checked when read).
    pub size: u64,
    pub crc32: Option<u32>,
    /// Why it cannot be read (or, for an archive inside the archive, why it
    /// is not opened), when the directory already says so.
    pub problem: Option<String>,
}

/// The problem text of a member that is an archive itself: listed, its
/// bytes readable, never descended into.
pub const NESTED_ARCHIVE: &str = "an archive inside an archive: not opened";

/// The problem text of an encrypted member.
pub const ENCRYPTED: &str = "encrypted: not supported";

/// Why an archive or one of its members cannot be read, worded for the
/// user and naming the member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// The file itself could not be read (an I/O error, not damage).
    #[error("the archive cannot be read: {0}")]
    Read(String),
    #[error("the archive is damaged: {0}")]
    Damaged(String),
    #[error("the archive is damaged: member {member}: {detail}")]
    DamagedMember { member: String, detail: String },
    #[error("the archive is damaged: member {member} fails its CRC")]
    Crc { member: String },
    #[error(
        "the archive is damaged: member {member} holds {actual} bytes, not the {stated} its archive states"
    )]
    Size {
        member: String,
        actual: u64,
        stated: u64,
    },
    /// A member that decompresses to more than its stated size: refused
    /// once the stated size is passed (zip bombs lie about sizes).
    #[error(
        "the archive is damaged: member {member} expands past the {stated} bytes its archive states"
    )]
    Expands { member: String, stated: u64 },
    #[error("member {member} is encrypted: not supported")]
    Encrypted { member: String },
    #[error("the archive is encrypted, its list of members too: not supported")]
    EncryptedArchive,
    #[error("member {member} is {what}: not supported")]
    Unsupported { member: String, what: String },
    #[error(
        "member {member} is larger ({size} bytes) than the largest image allowed ({max} bytes)"
    )]
    TooLarge { member: String, size: u64, max: u64 },
    #[error(
        "member {member} needs {needed_mib} MiB of memory to decompress, more than the {allowed_mib} MiB allowed"
    )]
    TooMuchMemory {
        member: String,
        needed_mib: u64,
        allowed_mib: u64,
    },
    #[error(
        "the archive's list of members needs {needed_mib} MiB of memory to read, more than the {allowed_mib} MiB allowed"
    )]
    DirectoryTooLarge { needed_mib: u64, allowed_mib: u64 },
    #[error("RAR archives are not supported; extract it")]
    Rar,
    #[error("the archive has no member number {index}")]
    NoMember { index: usize },
}

impl ArchiveError {
    /// The same error, said of member `name` (an error met before the
    /// decoder reached any member of a block holds for each of them).
    fn said_of(self, name: &str) -> ArchiveError {
        let member = name.to_string();
        match self {
            ArchiveError::DamagedMember { detail, .. } => {
                ArchiveError::DamagedMember { member, detail }
            }
            ArchiveError::Crc { .. } => ArchiveError::Crc { member },
            ArchiveError::Size { actual, stated, .. } => ArchiveError::Size {
                member,
                actual,
                stated,
            },
            ArchiveError::Expands { stated, .. } => ArchiveError::Expands { member, stated },
            ArchiveError::Encrypted { .. } => ArchiveError::Encrypted { member },
            ArchiveError::Unsupported { what, .. } => ArchiveError::Unsupported { member, what },
            ArchiveError::TooLarge { size, max, .. } => {
                ArchiveError::TooLarge { member, size, max }
            }
            ArchiveError::TooMuchMemory {
                needed_mib,
                allowed_mib,
                ..
            } => ArchiveError::TooMuchMemory {
                member,
                needed_mib,
                allowed_mib,
            },
            other => other,
        }
    }
}

/// Memory one decoder may take for its dictionary or model: 7-Zip's
/// `-mx9` settings (64 MiB LZMA dictionaries, 192 MiB PPMd models) fit.
pub const DECODER_MEMORY_LIMIT: u64 = 256 << 20;

/// An open archive: its members, and what is needed to read them.
pub struct Archive {
    kind: ArchiveKind,
    members: Vec<Member>,
    reader: Reader,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("kind", &self.kind)
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

enum Reader {
    Zip(zip::ZipReader),
    // Boxed: its directory is much larger than the others' readers.
    SevenZip(Box<sevenz::SevenZipReader>),
    Gzip(gzip::GzipReader),
}

// The mount reads one archive from several threads.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Archive>();
};

impl Archive {
    /// Reads the archive's directory only, from `file` (already open; read
    /// with positional reads so the methods can run concurrently).
    /// `file_name` is the archive's own name: a gzip file's one member is
    /// named after it without `.gz`. Linear in the number of members.
    pub fn open(file: File, file_name: &str, kind: ArchiveKind) -> Result<Archive, ArchiveError> {
        let len = file
            .metadata()
            .map_err(|error| ArchiveError::Read(error.to_string()))?
            .len();
        Archive::open_reader(Arc::new(file), len, file_name, kind)
    }

    /// As [`Archive::open`], from any reader of `len` bytes (a local file,
    /// an object in a store, bytes in memory).
    pub fn open_reader(
        reader: Arc<dyn ReadAt>,
        len: u64,
        file_name: &str,
        kind: ArchiveKind,
    ) -> Result<Archive, ArchiveError> {
        Self::open_from(FileReader::new(reader, len), file_name, kind)
    }

    /// [`open_reader`](Self::open_reader) for a file the caller shares,
    /// telling its kind from its first bytes: an archive of a listing
    /// costs its reads and no other system call.
    pub fn open_shared(
        reader: Arc<dyn ReadAt>,
        len: u64,
        file_name: &str,
    ) -> Result<Archive, ArchiveError> {
        let mut source = FileReader::new(reader, len);
        let head = source
            .head(MAGIC_LEN)
            .map_err(|error| ArchiveError::Read(error.to_string()))?;
        let kind = kind_of(&head).ok_or_else(|| {
            ArchiveError::Damaged("its first bytes are no zip, 7z, gzip or RAR archive's".into())
        })?;
        Self::open_from(source, file_name, kind)
    }

    fn open_from(
        source: FileReader,
        file_name: &str,
        kind: ArchiveKind,
    ) -> Result<Archive, ArchiveError> {
        let (reader, raw) = match kind {
            ArchiveKind::Zip => {
                let (reader, raw) = zip::ZipReader::open(source)?;
                (Reader::Zip(reader), raw)
            }
            ArchiveKind::SevenZip => {
                let (reader, raw) = sevenz::SevenZipReader::open(source)?;
                (Reader::SevenZip(Box::new(reader)), raw)
            }
            ArchiveKind::Gzip => {
                let (reader, raw) = gzip::GzipReader::open(source, file_name)?;
                (Reader::Gzip(reader), raw)
            }
            ArchiveKind::Rar => return Err(ArchiveError::Rar),
        };
        let names = unique_names(raw.iter().map(|m| sanitize_name(&m.name)).collect());
        let members = raw
            .into_iter()
            .zip(names)
            .map(|(raw, name)| {
                let problem = raw
                    .problem
                    .or_else(|| is_archive_name(&name).then(|| NESTED_ARCHIVE.to_string()));
                Member {
                    name,
                    size: raw.size,
                    crc32: raw.crc32,
                    problem,
                }
            })
            .collect();
        Ok(Archive {
            kind,
            members,
            reader,
        })
    }

    pub fn kind(&self) -> ArchiveKind {
        self.kind
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    fn member(&self, index: usize) -> Result<&Member, ArchiveError> {
        let member = self
            .members
            .get(index)
            .ok_or(ArchiveError::NoMember { index })?;
        refuse_unreadable(member)?;
        Ok(member)
    }

    /// The first `len` decompressed bytes of member `index` (fewer if it
    /// is shorter), decompressing no more than needed: in a solid 7z block
    /// the members before it are decompressed and discarded. A prefix that
    /// is the whole member is checked against its CRC32.
    pub fn read_prefix(&self, index: usize, len: u64) -> Result<Vec<u8>, ArchiveError> {
        let member = self.member(index)?;
        let len = len.min(member.size);
        match &self.reader {
            Reader::Zip(reader) => reader.read(index, member, Want::Prefix(len)),
            Reader::SevenZip(reader) => reader.read(&self.members, index, Want::Prefix(len)),
            Reader::Gzip(reader) => reader.read(member, Want::Prefix(len)),
        }
    }

    /// As [`Archive::read_prefix`], but a prefix that is the whole member
    /// is not checked against its CRC32 or stated size: for detection,
    /// which must see a damaged member's bytes to list it (reading it
    /// whole with [`Archive::read_member`] then fails, naming the damage).
    pub fn read_unverified_prefix(&self, index: usize, len: u64) -> Result<Vec<u8>, ArchiveError> {
        let member = self.member(index)?;
        let want = Want::Unverified(len.min(member.size));
        match &self.reader {
            Reader::Zip(reader) => reader.read(index, member, want),
            Reader::SevenZip(reader) => reader.read(&self.members, index, want),
            Reader::Gzip(reader) => reader.read(member, want),
        }
    }

    /// The first `len_of(member)` bytes of every member, in member order,
    /// streaming each solid 7z block once and stopping after the last
    /// member it needs.
    pub fn read_prefixes(
        &self,
        len_of: &dyn Fn(&Member) -> u64,
    ) -> Vec<Result<Vec<u8>, ArchiveError>> {
        match &self.reader {
            Reader::SevenZip(reader) => reader.read_prefixes(&self.members, &|member| {
                Want::Prefix(len_of(member).min(member.size))
            }),
            _ => (self.members.iter().enumerate())
                .map(|(index, member)| self.read_prefix(index, len_of(member)))
                .collect(),
        }
    }

    /// As [`Archive::read_prefixes`], unverified as
    /// [`Archive::read_unverified_prefix`].
    pub fn read_unverified_prefixes(
        &self,
        len_of: &dyn Fn(&Member) -> u64,
    ) -> Vec<Result<Vec<u8>, ArchiveError>> {
        match &self.reader {
            Reader::SevenZip(reader) => reader.read_prefixes(&self.members, &|member| {
                Want::Unverified(len_of(member).min(member.size))
            }),
            _ => (self.members.iter().enumerate())
                .map(|(index, member)| self.read_unverified_prefix(index, len_of(member)))
                .collect(),
        }
    }

    /// The whole member, checked against its stored CRC32 and its stated
    /// size; refused before any allocation if its stated size is over
    /// `max` bytes, and stopped as soon as it expands past its stated size
    /// (zip bombs lie about sizes).
    pub fn read_member(&self, index: usize, max: u64) -> Result<Vec<u8>, ArchiveError> {
        let member = self.member(index)?;
        if member.size > max {
            return Err(ArchiveError::TooLarge {
                member: member.name.clone(),
                size: member.size,
                max,
            });
        }
        match &self.reader {
            Reader::Zip(reader) => reader.read(index, member, Want::Whole),
            Reader::SevenZip(reader) => reader.read(&self.members, index, Want::Whole),
            Reader::Gzip(reader) => reader.read(member, Want::Whole),
        }
    }
}

/// A member that the directory already says cannot be read.
fn refuse_unreadable(member: &Member) -> Result<(), ArchiveError> {
    match member.problem.as_deref() {
        None | Some(NESTED_ARCHIVE) => Ok(()),
        Some(ENCRYPTED) => Err(ArchiveError::Encrypted {
            member: member.name.clone(),
        }),
        Some(problem) => Err(ArchiveError::Unsupported {
            member: member.name.clone(),
            what: problem
                .strip_suffix(": not supported")
                .unwrap_or(problem)
                .to_string(),
        }),
    }
}

/// A member as a format reader finds it in the directory, before its name
/// is made safe and unique.
struct RawMember {
    name: String,
    size: u64,
    crc32: Option<u32>,
    problem: Option<String>,
}

/// How much of a member a read wants.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// At most this many bytes (already bounded by the stated size).
    Prefix(u64),
    /// As `Prefix`, without the checks of a whole member.
    Unverified(u64),
    /// All of it, exactly its stated size.
    Whole,
}

/// Reads what `want` asks of `member` from its decompressed stream,
/// never more than its stated size plus one byte (to see that it goes on),
/// and checks size and CRC32 when the whole member was read. `io_error`
/// words the decoder's errors.
fn read_wanted(
    member: &Member,
    stream: &mut dyn Read,
    want: Want,
    io_error: &dyn Fn(io::Error) -> ArchiveError,
) -> Result<Vec<u8>, ArchiveError> {
    let (len, verify) = match want {
        Want::Prefix(len) => (len.min(member.size), true),
        Want::Unverified(len) => (len.min(member.size), false),
        Want::Whole => (member.size, true),
    };
    let mut bytes = Vec::new();
    let capacity = usize::try_from(len).map_err(|_| too_large(member, len))?;
    bytes
        .try_reserve_exact(capacity)
        .map_err(|_| too_large(member, len))?;
    stream.take(len).read_to_end(&mut bytes).map_err(io_error)?;
    let whole = bytes.len() as u64 == member.size;
    if matches!(want, Want::Whole) && !whole {
        return Err(ArchiveError::Size {
            member: member.name.clone(),
            actual: bytes.len() as u64,
            stated: member.size,
        });
    }
    if whole && verify {
        let mut probe = [0u8; 1];
        if read_some(stream, &mut probe).map_err(io_error)? > 0 {
            return Err(ArchiveError::Expands {
                member: member.name.clone(),
                stated: member.size,
            });
        }
    }
    if whole
        && verify
        && let Some(crc) = member.crc32
        && crc32fast::hash(&bytes) != crc
    {
        return Err(ArchiveError::Crc {
            member: member.name.clone(),
        });
    }
    Ok(bytes)
}

/// One `read`, retried when a signal interrupts it.
fn read_some(stream: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn too_large(member: &Member, size: u64) -> ArchiveError {
    ArchiveError::TooLarge {
        member: member.name.clone(),
        size,
        max: isize::MAX as u64,
    }
}

/// An I/O error of the archive file itself, or the decoder's words for
/// damaged data (a stream that ends early is a truncated archive).
fn member_io_error(member: &str, error: io::Error) -> ArchiveError {
    match error.kind() {
        io::ErrorKind::UnexpectedEof => ArchiveError::DamagedMember {
            member: member.to_string(),
            detail: "its data ends early (cut short?)".into(),
        },
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::Other => {
            ArchiveError::DamagedMember {
                member: member.to_string(),
                detail: format!("its data cannot be decompressed ({error})"),
            }
        }
        _ => ArchiveError::Read(error.to_string()),
    }
}

/// The damage a format's reader found in the archive's list of members.
fn damaged_directory(detail: &str) -> ArchiveError {
    ArchiveError::Damaged(format!("its list of members cannot be read ({detail})"))
}

/// The list of members ends past the end of the file.
fn directory_cut_short() -> ArchiveError {
    ArchiveError::Damaged("it ends before its list of members does (cut short?)".into())
}

/// Longest folder or file name a filesystem takes (Linux's NAME_MAX),
/// less room for a " (N)" that makes a name unique.
const MAX_COMPONENT: usize = 240;

/// A member's name made a safe relative path: backslashes are separators,
/// NUL and other control characters become `_`, `.` and empty components
/// are dropped, `..` goes up within the archive and never out of it, each
/// component is at most 240 bytes, and an empty result is `unnamed`.
pub fn sanitize_name(raw: &str) -> String {
    // Nearly every name is clean already: copied once, not rebuilt.
    let clean = raw
        .split('/')
        .all(|part| !matches!(part, "" | "." | "..") && part.len() <= MAX_COMPONENT)
        && !raw.chars().any(|c| c == '\\' || c.is_control());
    if clean {
        return raw.to_string();
    }
    rebuilt_name(raw)
}

/// [`sanitize_name`] made part by part.
fn rebuilt_name(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| match c {
            '\\' => '/',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let mut parts: Vec<&str> = Vec::new();
    for part in cleaned.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(text::up_to_char(part, MAX_COMPONENT)),
        }
    }
    if parts.is_empty() {
        "unnamed".to_string()
    } else {
        parts.join("/")
    }
}

/// Makes sanitized names unique: a name taken by an earlier member, or by
/// a folder some member lies in, gets " (2)", " (3)"... before its
/// extension. Linear in the number of names (plus the rare renames).
fn unique_names(names: Vec<String>) -> Vec<String> {
    // One name (a sanitized one is never empty) cannot clash.
    if names.len() <= 1 {
        return names;
    }
    let mut taken: HashSet<String> = HashSet::with_capacity(names.len());
    for name in &names {
        let mut end = 0;
        while let Some(slash) = name[end..].find('/') {
            end += slash;
            taken.insert(name[..end].to_string());
            end += 1;
        }
    }
    names
        .into_iter()
        .map(|name| {
            if taken.insert(name.clone()) {
                return name;
            }
            let (folder, file) = match name.rsplit_once('/') {
                Some((folder, file)) => (format!("{folder}/"), file),
                None => (String::new(), name.as_str()),
            };
            let (stem, ext) = match file.rsplit_once('.') {
                Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
                _ => (file, String::new()),
            };
            (2u64..)
                .map(|n| format!("{folder}{stem} ({n}){ext}"))
                .find(|candidate| taken.insert(candidate.clone()))
                .unwrap_or(name.clone())
        })
        .collect()
}

/// Reads the archive file with positional reads (`pread`), so any number
/// of these read one open file at once, each at its own position. A small
/// window keeps the many tiny reads of a zip directory to few system
/// calls (a file no larger than the front is read once, whole);
/// it starts small, since a listing wants only a member's first KiB, and
/// doubles while reads go on in sequence; reads as large as the largest
/// window go straight to the caller. Clones share the window.
struct FileReader {
    file: Arc<dyn ReadAt>,
    len: u64,
    pos: u64,
    /// The file's first bytes (up to [`FIRST_WINDOW`]), once read: kept
    /// while the window moves, since a zip is read at its end (the
    /// directory) and then at its start (the first member).
    front: Arc<Vec<u8>>,
    window: Arc<Vec<u8>>,
    window_at: u64,
}

/// The front's length: a zip's first local header and enough of its
/// member for the first KiB a listing inflates.
const FIRST_WINDOW: usize = 4 << 10;
/// The window read near the end: a zip's end record and the directory of
/// an archive of a few members. Listing ten thousand small zips copied
/// four times the bytes with 8 KiB windows at both ends.
const END_WINDOW: usize = 2 << 10;
const WINDOW: usize = 64 << 10;

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("len", &self.len)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl FileReader {
    fn new(file: Arc<dyn ReadAt>, len: u64) -> FileReader {
        FileReader {
            file,
            len,
            pos: 0,
            front: Arc::new(Vec::new()),
            window: Arc::new(Vec::new()),
            window_at: 0,
        }
    }

    /// The first `count` bytes (fewer if the file is shorter; `count` at
    /// most [`FIRST_WINDOW`]). They are read with the rest of the front,
    /// which later reads want.
    fn head(&mut self, count: usize) -> io::Result<Vec<u8>> {
        self.fill_front()?;
        Ok(self.front[..count.min(self.front.len())].to_vec())
    }

    /// Reads the file's first bytes into [`FileReader::front`], if not yet.
    fn fill_front(&mut self) -> io::Result<()> {
        if self.front.is_empty() && self.len > 0 {
            let mut front = spare_buffer(self.len.min(FIRST_WINDOW as u64) as usize);
            let filled = self.pread_filling(&mut front, 0)?;
            front.truncate(filled);
            give_back(&mut std::mem::replace(&mut self.front, Arc::new(front)));
        }
        Ok(())
    }

    /// Fills `buf` from `at`, or as much of it as the file has: how many
    /// bytes that was. A short read of a regular file ends only at its end.
    fn pread_filling(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let read = self.pread(&mut buf[filled..], at + filled as u64)?;
            if read == 0 {
                break;
            }
            filled += read;
        }
        Ok(filled)
    }

    fn pread(&self, buf: &mut [u8], at: u64) -> io::Result<usize> {
        loop {
            match self.file.read_at(buf, at) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

impl Drop for FileReader {
    fn drop(&mut self) {
        give_back(&mut self.front);
        give_back(&mut self.window);
    }
}

/// The most buffers of dropped readers a thread keeps for its next ones.
const SPARES_KEPT: usize = 2;

thread_local! {
    /// Buffers of this thread's dropped readers. A listing opens thousands
    /// of small archives one after another: each buffer of a few KiB taken
    /// afresh went through the allocator's locks (buffers of over a KiB
    /// skip its per-thread cache), which the scan's readers then queued on.
    static SPARES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` bytes, a spare one where this thread has one. Its
/// bytes are an earlier file's (to be overwritten) or zero.
fn spare_buffer(len: usize) -> Vec<u8> {
    let spare = SPARES
        .try_with(|spares| spares.try_borrow_mut().ok().and_then(|mut s| s.pop()))
        .ok()
        .flatten();
    let mut buffer = spare.unwrap_or_default();
    buffer.resize(len, 0);
    buffer
}

/// Keeps the buffer `shared` for this thread's next reader (leaving it
/// empty), unless a clone of the reader still uses it, or it is large.
fn give_back(shared: &mut Arc<Vec<u8>>) {
    let Some(buffer) = Arc::get_mut(shared) else {
        return;
    };
    if buffer.capacity() == 0 || buffer.capacity() > WINDOW {
        return;
    }
    let buffer = std::mem::take(buffer);
    let _ = SPARES.try_with(|spares| {
        if let Ok(mut spares) = spares.try_borrow_mut()
            && spares.len() < SPARES_KEPT
        {
            spares.push(buffer);
        }
    });
}

impl Clone for FileReader {
    /// A reader of the same file at the same place, with the same window.
    fn clone(&self) -> FileReader {
        FileReader {
            file: Arc::clone(&self.file),
            len: self.len,
            pos: self.pos,
            front: Arc::clone(&self.front),
            window: Arc::clone(&self.window),
            window_at: self.window_at,
        }
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.len {
            return Ok(0);
        }
        if self.pos < FIRST_WINDOW as u64 {
            self.fill_front()?;
        }
        if let Some(available) = self.front.get(self.pos as usize..)
            && !available.is_empty()
        {
            let count = available.len().min(buf.len());
            buf[..count].copy_from_slice(&available[..count]);
            self.pos += count as u64;
            return Ok(count);
        }
        let window_end = self.window_at + self.window.len() as u64;
        if !(self.window_at..window_end).contains(&self.pos) {
            let left = usize::try_from(self.len - self.pos).unwrap_or(usize::MAX);
            if buf.len() >= WINDOW {
                let want = buf.len().min(left);
                let read = self.pread(&mut buf[..want], self.pos)?;
                self.pos += read as u64;
                return Ok(read);
            }
            // A window from here on, twice the last one where this read
            // goes on from it; near the end, the file's last bytes (a zip's
            // directory is read backwards from its end record).
            let previous = if self.pos == window_end {
                self.window.len()
            } else if self.pos == self.front.len() as u64 {
                self.front.len()
            } else {
                0
            };
            let (start, wanted) = if previous > 0 {
                (
                    self.pos,
                    (2 * previous).clamp(FIRST_WINDOW, WINDOW).min(left),
                )
            } else if left < END_WINDOW {
                let wanted = END_WINDOW.min(usize::try_from(self.len).unwrap_or(END_WINDOW));
                (self.len - wanted as u64, wanted)
            } else {
                (self.pos, FIRST_WINDOW)
            };
            let mut window = spare_buffer(wanted);
            let filled = self.pread_filling(&mut window, start)?;
            window.truncate(filled);
            give_back(&mut std::mem::replace(&mut self.window, Arc::new(window)));
            self.window_at = start;
            if !(start..start + filled as u64).contains(&self.pos) {
                return Ok(0);
            }
        }
        let offset = (self.pos - self.window_at) as usize;
        let available = &self.window[offset..];
        let count = available.len().min(buf.len());
        buf[..count].copy_from_slice(&available[..count]);
        self.pos += count as u64;
        Ok(count)
    }
}

impl Seek for FileReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a seek before the start of the file",
            )
        })?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(kind_of(b"PK\x03\x04rest"), Some(ArchiveKind::Zip));
        assert_eq!(kind_of(b"PK\x05\x06"), Some(ArchiveKind::Zip));
        assert_eq!(
            kind_of(b"7z\xBC\xAF\x27\x1C\x00\x04"),
            Some(ArchiveKind::SevenZip)
        );
        assert_eq!(kind_of(&[0x1F, 0x8B, 0x08, 0]), Some(ArchiveKind::Gzip));
        assert_eq!(kind_of(b"Rar!\x1A\x07\x00"), Some(ArchiveKind::Rar));
        assert_eq!(kind_of(b"Rar!\x1A\x07\x01\x00"), Some(ArchiveKind::Rar));
        assert_eq!(kind_of(b"NES\x1A"), None);
        assert_eq!(kind_of(b"PK"), None);
        assert_eq!(kind_of(b""), None);
    }

    #[test]
    fn archive_names() {
        for name in ["a.zip", "A.ZIP", "dir/b.7z", "Game.sfc.gz", "x.Rar"] {
            assert!(is_archive_name(name), "{name}");
        }
        for name in ["a.sfc", ".zip", "zip", "a.zip/b.sfc", "a.tar"] {
            assert!(!is_archive_name(name), "{name}");
        }
    }

    #[test]
    fn hostile_names_are_made_safe() {
        assert_eq!(sanitize_name("../evil.sfc"), "evil.sfc");
        assert_eq!(sanitize_name("/abs.sfc"), "abs.sfc");
        assert_eq!(sanitize_name("a\\b.sfc"), "a/b.sfc");
        assert_eq!(sanitize_name("nul\0byte.sfc"), "nul_byte.sfc");
        assert_eq!(sanitize_name("a/./b//c/../d.sfc"), "a/b/d.sfc");
        assert_eq!(sanitize_name("../../.."), "unnamed");
        assert_eq!(sanitize_name(""), "unnamed");
        assert_eq!(sanitize_name("a/b.sfc"), "a/b.sfc");
        assert_eq!(sanitize_name("C:\\games\\x.nes"), "C:/games/x.nes");
        let long = "é".repeat(200);
        let safe = sanitize_name(&long);
        assert!(safe.len() <= MAX_COMPONENT && safe.chars().all(|c| c == 'é'));
    }

    #[test]
    fn duplicates_get_numbers() {
        let names = unique_names(
            [
                "a.sfc",
                "a.sfc",
                "a.sfc",
                "dir",
                "dir/x.sfc",
                "noext",
                "noext",
            ]
            .map(String::from)
            .to_vec(),
        );
        assert_eq!(
            names,
            [
                "a.sfc",
                "a (2).sfc",
                "a (3).sfc",
                "dir (2)",
                "dir/x.sfc",
                "noext",
                "noext (2)"
            ]
        );
    }

    #[test]
    fn file_reader_reads_through_its_window() {
        let mut temp = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::io::Write::write_all(&mut temp, &data).unwrap();
        let len = temp.metadata().unwrap().len();
        let mut reader = FileReader::new(Arc::new(temp), len);
        let mut small = [0u8; 10];
        reader.seek(SeekFrom::Start(70_000)).unwrap();
        reader.read_exact(&mut small).unwrap();
        assert_eq!(small, data[70_000..70_010]);
        let mut copy = reader.clone();
        let mut rest = Vec::new();
        copy.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, data[70_010..]);
        // A file no larger than the first window is read whole, once;
        // clones and seeks anywhere in it read from memory.
        let mut small_file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut small_file, &data[..4_000]).unwrap();
        let mut whole = FileReader::new(Arc::new(small_file), 4_000);
        whole.seek(SeekFrom::End(-22)).unwrap();
        let mut end = [0u8; 22];
        whole.read_exact(&mut end).unwrap();
        assert_eq!(end, data[4_000 - 22..4_000]);
        assert_eq!((whole.front.len(), whole.window.len()), (4_000, 0));
        let mut again = whole.clone();
        again.seek(SeekFrom::Start(5)).unwrap();
        again.read_exact(&mut small).unwrap();
        assert_eq!(small, data[5..15]);
        assert!(Arc::ptr_eq(&whole.front, &again.front));
        reader.seek(SeekFrom::End(-5)).unwrap();
        let mut tail = Vec::new();
        reader.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, data[data.len() - 5..]);
        // Near the end, the window is the file's last bytes: what lies just
        // before is read from memory.
        let last = (data.len() - END_WINDOW) as u64;
        assert_eq!((reader.window_at, reader.window.len()), (last, END_WINDOW));
        reader.seek(SeekFrom::Start(last)).unwrap();
        reader.read_exact(&mut small).unwrap();
        assert_eq!(small, data[last as usize..last as usize + 10]);
        assert_eq!(reader.window_at, last);
        assert!(reader.seek(SeekFrom::Current(-1_000_000)).is_err());
    }

    #[test]
    fn a_large_file_read_from_its_start_fills_one_window() {
        // A zip's first local header sits at offset 0: reading it must not
        // read (and hold) the whole archive, and a read at the end (its
        // directory) must not lose it.
        let mut temp = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        std::io::Write::write_all(&mut temp, &data).unwrap();
        let mut reader = FileReader::new(Arc::new(temp), data.len() as u64);
        let mut header = [0u8; 30];
        reader.read_exact(&mut header).unwrap();
        assert_eq!(header, data[..30]);
        assert_eq!((reader.front.len(), reader.window.len()), (FIRST_WINDOW, 0));
        let mut end = [0u8; 22];
        reader.seek(SeekFrom::End(-22)).unwrap();
        reader.read_exact(&mut end).unwrap();
        assert_eq!(end, data[data.len() - 22..]);
        reader.seek(SeekFrom::Start(30)).unwrap();
        // Reads on in sequence from the front: windows twice as large, up
        // to the largest.
        let mut rest = vec![0u8; data.len() - 30];
        reader.read_exact(&mut rest[..FIRST_WINDOW]).unwrap();
        assert_eq!(
            (reader.window_at, reader.window.len()),
            (FIRST_WINDOW as u64, 2 * FIRST_WINDOW)
        );
        reader.read_exact(&mut rest[FIRST_WINDOW..]).unwrap();
        assert_eq!(rest, data[30..]);
        let mut shared = FileReader::new(Arc::clone(&reader.file), reader.len);
        assert_eq!(shared.head(8).unwrap(), data[..8]);
        assert_eq!((shared.front.len(), shared.window.len()), (FIRST_WINDOW, 0));
    }

    proptest::proptest! {
        /// A name taken as it is, when clean, is what rebuilding it part by
        /// part makes of it.
        #[test]
        fn a_clean_name_is_kept_as_rebuilding_would(raw in "[a./\\\\\u{0}-\u{1f}é]{0,12}") {
            proptest::prop_assert_eq!(sanitize_name(&raw), rebuilt_name(&raw));
        }
    }
}
