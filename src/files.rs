//! Reading inputs and writing outputs for the command line: inputs are
//! memory-mapped, or, for a ROM or patch inside an archive (`Game.zip`, or
//! one member named as `Game.zip//inner/Game.sfc`), decompressed; a file
//! output is written to a temporary file beside it and renamed into place,
//! so a failure never leaves a partial file. A character device or a FIFO
//! is written into instead, as standard output is.

use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::ops::Deref;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::backing::archive::{self, Archive, ArchiveError, ArchiveKind, Member};
use crate::patch::any::PatchFormat;
use crate::system::{self, SystemType};

/// Problems with the files themselves, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },

    #[error("{}: is a directory, not a file", path.display())]
    IsDirectory { path: PathBuf },

    #[error("{}: already exists (use --force to replace it)", path.display())]
    OutputExists { path: PathBuf },

    #[error("{}: is also an input; write the output somewhere else", path.display())]
    OutputIsInput { path: PathBuf },

    #[error("{}: cannot write: {}", path.display(), in_words(source))]
    Write { path: PathBuf, source: io::Error },

    #[error(
        "{}: is a {kind}; ninja-fs writes only to files, character devices (such as /dev/null) and FIFOs",
        path.display()
    )]
    CannotWriteInto { path: PathBuf, kind: &'static str },

    #[error(
        "{}: is a symbolic link; a folder output must be a folder or a new name (give the folder it points to)",
        path.display()
    )]
    FolderOutputIsLink { path: PathBuf },

    #[error("{}: is not a folder; a folder output replaces only a folder", path.display())]
    NotAFolder { path: PathBuf },

    #[error("{}: is inside the input folder {}; write the output somewhere else", path.display(), input.display())]
    OutputInsideInput { path: PathBuf, input: PathBuf },

    #[error("{}: holds the input folder {}; write the output somewhere else", path.display(), input.display())]
    OutputHoldsInput { path: PathBuf, input: PathBuf },

    #[error("{}: {source}", path.display())]
    Archive { path: PathBuf, source: ArchiveError },

    #[error(
        "{}: holds {} {}s; name one as {}//MEMBER:{}",
        path.display(), candidates.len(), role.word(), path.display(), listed(candidates)
    )]
    SeveralInArchive {
        path: PathBuf,
        role: Role,
        candidates: Vec<String>,
    },

    #[error("{}: holds no {}; its members:{}", path.display(), role.word(), listed(members))]
    NoneInArchive {
        path: PathBuf,
        role: Role,
        members: Vec<String>,
    },

    #[error("{}: has no member {member}; its members:{}", path.display(), listed(members))]
    NoSuchMember {
        path: PathBuf,
        member: String,
        members: Vec<String>,
    },
}

/// Names one per line, indented, for a message.
fn listed(names: &[String]) -> String {
    if names.is_empty() {
        return " none".into();
    }
    names.iter().map(|name| format!("\n  {name}")).collect()
}

/// The system's words for an I/O error, without Rust's "(os error N)" and
/// what follows it (`tempfile` adds its temporary file's name there).
fn in_words(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// A file's bytes: mapped when it has any, so only the pages read are
/// loaded; an archive member's, decompressed.
pub enum Input {
    Mapped(memmap2::Mmap),
    Empty,
    Owned(Vec<u8>),
}

impl Deref for Input {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Input::Mapped(map) => map,
            Input::Empty => &[],
            Input::Owned(bytes) => bytes,
        }
    }
}

/// Inputs up to this size are mapped whole when opened.
const POPULATE_LIMIT: u64 = 64 << 20;

pub fn read_input(path: &Path) -> Result<Input, FileError> {
    let read_error = |source| FileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    if meta.is_dir() {
        return Err(FileError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if meta.len() == 0 {
        return Ok(Input::Empty);
    }
    let mut options = memmap2::MmapOptions::new();
    // Commands read a ROM or a patch whole: mapping it in one call saves a
    // page fault per 64 KiB (an eighth of a 4 MiB VCDIFF apply). Larger files
    // (disc images, archives with many members) are mapped as they are read.
    if meta.len() <= POPULATE_LIMIT {
        options.populate();
    }
    // SAFETY: the map is read-only and private to this process; a file
    // truncated by another process while mapped would fault, which the
    // command line accepts (the filesystem reads with pread instead).
    let map = unsafe { options.map(&file) }.map_err(read_error)?;
    Ok(Input::Mapped(map))
}

/// What a command expects a file to hold, which picks the member of an
/// archive it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Rom,
    Patch,
}

impl Role {
    fn word(self) -> &'static str {
        match self {
            Role::Rom => "ROM",
            Role::Patch => "patch",
        }
    }
}

/// An input read for a command: its bytes, and its name, which messages
/// show and detection reads (an archive member's is `Game.zip//Game.sfc`,
/// so its extension is the member's).
pub struct NamedInput {
    pub bytes: Input,
    pub name: String,
}

/// An input as `info` reads it: one file (or archive member), or an
/// archive holding no single ROM or patch, to be listed.
pub enum Opened {
    One(NamedInput),
    Listing(ArchiveListing),
}

/// The members of an archive, with what each is.
pub struct ArchiveListing {
    pub name: String,
    pub kind: ArchiveKind,
    pub members: Vec<(Member, Option<Role>)>,
}

/// The separator of `archive.zip//inner/path.sfc`, naming one member.
const MEMBER_SEPARATOR: &str = "//";

/// Bytes of a member read to tell a ROM without a ROM's extension by its
/// content: the SNES and Sega headers lie in the first 64 KiB (32 KiB
/// blocks, plus a copier header, kept so the dump's length still tells).
const SNIFF_LEN: u64 = 0x20000;

/// The ROM `path` names: a file, an archive holding one ROM, or one member
/// (`archive.zip//inner/path.sfc`). Nothing larger than `max` bytes is
/// decompressed.
pub fn read_rom(path: &Path, max: u64) -> Result<NamedInput, FileError> {
    read_as(path, Role::Rom, max)
}

/// The patch `path` names, as [`read_rom`] reads a ROM.
pub fn read_patch(path: &Path, max: u64) -> Result<NamedInput, FileError> {
    read_as(path, Role::Patch, max)
}

fn read_as(path: &Path, role: Role, max: u64) -> Result<NamedInput, FileError> {
    match open_any(path, max, Some(role))? {
        Opened::One(input) => Ok(input),
        Opened::Listing(listing) => Err(listing.refusal(path, role)),
    }
}

/// What `info` shows of `path`: a file; the one ROM or patch of an archive
/// (other members, such as a readme, left aside); a member named with
/// `//`; or, for an archive holding several or none, its listing.
pub fn read_any(path: &Path, max: u64) -> Result<Opened, FileError> {
    open_any(path, max, None)
}

fn open_any(path: &Path, max: u64, role: Option<Role>) -> Result<Opened, FileError> {
    if let Some(opened) = open_object(path, max, role) {
        return opened;
    }
    if let Some((archive_path, member)) = split_member_path(path) {
        let archive = open_archive(&archive_path)?;
        return read_named_member(&archive_path, &archive, &member, max).map(Opened::One);
    }
    let input = read_input(path)?;
    let name = path.display().to_string();
    let Some(kind) = archive_kind(&name, &input) else {
        return Ok(Opened::One(NamedInput { bytes: input, name }));
    };
    drop(input);
    let archive = open_archive_as(path, kind)?;
    pick_member(path, &archive, name, max, role)
}

/// What `path`, the archive `archive`, gives a command that wants `role`
/// (`info`: `None`): its one member, its one ROM or patch, or its listing.
fn pick_member(
    path: &Path,
    archive: &Archive,
    name: String,
    max: u64,
    role: Option<Role>,
) -> Result<Opened, FileError> {
    let listing = ArchiveListing::of(archive, name);
    let pick = |role: Role| {
        let mut candidates = listing
            .members
            .iter()
            .enumerate()
            .filter(|(_, (member, r))| {
                *r == Some(role) && member.problem.as_deref() != Some(archive::NESTED_ARCHIVE)
            });
        match (candidates.next(), candidates.next()) {
            (Some((index, _)), None) => Some(index),
            _ => None,
        }
    };
    let index = if listing.members.len() == 1 {
        Some(0)
    } else {
        match role {
            Some(role) => pick(role),
            // info: the one ROM, or else the one patch, of the archive.
            None => {
                let roms = listing.count(Role::Rom);
                let patches = listing.count(Role::Patch);
                match (roms, patches) {
                    (1, 0) => pick(Role::Rom),
                    (0, 1) => pick(Role::Patch),
                    _ => None,
                }
            }
        }
    };
    match index {
        Some(index) => read_member_at(path, archive, index, max).map(Opened::One),
        None => Ok(Opened::Listing(listing)),
    }
}

/// An object in a store, `s3://BUCKET/KEY` (or one member of an archive
/// there, `s3://BUCKET/KEY.zip//MEMBER`), read whole with one GET and then
/// taken as a file of that name is; `None` for any other path.
fn open_object(path: &Path, max: u64, role: Option<Role>) -> Option<Result<Opened, FileError>> {
    let text = path.to_str()?;
    let rest = text.strip_prefix("s3://")?;
    let (object, member) = match rest.split_once(MEMBER_SEPARATOR) {
        Some((object, member)) => (format!("s3://{object}"), Some(member)),
        None => (text.to_string(), None),
    };
    let object_path = PathBuf::from(&object);
    let opened = (|| {
        let bytes =
            crate::backing::s3::read_object(&object, max).map_err(|source| FileError::Read {
                path: object_path.clone(),
                source,
            })?;
        let kind = match (member, archive_kind(&object, &bytes)) {
            (None, None) => {
                let bytes = Input::Owned(bytes);
                return Ok(Opened::One(NamedInput {
                    bytes,
                    name: object.clone(),
                }));
            }
            (_, Some(kind)) => kind,
            (Some(_), None) => archive::kind_of(&bytes).ok_or_else(|| FileError::Archive {
                path: object_path.clone(),
                source: ArchiveError::Damaged("it is no zip, 7z or gzip archive".into()),
            })?,
        };
        let file_name = object.rsplit('/').next().unwrap_or(&object).to_string();
        let len = bytes.len() as u64;
        let archive = Archive::open_reader(std::sync::Arc::new(bytes), len, &file_name, kind)
            .map_err(|source| FileError::Archive {
                path: object_path.clone(),
                source,
            })?;
        match member {
            Some(member) => read_named_member(&object_path, &archive, member, max).map(Opened::One),
            None => pick_member(&object_path, &archive, object.clone(), max, role),
        }
    })();
    Some(opened)
}

/// The archive format of a file read whole, unless its name says it is a
/// ROM or a patch (a ROM may start with anything, even `PK\x03\x04`).
fn archive_kind(name: &str, bytes: &[u8]) -> Option<ArchiveKind> {
    if PatchFormat::from_extension(name).is_some() || is_rom_name(name) {
        return None;
    }
    archive::kind_of(bytes)
}

fn is_rom_name(name: &str) -> bool {
    if system::system_for_extension(name).is_some() {
        return true;
    }
    let base = name.rsplit('/').next().unwrap_or(name);
    matches!(
        base.rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .as_deref(),
        Some("bin" | "rom")
    )
}

/// `archive.zip//inner/path.sfc` as the archive and the member's name,
/// when no file has that whole name and the part before a `//` is a file.
fn split_member_path(path: &Path) -> Option<(PathBuf, String)> {
    let text = path.to_str()?;
    if !text.contains(MEMBER_SEPARATOR) || std::fs::metadata(path).is_ok() {
        return None;
    }
    let mut from = 0;
    while let Some(at) = text[from..].find(MEMBER_SEPARATOR) {
        let split = from + at;
        let (archive_part, member) = (&text[..split], &text[split + MEMBER_SEPARATOR.len()..]);
        if !archive_part.is_empty()
            && !member.is_empty()
            && std::fs::metadata(archive_part).is_ok_and(|m| m.is_file())
        {
            return Some((PathBuf::from(archive_part), member.to_string()));
        }
        from = split + 1;
    }
    None
}

/// The file on disk an input names: the archive of an
/// `archive.zip//member` path, else the path itself.
pub fn on_disk(path: &Path) -> PathBuf {
    match split_member_path(path) {
        Some((archive, _)) => archive,
        None => path.to_path_buf(),
    }
}

fn open_archive(path: &Path) -> Result<Archive, FileError> {
    let read_error = |source| FileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let mut head = [0u8; archive::MAGIC_LEN];
    let mut got = 0;
    while got < head.len() {
        match io::Read::read(&mut file, &mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(read_error(error)),
        }
    }
    let kind = archive::kind_of(&head[..got]).ok_or_else(|| FileError::Archive {
        path: path.to_path_buf(),
        source: ArchiveError::Damaged("it is no zip, 7z or gzip archive".into()),
    })?;
    open_archive_as(path, kind)
}

fn open_archive_as(path: &Path, kind: ArchiveKind) -> Result<Archive, FileError> {
    let file = File::open(path).map_err(|source| FileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    Archive::open(file, &name, kind).map_err(|source| FileError::Archive {
        path: path.to_path_buf(),
        source,
    })
}

/// The member named `member` (as listed: its sanitized name; a leading
/// `/` and backslashes are taken as the archive would have them).
fn read_named_member(
    path: &Path,
    archive: &Archive,
    member: &str,
    max: u64,
) -> Result<NamedInput, FileError> {
    let wanted = archive::sanitize_name(member);
    let members = archive.members();
    let index = members
        .iter()
        .position(|m| m.name == member)
        .or_else(|| members.iter().position(|m| m.name == wanted))
        .ok_or_else(|| FileError::NoSuchMember {
            path: path.to_path_buf(),
            member: member.to_string(),
            members: members.iter().map(|m| m.name.clone()).collect(),
        })?;
    read_member_at(path, archive, index, max)
}

fn read_member_at(
    path: &Path,
    archive: &Archive,
    index: usize,
    max: u64,
) -> Result<NamedInput, FileError> {
    let bytes = archive
        .read_member(index, max)
        .map_err(|source| FileError::Archive {
            path: path.to_path_buf(),
            source,
        })?;
    let member = archive.members().get(index).map_or("", |m| m.name.as_str());
    Ok(NamedInput {
        bytes: Input::Owned(bytes),
        name: format!("{}{MEMBER_SEPARATOR}{member}", path.display()),
    })
}

impl ArchiveListing {
    /// Each member with what it is: a patch or ROM by its extension, else
    /// a ROM if detection recognises its first bytes.
    fn of(archive: &Archive, name: String) -> ArchiveListing {
        let members = archive.members();
        let by_name: Vec<Option<Role>> = members.iter().map(role_by_name).collect();
        let unknown: Vec<bool> = members
            .iter()
            .zip(&by_name)
            .map(|(member, role)| role.is_none() && member.problem.is_none())
            .collect();
        let mut roles = by_name;
        if unknown.contains(&true) {
            // A solid 7z block is decoded once for all of them.
            let prefixes: Vec<(usize, Result<Vec<u8>, ArchiveError>)> =
                if archive.kind() == ArchiveKind::SevenZip {
                    let all = archive.read_prefixes(&sniff_len);
                    all.into_iter()
                        .enumerate()
                        .filter(|&(i, _)| unknown[i])
                        .collect()
                } else {
                    (0..members.len())
                        .filter(|&i| unknown[i])
                        .map(|i| (i, archive.read_prefix(i, sniff_len(&members[i]))))
                        .collect()
                };
            for (index, prefix) in prefixes {
                if let Ok(prefix) = prefix
                    && system::sniff(&prefix) != SystemType::Raw
                {
                    roles[index] = Some(Role::Rom);
                }
            }
        }
        ArchiveListing {
            name,
            kind: archive.kind(),
            members: members.iter().cloned().zip(roles).collect(),
        }
    }

    fn count(&self, role: Role) -> usize {
        self.members
            .iter()
            .filter(|(_, r)| *r == Some(role))
            .count()
    }

    /// Why a command wanting one `role` cannot take this archive.
    fn refusal(&self, path: &Path, role: Role) -> FileError {
        let candidates: Vec<String> = self
            .members
            .iter()
            .filter(|(_, r)| *r == Some(role))
            .map(|(member, _)| member.name.clone())
            .collect();
        if candidates.is_empty() {
            FileError::NoneInArchive {
                path: path.to_path_buf(),
                role,
                members: self.members.iter().map(|(m, _)| m.name.clone()).collect(),
            }
        } else {
            FileError::SeveralInArchive {
                path: path.to_path_buf(),
                role,
                candidates,
            }
        }
    }

    /// The listing as `info` prints it, and as its JSON object.
    pub fn describe(&self) -> (String, serde_json::Value) {
        let roms = self.count(Role::Rom);
        let patches = self.count(Role::Patch);
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let mut table = format!(
            "{}\n  archive  {}, {}: {}, {}\n",
            self.name,
            self.kind.name(),
            plural(self.members.len(), "member"),
            plural(roms, "ROM"),
            if patches == 1 {
                "1 patch".to_string()
            } else {
                format!("{patches} patches")
            },
        );
        if roms + patches > 0 {
            table.push_str(&format!(
                "  name one as {}{MEMBER_SEPARATOR}MEMBER to read it\n",
                self.name
            ));
        }
        let name_width = self
            .members
            .iter()
            .map(|(m, _)| m.name.chars().count())
            .max();
        let size_width = self
            .members
            .iter()
            .map(|(m, _)| m.size.to_string().len())
            .max();
        for (member, role) in &self.members {
            let crc = member
                .crc32
                .map_or_else(|| "--------".to_string(), |crc| format!("{crc:08x}"));
            let mut what: Vec<&str> = Vec::new();
            if let Some(role) = role {
                what.push(role.word());
            }
            if let Some(problem) = &member.problem {
                what.push(problem);
            }
            let line = format!(
                "  {:<nw$}  {:>sw$} bytes  crc32 {crc}  {}",
                member.name,
                member.size,
                what.join(", "),
                nw = name_width.unwrap_or(0),
                sw = size_width.unwrap_or(0),
            );
            table.push_str(line.trim_end());
            table.push('\n');
        }
        let members: Vec<serde_json::Value> = self
            .members
            .iter()
            .map(|(member, role)| {
                serde_json::json!({
                    "name": member.name,
                    "size": member.size,
                    "crc32": member.crc32.map(|crc| format!("{crc:08x}")),
                    "kind": role.map(|role| match role {
                        Role::Rom => "rom",
                        Role::Patch => "patch",
                    }),
                    "problem": member.problem,
                })
            })
            .collect();
        let object = serde_json::json!({
            "file": self.name,
            "archive": {
                "format": self.kind.name(),
                "members": members,
            }
        });
        (table, object)
    }
}

fn role_by_name(member: &Member) -> Option<Role> {
    if member.problem.as_deref() == Some(archive::NESTED_ARCHIVE) {
        None
    } else if PatchFormat::from_extension(&member.name).is_some() {
        Some(Role::Patch)
    } else if is_rom_name(&member.name) {
        Some(Role::Rom)
    } else {
        None
    }
}

/// How much of a member to read to sniff it: 128 KiB, plus what a copier
/// header adds to a SNES dump's length (detection reads that length).
fn sniff_len(member: &Member) -> u64 {
    member.size.min(SNIFF_LEN + member.size % 0x8000)
}

/// Where an output goes: a file path, or standard output for `-`.
///
/// A path naming a character device or a FIFO is written into, as a shell's
/// `>` does, without `--force` (nothing is replaced). A path naming a
/// symbolic link writes to the file the link leads to (created when the
/// link dangles) and keeps the link. A replaced file keeps its permission
/// bits and, where this process may set them (as root), its owner and group.
#[derive(Debug, Clone)]
pub enum Output {
    Stdout,
    File { path: PathBuf, force: bool },
}

/// What an output path leads to, links followed.
enum Target {
    /// A regular file at `path`: replaced if `existing`, else created.
    File {
        path: PathBuf,
        existing: Option<Metadata>,
    },
    /// A character device or a FIFO, written into through the name given
    /// (the kernel follows `/dev/stdout`'s kind of link, a path can't).
    Stream,
}

/// Most links a name may lead through, as Linux's own bound (ELOOP).
const MAX_LINKS: usize = 40;

fn target_of(path: &Path) -> Result<Target, FileError> {
    let write_error = |source| FileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(Target::File {
                path: dangling_end(path).map_err(write_error)?,
                existing: None,
            });
        }
        Err(error) => return Err(write_error(error)),
    };
    let kind = meta.file_type();
    if kind.is_char_device() || kind.is_fifo() {
        return Ok(Target::Stream);
    }
    if kind.is_dir() {
        return Err(FileError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if !kind.is_file() {
        return Err(FileError::CannotWriteInto {
            path: path.to_path_buf(),
            kind: special_kind(&meta),
        });
    }
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(Target::File {
            path: path.to_path_buf(),
            existing: Some(meta),
        });
    }
    let real = std::fs::canonicalize(path).map_err(write_error)?;
    // A /proc "magic" link can name something its text does not.
    let same = std::fs::symlink_metadata(&real)
        .is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
    if !same {
        return Err(write_error(io::Error::other(
            "the link does not lead to a file that can be replaced",
        )));
    }
    Ok(Target::File {
        path: real,
        existing: Some(meta),
    })
}

/// The name a dangling link chain ends at (`path` itself when it is no
/// link): the file to create.
fn dangling_end(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let next = std::fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if next.is_relative() => dir.join(next),
                    _ => next,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

fn special_kind(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

impl Output {
    pub fn new(path: &Path, force: bool) -> Output {
        if path == Path::new("-") {
            Output::Stdout
        } else {
            Output::File {
                path: path.to_path_buf(),
                force,
            }
        }
    }

    /// Refuses outputs that exist (without `force`), that are one of
    /// `inputs` (ever) or that cannot be written, before any work is done.
    pub fn check(&self, inputs: &[&Path]) -> Result<(), FileError> {
        let Output::File { path, force } = self else {
            return Ok(());
        };
        if let Ok(out_meta) = std::fs::metadata(path) {
            for input in inputs {
                // An archive member's archive is the file not to overwrite.
                if let Ok(in_meta) = std::fs::metadata(on_disk(input))
                    && in_meta.dev() == out_meta.dev()
                    && in_meta.ino() == out_meta.ino()
                {
                    return Err(FileError::OutputIsInput { path: path.clone() });
                }
            }
        }
        match target_of(path)? {
            Target::File {
                existing: Some(_), ..
            } if !force => Err(FileError::OutputExists { path: path.clone() }),
            _ => Ok(()),
        }
    }

    /// Writes `data` whole, or nothing (into a device or FIFO: what it took).
    pub fn write(&self, data: &[u8]) -> Result<(), FileError> {
        match self {
            Output::Stdout => {
                let mut stdout = io::stdout().lock();
                stdout
                    .write_all(data)
                    .and_then(|()| stdout.flush())
                    .map_err(|source| FileError::Write {
                        path: PathBuf::from("-"),
                        source,
                    })
            }
            Output::File { path, force } => match target_of(path)? {
                Target::Stream => {
                    let write_error = |source| FileError::Write {
                        path: path.clone(),
                        source,
                    };
                    let mut stream = open_stream(path).map_err(write_error)?;
                    stream
                        .write_all(data)
                        .and_then(|()| stream.flush())
                        .map_err(write_error)
                }
                Target::File { path, existing } => {
                    let write_error = |source| FileError::Write {
                        path: path.clone(),
                        source,
                    };
                    let mut temp = temp_beside(&path, existing.as_ref()).map_err(write_error)?;
                    temp.write_all(data).map_err(write_error)?;
                    persist(temp, &path, *force)
                }
            },
        }
    }

    /// Whether the output is a path (a file, which can be written as it is
    /// made and still appear whole or not at all, or a device or FIFO).
    pub fn is_file(&self) -> bool {
        matches!(self, Output::File { .. })
    }

    /// Writes what `fill` writes, as it writes it, for content checked
    /// before the first byte (only writing can fail in `fill`): a file
    /// appears whole or not at all, as with [`Output::write_streamed`], and
    /// standard output gets the bytes as they come.
    pub fn write_checked(
        &self,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), FileError> {
        match self {
            Output::Stdout => {
                let mut stdout = io::stdout().lock();
                fill(&mut stdout)
                    .and_then(|()| stdout.flush())
                    .map_err(|source| FileError::Write {
                        path: PathBuf::from("-"),
                        source,
                    })
            }
            Output::File { .. } => self.write_streamed(fill),
        }
    }

    /// Writes to a file what `fill` writes, as it writes it; the file
    /// appears only if `fill` succeeds. A device or FIFO gets the bytes as
    /// they come, so its reader sees a short stream if `fill` fails.
    /// Standard output cannot take back a partial write: use
    /// [`Output::write`] for it.
    pub fn write_streamed(
        &self,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), FileError> {
        let Output::File { path, force } = self else {
            return Err(FileError::Write {
                path: PathBuf::from("-"),
                source: io::Error::other("standard output cannot be written as a stream"),
            });
        };
        match target_of(path)? {
            Target::Stream => {
                let write_error = |source| FileError::Write {
                    path: path.clone(),
                    source,
                };
                let stream = open_stream(path).map_err(write_error)?;
                let mut writer = io::BufWriter::with_capacity(1 << 20, stream);
                fill(&mut writer).map_err(write_error)?;
                writer.flush().map_err(write_error)
            }
            Target::File { path, existing } => {
                let write_error = |source| FileError::Write {
                    path: path.clone(),
                    source,
                };
                let mut temp = temp_beside(&path, existing.as_ref()).map_err(write_error)?;
                {
                    let mut writer = io::BufWriter::with_capacity(1 << 20, temp.as_file_mut());
                    fill(&mut writer).map_err(write_error)?;
                    writer.flush().map_err(write_error)?;
                }
                persist(temp, &path, *force)
            }
        }
    }
}

/// Opens a character device or FIFO for writing (a FIFO waits for its
/// reader, as a shell's `>` does).
fn open_stream(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)?;
    // Opened without truncation, so a regular file swapped in meanwhile
    // is refused untouched rather than written over in place.
    let kind = file.metadata()?.file_type();
    if !(kind.is_char_device() || kind.is_fifo()) {
        return Err(io::Error::other(
            "it stopped being a device or FIFO while it was opened",
        ));
    }
    Ok(file)
}

/// A temporary file in the folder of `path`, to be renamed onto it,
/// wearing the mode and owner of the file it replaces (`existing`).
fn temp_beside(path: &Path, existing: Option<&Metadata>) -> io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // 0o666 is filtered by the umask, as for any file a tool creates.
    let temp = tempfile::Builder::new()
        .prefix(".ninja-fs-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)?;
    if let Some(old) = existing {
        // Before any byte is written, so a private file's bytes never
        // sit in a more open one.
        adopt_mode_and_owner(temp.as_file(), old)?;
    }
    Ok(temp)
}

/// Gives `file` the permission bits of `old` and, where allowed, its
/// owner and group.
fn adopt_mode_and_owner(file: &File, old: &Metadata) -> io::Result<()> {
    let mine = file.metadata()?;
    let mut mode = old.mode() & 0o7777;
    if (mine.uid(), mine.gid()) != (old.uid(), old.gid()) {
        let owned = match std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid())) {
            Ok(()) => true,
            // Only root may give a file away; its owner may still pick
            // the group if it belongs to it.
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
                let _ = std::os::unix::fs::fchown(file, None, Some(old.gid()));
                false
            }
            Err(error) => return Err(error),
        };
        if !owned {
            // Set-id bits are for the old owner, not for this process.
            mode &= 0o1777;
        }
    }
    // After fchown, which clears the set-id bits.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

/// Syncs `temp` and renames it onto `path` (refusing an existing file
/// unless `force`).
fn persist(temp: tempfile::NamedTempFile, path: &Path, force: bool) -> Result<(), FileError> {
    let write_error = |source| FileError::Write {
        path: path.to_path_buf(),
        source,
    };
    temp.as_file().sync_all().map_err(write_error)?;
    if force {
        temp.persist(path).map_err(|e| write_error(e.error))?;
    } else {
        temp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == io::ErrorKind::AlreadyExists {
                FileError::OutputExists {
                    path: path.to_path_buf(),
                }
            } else {
                write_error(e.error)
            }
        })?;
    }
    Ok(())
}

/// A size as people write it: `1048576`, `64K`, `256M`, `1G` (binary
/// multiples; a trailing `B` or `iB` is allowed).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let upper = trimmed.to_ascii_uppercase();
    let without_b = upper
        .strip_suffix("IB")
        .or_else(|| upper.strip_suffix('B'))
        .unwrap_or(&upper);
    let (digits, shift) = match without_b.chars().last() {
        Some('K') => (&without_b[..without_b.len() - 1], 10),
        Some('M') => (&without_b[..without_b.len() - 1], 20),
        Some('G') => (&without_b[..without_b.len() - 1], 30),
        Some('T') => (&without_b[..without_b.len() - 1], 40),
        _ => (without_b, 0),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| {
            format!("'{text}' is not a size: write a number of bytes, or one like 64K, 256M, 1G")
        })
}

/// Refuses a folder output that cannot or must not be replaced, before
/// any work: an existing one without `force`, anything but a folder, a
/// symbolic link (replacing the folder it leads to would delete outside
/// the name given; replacing the link would lose it), and the input
/// folder itself, a folder inside it or one holding it.
pub fn check_folder_output(
    source: &Path,
    destination: &Path,
    force: bool,
) -> Result<(), FileError> {
    let path = || destination.to_path_buf();
    let exists = match std::fs::symlink_metadata(destination) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(FileError::FolderOutputIsLink { path: path() });
        }
        Ok(meta) if !meta.is_dir() => return Err(FileError::NotAFolder { path: path() }),
        Ok(_) => true,
        Err(error) if error.kind() == io::ErrorKind::NotFound => false,
        Err(source) => {
            return Err(FileError::Write {
                path: path(),
                source,
            });
        }
    };
    let input = std::fs::canonicalize(source).map_err(|error| FileError::Read {
        path: source.to_path_buf(),
        source: error,
    })?;
    // The folder the output is (or will be) in, links in it resolved.
    let parent = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let Some(name) = destination.file_name() else {
        return Err(FileError::Write {
            path: path(),
            source: io::Error::other("it names no folder (it ends in '..' or '/')"),
        });
    };
    let output = std::fs::canonicalize(parent)
        .map_err(|source| FileError::Write {
            path: path(),
            source,
        })?
        .join(name);
    if output == input {
        return Err(FileError::OutputIsInput { path: path() });
    }
    if output.starts_with(&input) {
        return Err(FileError::OutputInsideInput {
            path: path(),
            input: source.to_path_buf(),
        });
    }
    if input.starts_with(&output) {
        return Err(FileError::OutputHoldsInput {
            path: path(),
            input: source.to_path_buf(),
        });
    }
    if exists && !force {
        return Err(FileError::OutputExists { path: path() });
    }
    Ok(())
}

/// Writes a copy of folder `source` to `destination`, with the files named
/// in `replaced` (relative paths with `/`) given new contents. The copy is
/// built beside `destination` and renamed into place, so a failure leaves
/// nothing behind; a folder replaced (with `force`) is moved aside first,
/// put back if the new one cannot take its place, and its mode and owner
/// are kept. See [`check_folder_output`] for what is refused.
pub fn write_folder_copy(
    source: &Path,
    destination: &Path,
    replaced: &[(String, Vec<u8>)],
    force: bool,
) -> Result<(), FileError> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FileError::Write { path, source }
    };
    check_folder_output(source, destination, force)?;
    let parent = match destination.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // 0o777 is filtered by the umask, as for any folder a tool creates.
    let staging = tempfile::Builder::new()
        .prefix(".ninja-fs-")
        .permissions(std::fs::Permissions::from_mode(0o777))
        .tempdir_in(parent)
        .map_err(write_error(destination))?;
    copy_tree(source, staging.path())?;
    for (name, bytes) in replaced {
        // The patch parser refuses such names already; a name must never
        // lead out of the copy.
        if !Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(FileError::Write {
                path: destination.join(name),
                source: io::Error::other("the name leads out of the folder"),
            });
        }
        let path = staging.path().join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write_error(&path))?;
        }
        std::fs::write(&path, bytes).map_err(write_error(&path))?;
    }
    // Looked at again: something may have taken the name since the check.
    let old = match std::fs::symlink_metadata(destination) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(FileError::FolderOutputIsLink {
                path: destination.to_path_buf(),
            });
        }
        Ok(meta) if !meta.is_dir() => {
            return Err(FileError::NotAFolder {
                path: destination.to_path_buf(),
            });
        }
        Ok(meta) => Some(meta),
        Err(_) => None,
    };
    let Some(old) = old else {
        std::fs::rename(staging.path(), destination).map_err(write_error(destination))?;
        let _ = staging.keep();
        return Ok(());
    };
    if !force {
        return Err(FileError::OutputExists {
            path: destination.to_path_buf(),
        });
    }
    File::open(staging.path())
        .and_then(|dir| adopt_mode_and_owner(&dir, &old))
        .map_err(write_error(destination))?;
    // rename moves a name, never what a link leads to, so nothing outside
    // the name given is moved or deleted.
    let aside = tempfile::Builder::new()
        .prefix(".ninja-fs-old-")
        .tempdir_in(parent)
        .map_err(write_error(destination))?;
    let old_path = aside.path().join("old");
    std::fs::rename(destination, &old_path).map_err(write_error(destination))?;
    if let Err(error) = std::fs::rename(staging.path(), destination) {
        let _ = std::fs::rename(&old_path, destination);
        return Err(write_error(destination)(error));
    }
    let _ = staging.keep();
    // The old folder goes with `aside`.
    drop(aside);
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), FileError> {
    let read_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FileError::Read { path, source }
    };
    for entry in std::fs::read_dir(from).map_err(read_error(from))? {
        let entry = entry.map_err(read_error(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(read_error(&src))?.is_dir() {
            std::fs::create_dir_all(&dst).map_err(|source| FileError::Write {
                path: dst.clone(),
                source,
            })?;
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|source| FileError::Write {
                path: dst.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangling_links_end_at_the_name_to_create() {
        let dir = tempfile::tempdir().unwrap();
        let link = |from: &str, to: &str| {
            std::os::unix::fs::symlink(to, dir.path().join(from)).unwrap();
        };
        link("a", "b");
        link("b", "sub/../c");
        assert_eq!(
            dangling_end(&dir.path().join("a")).unwrap(),
            dir.path().join("sub/../c")
        );
        assert_eq!(
            dangling_end(&dir.path().join("plain")).unwrap(),
            dir.path().join("plain")
        );
        link("x", "y");
        link("y", "x");
        let error = dangling_end(&dir.path().join("x")).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn io_errors_in_words() {
        let error = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(in_words(&error), "No space left on device");
        let error = io::Error::other("the patch failed");
        assert_eq!(in_words(&error), "the patch failed");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
