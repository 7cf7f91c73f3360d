//! The header cache: what scans learned from each file's bytes, kept on
//! disk so that the next mount of the same backing folder lists it without
//! reading any file.
//!
//! One file per backing folder, named by the MD5 of its canonical path, in
//! `$XDG_CACHE_HOME/ninja-fs/` (else `~/.cache/ninja-fs/`). Its first line
//! (JSON) says which build wrote it, for which folder and limits, and the
//! length and CRC32 of the rest; the rest (JSON) holds one entry per file:
//! its path, its identity (device, inode, size, modification and change
//! time) and what it is (a ROM's layout and view extensions, a patch's
//! pairing data, or neither). No game data: the only bytes kept are the
//! headers a deinterleaved image puts back (iNES, LNX...), which belong to
//! a layout. A file of another build, or damaged, is ignored with a log
//! line; an entry is used only for a file of the same identity and only if
//! it is sound for that file. Deleting the file is always safe.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::archives::{self, ArchiveMembers, MemberClass};
use super::hints::SourceDigest;
use super::{
    Classified, ClassifiedEntry, FdsDiskDigests, FileId, PairKey, PatchFile, Rom, RomHashes,
    Source, join, split_name,
};
use crate::apply::ImageLayout;
use crate::backing::archive;
use crate::cache::lock;
use crate::digest;
use crate::patch::Limits;
use crate::patch::any::PatchFormat;
use crate::system::{ByteOrder, HeaderKind, Interleave, Layout, SystemType, UnifPiece};

const MAGIC: &str = "ninja-fs header cache";

/// Bump when what is stored, or what the scan makes of a file, changes.
const FORMAT: u32 = 5;

/// More than any report a ROM's headers make.
const MAX_REPORT_LEN: u64 = 1 << 20;

/// The extensions a view may give a ROM besides its own (see
/// `view_extensions`).
const VIEW_EXTENSIONS: [&str; 13] = [
    "fds", "nes", "unf", "sfc", "z64", "gb", "gbc", "sms", "gg", "md", "pce", "lyx", "lnx",
];

#[derive(Debug, thiserror::Error)]
pub enum HeaderCacheError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot encode the entries: {0}")]
    Encode(serde_json::Error),
    #[error("no header line: truncated, or not a header cache")]
    NoHeader,
    #[error("unreadable header line: {0}")]
    BadHeader(serde_json::Error),
    #[error("written by another build ({0})")]
    OtherBuild(String),
    #[error("written for another backing folder or other limits")]
    OtherRoot,
    #[error("{found} bytes of entries where the header says {expected}: truncated?")]
    Length { expected: u64, found: u64 },
    #[error("the entries' CRC32 is not the header's: the file is damaged")]
    Checksum,
    #[error("unreadable entries: {0}")]
    BadEntries(serde_json::Error),
}

/// The first line of a cache file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    magic: String,
    version: String,
    format: u32,
    /// The running executable's size and mtime: builds of one version
    /// may classify differently while it is being worked on.
    build: String,
    root: String,
    max_image_size: u64,
    entries_len: u64,
    entries_crc32: u32,
}

impl Header {
    fn expected(root: &Path, limits: Limits) -> Header {
        Header {
            magic: MAGIC.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            format: FORMAT,
            build: build().into(),
            root: root.to_string_lossy().into_owned(),
            max_image_size: limits.max_image_size,
            entries_len: 0,
            entries_crc32: 0,
        }
    }
}

fn build() -> &'static str {
    static BUILD: OnceLock<String> = OnceLock::new();
    BUILD.get_or_init(|| {
        std::env::current_exe()
            .and_then(std::fs::metadata)
            .map(|meta| {
                let id = FileId::of(&meta);
                format!("{} bytes, mtime {}", id.size, id.mtime_ns)
            })
            .unwrap_or_else(|_| "unknown".into())
    })
}

/// One file, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// Relative to the backing folder, with `/`.
    path: String,
    id: FileId,
    what: What,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum What {
    /// Boxed: far larger than the others.
    Rom(Box<RomFacts>),
    Patch(PatchFacts),
    /// An archive: how the views show it, and each member classified.
    Archive {
        in_place: bool,
        members: Vec<StoredMember>,
        /// Why it cannot be shown at all: damage, or a format not read.
        problem: Option<String>,
    },
    Other,
}

/// What detection made of a ROM's bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RomFacts {
    layout: Layout,
    normalized_ext: String,
    deinterleaved_ext: String,
    report_len: Option<u64>,
    /// The digests of its layouts, once a checksum patch asked.
    hashes: Option<RomHashes>,
    /// The SHA-1 of each of its layouts, once a DAT or a readme asked
    /// (with or without the digests above).
    #[serde(default)]
    sha1s: Option<Vec<(ImageLayout, [u8; 20])>>,
    /// An FDS ROM's disk image without the fwNES header, once a DAT asked.
    #[serde(default)]
    fds_disk: Option<FdsDiskDigests>,
}

/// What pairing needs of a patch.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PatchFacts {
    format: PatchFormat,
    pair_keys: Vec<PairKey>,
    verifies_source: bool,
    source_size: Option<u64>,
    target_size: Option<u64>,
    error: Option<String>,
}

/// One member of an archive, as stored: members that are nothing to the
/// views (neither ROM, patch, readme nor left out) are not.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredMember {
    name: String,
    what: StoredMemberKind,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum StoredMemberKind {
    Rom(Box<RomFacts>),
    Patch(PatchFacts),
    Note(Option<SourceDigest>),
    LeftOut(String),
}

/// Where a ROM or patch is, as the views name it.
struct Placed<'a> {
    rel_path: String,
    file_name: String,
    folder: String,
    source: Source,
    /// Its own name, which gives its stem and extension.
    name: &'a str,
    id: FileId,
    /// Its size: the file's, or for a member its stated size.
    size: u64,
}

impl RomFacts {
    fn of(rom: &Rom) -> RomFacts {
        RomFacts {
            layout: rom.layout.clone(),
            normalized_ext: rom.normalized_ext.clone(),
            deinterleaved_ext: rom.deinterleaved_ext.clone(),
            report_len: rom.report_len.get().copied(),
            hashes: rom.hashes.get().map(|h| RomHashes::clone(h)),
            sha1s: rom.sha1s.get().map(|sha1s| sha1s.to_vec()),
            fds_disk: rom.fds_disk.get().cloned(),
        }
    }

    /// The ROM these facts describe at `placed`, if they are what a scan
    /// of it could have made.
    fn into_rom(self, placed: Placed, limits: Limits) -> Option<Arc<Rom>> {
        let (stem, ext) = split_name(placed.name);
        let ext_fits = |view_ext: &str| {
            view_ext == ext.to_ascii_lowercase() || VIEW_EXTENSIONS.contains(&view_ext)
        };
        if PatchFormat::from_extension(placed.name).is_some()
            || placed.size > limits.max_image_size
            || !sound_layout(&self.layout, placed.size)
            || !ext_fits(&self.normalized_ext)
            || !ext_fits(&self.deinterleaved_ext)
            || self.report_len.is_some_and(|len| len > MAX_REPORT_LEN)
            || self
                .hashes
                .as_ref()
                .is_some_and(|h| !sound_hashes(h, &self.layout, placed.size))
            || self.sha1s.as_ref().is_some_and(|sha1s| !sound_sha1s(sha1s))
            || self.fds_disk.as_ref().is_some_and(|disk| {
                self.layout.system != SystemType::Fds || !disk.fits(placed.size)
            })
        {
            return None;
        }
        let sha1s = self
            .sha1s
            .map(|sha1s| OnceLock::from(Arc::new(sha1s)))
            .unwrap_or_default();
        Some(Arc::new(Rom {
            rel_path: placed.rel_path,
            file_name: placed.file_name,
            folder: placed.folder,
            source: placed.source,
            stem: stem.to_string(),
            id: placed.id,
            layout: self.layout,
            normalized_ext: self.normalized_ext,
            deinterleaved_ext: self.deinterleaved_ext,
            report_len: self.report_len.map(OnceLock::from).unwrap_or_default(),
            hashes: self
                .hashes
                .map(|h| OnceLock::from(Arc::new(h)))
                .unwrap_or_default(),
            sha1s,
            fds_disk: self.fds_disk.map(OnceLock::from).unwrap_or_default(),
        }))
    }
}

impl PatchFacts {
    fn of(patch: &PatchFile) -> PatchFacts {
        PatchFacts {
            format: patch.format,
            pair_keys: patch.pair_keys.clone(),
            verifies_source: patch.verifies_source,
            source_size: patch.source_size,
            target_size: patch.target_size,
            error: patch.error.clone(),
        }
    }

    fn into_patch(self, placed: Placed) -> Option<Arc<PatchFile>> {
        PatchFormat::from_extension(placed.name)?;
        let (stem, ext) = split_name(placed.name);
        Some(Arc::new(PatchFile {
            rel_path: placed.rel_path,
            file_name: placed.file_name,
            folder: placed.folder,
            source: placed.source,
            stem: stem.to_string(),
            ext: ext.to_ascii_lowercase(),
            id: placed.id,
            format: self.format,
            pair_keys: self.pair_keys,
            verifies_source: self.verifies_source,
            source_size: self.source_size,
            target_size: self.target_size,
            error: self.error,
        }))
    }
}

impl Entry {
    fn of(path: String, id: FileId, classified: &Classified) -> Entry {
        let what = match classified {
            Classified::Rom(rom) => What::Rom(Box::new(RomFacts::of(rom))),
            Classified::Patch(patch) => What::Patch(PatchFacts::of(patch)),
            Classified::Other => What::Other,
        };
        Entry { path, id, what }
    }

    fn of_archive(path: String, id: FileId, archive: &ArchiveMembers) -> Entry {
        let members = archive
            .members
            .iter()
            .map(|(name, class)| StoredMember {
                name: name.clone(),
                what: match class {
                    MemberClass::Rom(rom) => StoredMemberKind::Rom(Box::new(RomFacts::of(rom))),
                    MemberClass::Patch(patch) => StoredMemberKind::Patch(PatchFacts::of(patch)),
                    MemberClass::Note(source) => StoredMemberKind::Note(*source),
                    MemberClass::LeftOut(why) => StoredMemberKind::LeftOut(why.clone()),
                },
            })
            .collect();
        Entry {
            path,
            id,
            what: What::Archive {
                in_place: archive.in_place,
                members,
                problem: archive.problem.clone(),
            },
        }
    }

    /// The entry as the scan would have made it: (folder, name, entry);
    /// `None` if anything in it is not what a scan of that file can give.
    fn into_known(self, limits: Limits) -> Option<(String, String, Stored)> {
        if self.path.is_empty()
            || !self
                .path
                .split('/')
                .all(|part| !part.is_empty() && !part.starts_with('.'))
        {
            return None;
        }
        let (dir, name) = self.path.rsplit_once('/').unwrap_or(("", &self.path));
        let (dir, name) = (dir.to_string(), name.to_string());
        let placed = |source| Placed {
            rel_path: self.path.clone(),
            file_name: name.clone(),
            folder: dir.clone(),
            source,
            name: &name,
            id: self.id,
            size: self.id.size,
        };
        let is_archive = archives::is_archive(&name);
        let classified = match self.what {
            What::Archive {
                in_place,
                members,
                problem,
            } => {
                if !is_archive || (problem.is_some() && !members.is_empty()) {
                    return None;
                }
                let mut archive = archive_of(&self.path, self.id, in_place, members, limits)?;
                archive.problem = problem;
                return Some((dir, name, Stored::archive(self.id, Arc::new(archive))));
            }
            _ if is_archive => return None,
            What::Rom(facts) => Classified::Rom((*facts).into_rom(placed(Source::File), limits)?),
            What::Patch(facts) => Classified::Patch(facts.into_patch(placed(Source::File))?),
            What::Other if PatchFormat::from_extension(&name).is_some() => return None,
            What::Other => Classified::Other,
        };
        let entry = ClassifiedEntry {
            classified,
            lasting: true,
            problem: None,
        };
        Some((dir, name, Stored::File((self.id, Arc::new(entry)))))
    }
}

/// The archive at `rel_path` as stored members describe it; `None` if any
/// member is not what a scan of an archive could give.
fn archive_of(
    rel_path: &str,
    id: FileId,
    in_place: bool,
    members: Vec<StoredMember>,
    limits: Limits,
) -> Option<ArchiveMembers> {
    let mut seen = HashSet::new();
    let mut classes = Vec::with_capacity(members.len());
    for member in members {
        if archive::sanitize_name(&member.name) != member.name || !seen.insert(member.name.clone())
        {
            return None;
        }
        let placed = |rom: bool, size: u64| {
            let place = archives::member_place(rel_path, in_place, &member.name, rom);
            Placed {
                rel_path: place.rel_path,
                file_name: place.file_name,
                folder: place.folder,
                source: Source::Member {
                    archive: rel_path.to_string(),
                    member: member.name.clone(),
                },
                name: archives::base_name(&member.name),
                id,
                size,
            }
        };
        let class = match member.what {
            // A member's size is its layout's: the archive states it.
            StoredMemberKind::Rom(facts) => {
                let size = facts.layout.raw_len as u64;
                MemberClass::Rom((*facts).into_rom(placed(true, size), limits)?)
            }
            StoredMemberKind::Patch(facts) => {
                MemberClass::Patch(facts.into_patch(placed(false, 0))?)
            }
            StoredMemberKind::Note(source) => MemberClass::Note(source),
            StoredMemberKind::LeftOut(why) => MemberClass::LeftOut(why),
        };
        classes.push((member.name, class));
    }
    Some(ArchiveMembers {
        in_place,
        members: classes,
        problem: None,
    })
}

/// Whether stored SHA-1s are as `Library::layout_digests` makes them: one
/// per layout, the three layouts in order.
fn sound_sha1s(sha1s: &[(ImageLayout, [u8; 20])]) -> bool {
    let layouts: Vec<ImageLayout> = sha1s.iter().map(|(layout, _)| *layout).collect();
    layouts
        == [
            ImageLayout::Raw,
            ImageLayout::Normalized,
            ImageLayout::Deinterleaved,
        ]
}

/// Whether stored digests are for the three layouts of a file of `size`
/// bytes laid out as `layout`, in the order `Library::hashes` gives them.
fn sound_hashes(hashes: &RomHashes, layout: &Layout, size: u64) -> bool {
    let normalized = layout.normalized_len();
    let expected = [
        (ImageLayout::Raw, size),
        (ImageLayout::Normalized, normalized as u64),
        (
            ImageLayout::Deinterleaved,
            layout.restored_len(normalized) as u64,
        ),
    ];
    hashes.layouts.len() == expected.len()
        && hashes
            .layouts
            .iter()
            .zip(expected)
            .all(|((kind, len, ..), (want_kind, want_len))| *kind == want_kind && *len == want_len)
}

/// Whether a stored layout fits a file of `size` bytes the way `analyze`
/// makes layouts: normalizing and restoring with it stay inside the file
/// and give the sizes the views announce.
fn sound_layout(layout: &Layout, size: u64) -> bool {
    if layout.raw_len as u64 != size {
        return false;
    }
    let order_fits = layout.byte_order == ByteOrder::Big || layout.system == SystemType::N64;
    let interleave_fits = match layout.interleave {
        Interleave::None => true,
        Interleave::Smd => matches!(layout.system, SystemType::Sms | SystemType::Mega),
        Interleave::SnesChart20
        | Interleave::SnesChart24
        | Interleave::SnesChart48
        | Interleave::SnesGeneric => layout.system == SystemType::Snes,
    };
    let shape_fits = if layout.header == Some(HeaderKind::Unif) {
        sound_unif(layout)
    } else {
        let kept = match layout.header {
            Some(kind) if kind.kept() => layout.data_offset,
            _ => 0,
        };
        layout.unif.is_empty()
            && layout.unif_kept.is_empty()
            && layout.data_offset.checked_add(layout.data_len) == Some(layout.raw_len)
            && layout.header_bytes.len() == kept
            && (layout.header.is_some() || layout.data_offset == 0)
    };
    order_fits && interleave_fits && shape_fits
}

/// A UNIF layout's pieces cover the file in order, the kept bytes are as
/// long as its kept pieces, and there is game data.
fn sound_unif(layout: &Layout) -> bool {
    if layout.system != SystemType::Nes
        || layout.data_offset != 0
        || layout.data_len != 0
        || !layout.header_bytes.is_empty()
    {
        return false;
    }
    let (mut at, mut kept, mut roms) = (0usize, 0usize, 0usize);
    for piece in &layout.unif {
        let (offset, len) = match piece {
            UnifPiece::Kept { offset, len } => {
                kept = match kept.checked_add(*len) {
                    Some(kept) => kept,
                    None => return false,
                };
                (*offset, *len)
            }
            UnifPiece::Rom { offset, len } => {
                roms += 1;
                (*offset, *len)
            }
        };
        if offset != at {
            return false;
        }
        at = match at.checked_add(len) {
            Some(at) => at,
            None => return false,
        };
    }
    at == layout.raw_len && kept == layout.unif_kept.len() && roms > 0
}

/// `$XDG_CACHE_HOME/ninja-fs`, else `$HOME/.cache/ninja-fs` (relative
/// values are ignored, as the XDG specification says).
pub fn default_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
        .map(|dir| dir.join("ninja-fs"))
}

fn canonical(root: &Path) -> PathBuf {
    std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())
}

/// The cache file of backing folder `root` in `cache_dir`.
pub fn file_in(cache_dir: &Path, root: &Path) -> PathBuf {
    let root = canonical(root);
    let name = digest::hex(&digest::md5(root.as_os_str().as_bytes()));
    cache_dir.join(format!("{name}.json"))
}

/// How many entries a cache file's bytes would give a mount of `root`:
/// an error if the file would be ignored.
pub fn check(bytes: &[u8], root: &Path, limits: Limits) -> Result<usize, HeaderCacheError> {
    let expected = Header::expected(&canonical(root), limits);
    let entries = decode(bytes, &expected)?;
    Ok(entries
        .into_iter()
        .filter_map(|entry| entry.into_known(limits))
        .count())
}

fn decode(bytes: &[u8], expected: &Header) -> Result<Vec<Entry>, HeaderCacheError> {
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(HeaderCacheError::NoHeader)?;
    let header: Header =
        serde_json::from_slice(&bytes[..newline]).map_err(HeaderCacheError::BadHeader)?;
    if header.magic != expected.magic
        || header.version != expected.version
        || header.format != expected.format
        || header.build != expected.build
    {
        return Err(HeaderCacheError::OtherBuild(format!(
            "version {} format {}, {}",
            header.version, header.format, header.build
        )));
    }
    if header.root != expected.root || header.max_image_size != expected.max_image_size {
        return Err(HeaderCacheError::OtherRoot);
    }
    let entries = &bytes[newline + 1..];
    if entries.len() as u64 != header.entries_len {
        return Err(HeaderCacheError::Length {
            expected: header.entries_len,
            found: entries.len() as u64,
        });
    }
    if crc32fast::hash(entries) != header.entries_crc32 {
        return Err(HeaderCacheError::Checksum);
    }
    serde_json::from_slice(entries).map_err(HeaderCacheError::BadEntries)
}

fn encode(template: &Header, entries: &[Entry]) -> Result<Vec<u8>, HeaderCacheError> {
    let payload = serde_json::to_vec(entries).map_err(HeaderCacheError::Encode)?;
    let header = Header {
        entries_len: payload.len() as u64,
        entries_crc32: crc32fast::hash(&payload),
        ..template.clone()
    };
    let mut out = serde_json::to_vec(&header).map_err(HeaderCacheError::Encode)?;
    out.push(b'\n');
    out.extend_from_slice(&payload);
    Ok(out)
}

/// A file's identity and what it is.
pub(super) type Known = (FileId, Arc<ClassifiedEntry>);

/// What the cache holds of one file.
#[derive(Clone)]
pub(super) enum Stored {
    File(Known),
    Archive(StoredArchive),
}

/// An archive's version and members, and its ROM where it holds one shown
/// in its place (a zipped set's usual archive): kept at hand, as a later
/// scan asks it of thousands of archives in a row.
#[derive(Clone)]
pub(super) struct StoredArchive {
    id: FileId,
    members: Arc<ArchiveMembers>,
    lone_rom: Option<Arc<Rom>>,
}

impl Stored {
    fn archive(id: FileId, members: Arc<ArchiveMembers>) -> Stored {
        Stored::Archive(StoredArchive {
            id,
            lone_rom: members.lone_rom_in_place().cloned(),
            members,
        })
    }
}

/// What `stored` holds of an archive, if it is still version `id`.
fn current_archive<'s>(stored: &'s Stored, id: &FileId) -> Option<&'s StoredArchive> {
    match stored {
        Stored::Archive(archive) if archive.id == *id => Some(archive),
        _ => None,
    }
}

/// What the cache holds of one folder (see [`HeaderCache::with_folder`]).
#[derive(Clone, Copy)]
pub(super) struct StoredFolder<'c>(Option<&'c HashMap<String, Stored>>);

impl<'c> StoredFolder<'c> {
    /// What the cache made of file `name`, if it learned it from version
    /// `id`.
    pub(super) fn file(&self, name: &str, id: &FileId) -> Option<&'c Arc<ClassifiedEntry>> {
        match self.0?.get(name)? {
            Stored::File((known, entry)) if known == id => Some(entry),
            _ => None,
        }
    }

    /// The ROM archive `name` shows in its place, if the cache learned
    /// it from version `id`.
    pub(super) fn lone_rom(&self, name: &str, id: &FileId) -> Option<&'c Arc<Rom>> {
        current_archive(self.0?.get(name)?, id)?.lone_rom.as_ref()
    }
}

#[derive(Default)]
struct Saver {
    /// A save was asked for since the running one started.
    requested: bool,
    running: bool,
    /// The library is going: save now, without the quiet moment.
    hurry: bool,
    thread: Option<JoinHandle<()>>,
}

/// How long the saver waits before a save: a listing that scanned a large
/// folder still has its replies to send, and a save (serializing the whole
/// cache) would take a core from them.
const SAVE_DELAY: Duration = Duration::from_millis(500);

/// The cache of one backing folder: what the file held when the mount
/// started, updated by every scan, saved after scans that changed it and
/// when the library is dropped (if anything changed since).
pub(super) struct HeaderCache {
    path: PathBuf,
    header: Header,
    /// Folder (relative) -> file name -> entry.
    dirs: Mutex<HashMap<String, HashMap<String, Stored>>>,
    /// Something changed since the last save began.
    unsaved: AtomicBool,
    saver: Mutex<Saver>,
    /// Wakes a saver waiting out [`SAVE_DELAY`] when the library goes.
    saver_woken: Condvar,
}

impl HeaderCache {
    /// The cache of `root` in `cache_dir`, with what its file holds (an
    /// unreadable or unsound file is ignored with a log line).
    pub(super) fn open(cache_dir: &Path, root: &Path, limits: Limits) -> HeaderCache {
        let started = std::time::Instant::now();
        let root = canonical(root);
        let path = file_in(cache_dir, &root);
        let header = Header::expected(&root, limits);
        let mut dirs: HashMap<String, HashMap<String, Stored>> = HashMap::new();
        match std::fs::read(&path) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => log::warn!(
                "{}",
                HeaderCacheError::Read {
                    path: path.clone(),
                    source
                }
            ),
            Ok(bytes) => match decode(&bytes, &header) {
                Ok(entries) => {
                    let total = entries.len();
                    let mut unsound = 0;
                    for entry in entries {
                        match entry.into_known(limits) {
                            Some((dir, name, stored)) => {
                                dirs.entry(dir).or_default().insert(name, stored);
                            }
                            None => unsound += 1,
                        }
                    }
                    if unsound > 0 {
                        log::warn!(
                            "{}: {unsound} of {total} entries are unsound: those files are read again",
                            path.display()
                        );
                    }
                    log::debug!(
                        "{}: {} entries loaded in {:?}",
                        path.display(),
                        total - unsound,
                        started.elapsed()
                    );
                }
                Err(error @ HeaderCacheError::OtherBuild(_)) => {
                    log::info!("{}: ignored: {error}", path.display());
                }
                Err(error) => log::warn!("{}: ignored: {error}", path.display()),
            },
        }
        HeaderCache {
            path,
            header,
            dirs: Mutex::new(dirs),
            unsaved: AtomicBool::new(false),
            saver: Mutex::new(Saver::default()),
            saver_woken: Condvar::new(),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// What the cache knows of file `name` in folder `rel_dir`, if the
    /// file is still the one it was learned from.
    pub(super) fn get(
        &self,
        rel_dir: &str,
        name: &str,
        id: FileId,
    ) -> Option<Arc<ClassifiedEntry>> {
        self.with_folder(rel_dir, |folder| folder.file(name, &id).cloned())
    }

    /// What the cache knows of archive `name` in folder `rel_dir`, if the
    /// archive is still the one it was learned from.
    pub(super) fn get_archive(
        &self,
        rel_dir: &str,
        name: &str,
        id: FileId,
    ) -> Option<Arc<ArchiveMembers>> {
        let dirs = lock(&self.dirs);
        current_archive(dirs.get(rel_dir)?.get(name)?, &id).map(|archive| archive.members.clone())
    }

    /// Whether the cache holds what a scan of folder `rel_dir` found.
    pub(super) fn knows_dir(&self, rel_dir: &str) -> bool {
        lock(&self.dirs).contains_key(rel_dir)
    }

    /// Runs `with` on what the cache holds of folder `rel_dir`, under one
    /// lock: a scan asks it of a whole batch of a folder's files at once.
    pub(super) fn with_folder<R>(
        &self,
        rel_dir: &str,
        with: impl FnOnce(StoredFolder<'_>) -> R,
    ) -> R {
        let dirs = lock(&self.dirs);
        with(StoredFolder(dirs.get(rel_dir)))
    }

    /// Makes the cache's view of folder `rel_dir` what its scan found:
    /// `files` (only what may last is kept), `archives` (those that could
    /// be read), `from_cache` (archives the scan took from this cache's own
    /// entries, as [`StoredFolder::lone_rom`] gave them) and `subdirs`
    /// (entries of folders no longer there go). Whether anything changed.
    pub(super) fn record_dir(
        &self,
        rel_dir: &str,
        files: &HashMap<String, Known>,
        archives: Vec<(String, FileId, Arc<ArchiveMembers>)>,
        from_cache: &[String],
        subdirs: &[String],
    ) -> bool {
        let lasting_files = || files.iter().filter(|(_, (_, entry))| entry.lasting);
        let subdirs: HashSet<&str> = subdirs.iter().map(String::as_str).collect();
        let prefix = if rel_dir.is_empty() {
            String::new()
        } else {
            format!("{rel_dir}/")
        };
        let mut dirs = lock(&self.dirs);
        let before = dirs.len();
        dirs.retain(|dir, _| match dir.strip_prefix(&prefix) {
            Some(below) if !below.is_empty() => {
                subdirs.contains(below.split('/').next().unwrap_or(below))
            }
            _ => true,
        });
        let mut changed = dirs.len() != before;
        // Most scans find what the cache holds: compare before copying.
        let old = dirs.get(rel_dir);
        let stored = |name: &str| old.and_then(|old| old.get(name));
        // Those taken from the cache are its entries already (names in a
        // folder are unique): with the counts equal, only the rest need a
        // look.
        let same = lasting_files().count() + archives.len() + from_cache.len()
            == old.map_or(0, HashMap::len)
            && lasting_files().all(|(name, (id, _))| {
                matches!(stored(name), Some(Stored::File((known, _))) if known == id)
            })
            && archives.iter().all(|(name, id, _)| {
                matches!(stored(name), Some(Stored::Archive(known)) if known.id == *id)
            });
        if !same {
            changed = true;
            let kept = from_cache
                .iter()
                .filter_map(|name| Some((name.clone(), stored(name)?.clone())));
            let lasting: HashMap<String, Stored> = lasting_files()
                .map(|(name, known)| (name.clone(), Stored::File(known.clone())))
                .chain(
                    archives
                        .into_iter()
                        .map(|(name, id, members)| (name, Stored::archive(id, members))),
                )
                .chain(kept)
                .collect();
            if lasting.is_empty() {
                dirs.remove(rel_dir);
            } else {
                dirs.insert(rel_dir.to_string(), lasting);
            }
        }
        if changed {
            self.changed_since_save();
        }
        changed
    }

    /// Notes a change to save at the next save (after a scan, or when the
    /// library goes) without starting one: for changes that come by the
    /// thousand, such as report lengths while `info/` is listed.
    pub(super) fn changed_since_save(&self) {
        self.unsaved.store(true, Ordering::Relaxed);
    }

    /// Saves from a thread of its own (a save takes milliseconds to tens
    /// of them for large folders: not on a request's path). Saves asked
    /// for while one runs make one more save after it.
    pub(super) fn save_soon(self: &Arc<Self>) {
        let mut saver = lock(&self.saver);
        saver.requested = true;
        if saver.running {
            return;
        }
        let cache = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("ninja-fs-header-cache".into())
            .spawn(move || cache.save_while_asked());
        match spawned {
            Ok(thread) => {
                saver.running = true;
                saver.thread = Some(thread);
            }
            Err(error) => log::warn!("{}: not saved: {error}", self.path.display()),
        }
    }

    fn save_while_asked(&self) {
        loop {
            {
                let mut saver = lock(&self.saver);
                let deadline = Instant::now() + SAVE_DELAY;
                while !saver.hurry {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    saver = match self.saver_woken.wait_timeout(saver, left) {
                        Ok((saver, _)) => saver,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                }
                if !saver.requested {
                    saver.running = false;
                    return;
                }
                saver.requested = false;
            }
            if let Err(error) = self.save() {
                log::warn!("header cache not saved: {error}");
            }
        }
    }

    /// Waits for the saves asked for so far, then saves what changed since.
    pub(super) fn flush(&self) {
        lock(&self.saver).hurry = true;
        self.saver_woken.notify_all();
        loop {
            let thread = lock(&self.saver).thread.take();
            match thread {
                Some(thread) => {
                    let _ = thread.join();
                }
                None => break,
            }
        }
        if self.unsaved.load(Ordering::Relaxed)
            && let Err(error) = self.save()
        {
            log::warn!("header cache not saved: {error}");
        }
    }

    /// Writes every entry to a temporary file beside the cache file and
    /// renames it over the cache file, so a reader sees the old file or
    /// the new one. No fsync: a file torn by a crash fails its checksum
    /// and is ignored.
    fn save(&self) -> Result<(), HeaderCacheError> {
        self.unsaved.store(false, Ordering::Relaxed);
        let known: Vec<(String, Stored)> = lock(&self.dirs)
            .iter()
            .flat_map(|(dir, files)| {
                files
                    .iter()
                    .map(move |(name, stored)| (join(dir, name), stored.clone()))
            })
            .collect();
        let mut entries: Vec<Entry> = known
            .into_iter()
            .map(|(path, stored)| match stored {
                Stored::File((id, entry)) => Entry::of(path, id, &entry.classified),
                Stored::Archive(archive) => Entry::of_archive(path, archive.id, &archive.members),
            })
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let bytes = encode(&self.header, &entries)?;
        let write_error = |source| HeaderCacheError::Write {
            path: self.path.clone(),
            source,
        };
        let folder = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(folder).map_err(write_error)?;
        let mut file = tempfile::NamedTempFile::new_in(folder).map_err(write_error)?;
        file.write_all(&bytes).map_err(write_error)?;
        file.persist(&self.path)
            .map_err(|error| write_error(error.error))?;
        log::debug!(
            "{}: saved {} entries ({} bytes)",
            self.path.display(),
            entries.len(),
            bytes.len()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system;

    #[test]
    fn sha1s_are_kept_without_the_other_digests() {
        // A readme that states a SHA-1 has the SHA-1s made alone.
        let raw = vec![0u8; 0x8000];
        let layout = system::detect(Some("game.bin"), &raw);
        let sha1s = vec![
            (ImageLayout::Raw, [1; 20]),
            (ImageLayout::Normalized, [2; 20]),
            (ImageLayout::Deinterleaved, [3; 20]),
        ];
        let facts = RomFacts {
            layout,
            normalized_ext: "bin".into(),
            deinterleaved_ext: "bin".into(),
            report_len: None,
            hashes: None,
            sha1s: Some(sha1s.clone()),
            fds_disk: None,
        };
        let placed = Placed {
            rel_path: "game.bin".into(),
            file_name: "game.bin".into(),
            folder: String::new(),
            source: Source::File,
            name: "game.bin",
            id: FileId {
                dev: 1,
                ino: 2,
                size: 0x8000,
                mtime_ns: 0,
                ctime_ns: 0,
                access: crate::backing::Access::default(),
                tag: 0,
            },
            size: 0x8000,
        };
        let rom = facts.clone().into_rom(placed, Limits::default()).unwrap();
        assert_eq!(rom.sha1s.get().map(|s| s.to_vec()), Some(sha1s.clone()));
        assert_eq!(RomFacts::of(&rom).sha1s, Some(sha1s));
        // Out of order, or missing one, they were not made by a scan.
        let mut swapped = facts;
        if let Some(sha1s) = swapped.sha1s.as_mut() {
            sha1s.swap(0, 1);
        }
        assert!(!sound_sha1s(swapped.sha1s.as_deref().unwrap_or_default()));
        assert!(!sound_sha1s(&[(ImageLayout::Raw, [0; 20])]));
    }

    #[test]
    fn an_fds_disks_digests_are_kept_when_they_fit_the_file() {
        let mut raw = b"FDS\x1a\x01".to_vec();
        raw.resize(16 + 65_500, 0);
        let placed = |size: u64| Placed {
            rel_path: "disk.fds".into(),
            file_name: "disk.fds".into(),
            folder: String::new(),
            source: Source::File,
            name: "disk.fds",
            id: FileId {
                dev: 1,
                ino: 2,
                size,
                mtime_ns: 0,
                ctime_ns: 0,
                access: crate::backing::Access::default(),
                tag: 0,
            },
            size,
        };
        let disk = FdsDiskDigests {
            had_header: true,
            size: 65_500,
            crc32: 1,
            md5: [2; 16],
            sha1: [3; 20],
        };
        let facts = RomFacts {
            layout: system::detect(Some("disk.fds"), &raw),
            normalized_ext: "fds".into(),
            deinterleaved_ext: "fds".into(),
            report_len: None,
            hashes: None,
            sha1s: None,
            fds_disk: Some(disk.clone()),
        };
        let rom = facts.clone().into_rom(placed(65_516), Limits::default());
        let rom = rom.unwrap();
        assert_eq!(rom.fds_disk.get(), Some(&disk));
        assert_eq!(RomFacts::of(&rom).fds_disk, Some(disk.clone()));
        // A disk size the file cannot have: the entry is not used.
        let wrong = RomFacts {
            fds_disk: Some(FdsDiskDigests {
                size: 65_499,
                ..disk.clone()
            }),
            ..facts.clone()
        };
        assert!(wrong.into_rom(placed(65_516), Limits::default()).is_none());
        // Nor on a ROM of another system.
        let other = RomFacts {
            layout: system::detect(Some("game.bin"), &vec![0u8; raw.len()]),
            normalized_ext: "bin".into(),
            deinterleaved_ext: "bin".into(),
            ..facts
        };
        assert!(other.into_rom(placed(65_516), Limits::default()).is_none());
    }

    #[test]
    fn stored_digests_must_fit_the_layout() {
        // A headered SNES dump: raw 512 bytes longer than the other two.
        let mut raw = vec![0u8; 512 + 0x8000];
        raw[512 + 0x7FD5] = 0x20;
        raw[512 + 0x7FDC..512 + 0x7FE0].copy_from_slice(&[0xFF, 0xFF, 0, 0]);
        let layout = system::detect(Some("game.smc"), &raw);
        let size = raw.len() as u64;
        let digests = |sizes: [(ImageLayout, u64); 3]| RomHashes {
            layouts: sizes
                .iter()
                .map(|&(kind, len)| (kind, len, 0, [0; 16]))
                .collect(),
        };
        let good = [
            (ImageLayout::Raw, size),
            (ImageLayout::Normalized, 0x8000),
            (ImageLayout::Deinterleaved, 0x8000),
        ];
        assert!(sound_hashes(&digests(good), &layout, size));
        let mut swapped = good;
        swapped.swap(0, 1);
        assert!(!sound_hashes(&digests(swapped), &layout, size));
        let mut wrong_size = good;
        wrong_size[1].1 = size;
        assert!(!sound_hashes(&digests(wrong_size), &layout, size));
        let short = RomHashes {
            layouts: digests(good).layouts[..2].to_vec(),
        };
        assert!(!sound_hashes(&short, &layout, size));
    }
}
