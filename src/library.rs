//! The backing folder as the filesystem sees it: which files are ROMs and
//! which are patches, what each ROM is (from its headers alone), and which
//! patches pair with which ROM (by name, by folder, by checksum). The
//! backing is any [`Backing`]: a folder, or a bucket of an object store.
//!
//! Everything is keyed on file identity (device, inode, size, modification
//! and change time; an object's size, last-modified time and ETag), so a
//! changed file is read again and an unchanged one never is, not even by
//! the next mount when the header cache ([`header_cache`]) is on.

mod archives;
pub use archives::ArchiveNote;
use archives::ScannedArchive;
mod dat_images;
pub use dat_images::FdsDiskDigests;
pub mod header_cache;
pub mod hints;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustix::fs::FileType;

use serde::{Deserialize, Serialize};

use crate::apply::ImageLayout;
pub use crate::backing::FileId;
use crate::backing::{self, Access, Backing, Folder, Listed, LocalFolder, ReadAt, ReadError};
use crate::cache::lock;
use crate::digest;
use crate::patch::any::{Patch, PatchFormat};
use crate::patch::{Checksum, Limits};
use crate::system::{self, HeaderKind, Layout, SystemType};
use header_cache::HeaderCache;
use hints::SourceDigest;

/// Where a ROM's or patch's bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// The backing file at its `rel_path`.
    File,
    /// A member of the archive at `archive` (relative to the root), by its
    /// sanitized name inside it; its identity is the archive's.
    Member { archive: String, member: String },
}

/// A ROM in the backing folder.
#[derive(Debug)]
pub struct Rom {
    /// Path relative to the backing root, with `/`; for an archive's
    /// member, `archive//member`.
    pub rel_path: String,
    /// Its name in its folder of the views (for a member shown in place of
    /// its archive, the archive's name).
    pub file_name: String,
    /// The folder of the views that shows it, relative (for a member, the
    /// archive's folder, or the archive's own folder in the views).
    pub folder: String,
    pub source: Source,
    pub stem: String,
    pub id: FileId,
    pub layout: Layout,
    pub normalized_ext: String,
    pub deinterleaved_ext: String,
    /// See [`Library::report_len`].
    report_len: OnceLock<u64>,
    /// See [`Library::hashes`].
    hashes: OnceLock<Arc<RomHashes>>,
    /// The SHA-1 of each layout, made only for a readme that states one.
    sha1s: OnceLock<LayoutSha1s>,
    /// See [`Library::dat_digests`].
    fds_disk: OnceLock<FdsDiskDigests>,
}

impl Source {
    /// The backing file that holds the bytes of the ROM or patch at
    /// `rel_path`.
    pub fn file_path<'a>(&'a self, rel_path: &'a str) -> &'a str {
        match self {
            Source::File => rel_path,
            Source::Member { archive, .. } => archive,
        }
    }
}

impl Rom {
    /// The backing file that holds its bytes.
    pub fn file_path(&self) -> &str {
        self.source.file_path(&self.rel_path)
    }

    pub fn normalized_len(&self) -> u64 {
        self.layout.normalized_len() as u64
    }

    pub fn deinterleaved_len(&self) -> u64 {
        self.layout.restored_len(self.layout.normalized_len()) as u64
    }
}

/// One way a patch can pair by checksum: a source (or, for NINJA2, a
/// target) the patch was made from, by size and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairKey {
    pub size: u64,
    pub checksum: Checksum,
    /// NINJA2: the entry's system type; the ROM is normalized as that.
    pub rup_system: Option<SystemType>,
    /// NINJA2: a match of the target digest un-patches.
    pub reverses: bool,
}

/// A patch in the backing folder.
#[derive(Debug)]
pub struct PatchFile {
    /// As [`Rom::rel_path`].
    pub rel_path: String,
    pub file_name: String,
    /// As [`Rom::folder`].
    pub folder: String,
    pub source: Source,
    /// The name without its extension (`Game` for `Game.ips1`).
    pub stem: String,
    /// The extension, lower case (`ips1`).
    pub ext: String,
    pub id: FileId,
    pub format: PatchFormat,
    pub pair_keys: Vec<PairKey>,
    /// Whether applying checks the input (see `Patch::verifies_source`).
    pub verifies_source: bool,
    pub source_size: Option<u64>,
    pub target_size: Option<u64>,
    /// Why the patch cannot be read, if it cannot.
    pub error: Option<String>,
}

impl PatchFile {
    /// The backing file that holds its bytes.
    pub fn file_path(&self) -> &str {
        self.source.file_path(&self.rel_path)
    }
}

/// A patched variant of a ROM: the patches applied in order.
#[derive(Debug, Clone)]
pub struct Variant {
    /// What goes between the brackets of the file name.
    pub label: String,
    pub patches: Vec<Arc<PatchFile>>,
    /// Where a checksum said the first patch applies, if known.
    pub layout: Option<ImageLayout>,
    pub reversed: bool,
    /// Why it pairs, for the info report.
    pub reason: String,
}

/// What pairs with a ROM: its variants, and the patches paired by name
/// that are for another version.
#[derive(Debug, Clone, Default)]
pub struct Pairings {
    pub variants: Vec<Variant>,
    pub unfit: Vec<Unfit>,
}

/// A patch paired with a ROM by name whose checksum fits none of its images.
#[derive(Debug, Clone)]
pub struct Unfit {
    pub patch: Arc<PatchFile>,
    /// Why, in words ("expects a source of ... with CRC32 ...; this ROM is ...").
    pub why: String,
}

/// The SHA-1 of each of a ROM's layouts.
type LayoutSha1s = Arc<Vec<(ImageLayout, [u8; 20])>>;

/// The digests of a ROM's three layouts, computed once per file identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RomHashes {
    pub layouts: Vec<(ImageLayout, u64, u32, [u8; 16])>,
}

/// A folder of the backing tree, as last scanned.
#[derive(Debug, Default)]
pub struct DirContents {
    /// Unique per scan: whatever was derived from an older scan is stale.
    pub generation: u64,
    pub subdirs: Vec<String>,
    pub roms: Vec<Arc<Rom>>,
    pub patches: Vec<Arc<PatchFile>>,
    /// Owner and mode of the folder itself.
    pub access: Access,
    /// Names of the ROMs, patches and archives that are links (to files
    /// inside).
    linked: HashSet<String>,
    /// Text files that may be readmes naming a ROM (see [`hints`]).
    notes: Vec<(String, FileId)>,
    /// Subfolders that are archives shown as folders, with the archive's
    /// path.
    archive_folders: HashMap<String, String>,
    /// For a folder inside an archive: the archive's path and version.
    archive: Option<(String, FileId)>,
    /// What `info/` says of the archives here that do not show a ROM in
    /// place of themselves.
    pub archive_notes: Vec<Arc<ArchiveNote>>,
    /// Positions in `patches` by stem, made on first use: pairing by name
    /// would otherwise compare every ROM with every patch.
    by_stem: OnceLock<HashMap<String, Vec<usize>>>,
}

impl DirContents {
    /// The folder's patches whose name without extension is `stem`, in
    /// file-name order.
    pub fn patches_named<'a>(&'a self, stem: &str) -> impl Iterator<Item = &'a Arc<PatchFile>> {
        let by_stem = self.by_stem.get_or_init(|| {
            let mut by_stem: HashMap<String, Vec<usize>> = HashMap::new();
            for (at, patch) in self.patches.iter().enumerate() {
                by_stem.entry(patch.stem.clone()).or_default().push(at);
            }
            by_stem
        });
        by_stem
            .get(stem)
            .into_iter()
            .flatten()
            .filter_map(|&at| self.patches.get(at))
    }
}

struct DirEntryCache {
    /// The folder's own identity when it was scanned: its mtime moves when
    /// entries come and go, its change time when its owner or mode do.
    id: FileId,
    contents: Arc<DirContents>,
    /// When the scan ended.
    scanned: Instant,
}

/// A scan this recent is as current as checking its files again: a change
/// in the moments since is no different from one made just after the
/// check. A listing looks a folder up (which scans it) and then reads it
/// (which would check every file the scan just saw).
const JUST_SCANNED: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub(crate) enum Classified {
    Rom(Arc<Rom>),
    Patch(Arc<PatchFile>),
    Other,
}

pub struct Library {
    backing: Box<dyn Backing>,
    limits: Limits,
    dirs: Mutex<HashMap<String, DirEntryCache>>,
    files: Mutex<HashMap<String, (FileId, Arc<ClassifiedEntry>)>>,
    index: Mutex<Option<(Instant, PatchIndex)>>,
    /// The source a readme in the same archive names, by patch path.
    archived_hints: Mutex<HashMap<String, (SourceDigest, String)>>,
    /// What each archive holds, by path and version.
    archives: Mutex<HashMap<String, (FileId, Arc<archives::ArchiveListing>)>>,
    /// The folders scanned by this mount (see [`Library::first_scan`]).
    scanned_dirs: Mutex<HashSet<String>>,
    /// What each readme-like text file names, by path and version.
    notes: Mutex<HashMap<String, (FileId, Option<SourceDigest>)>>,
    /// Files whose bytes were read to classify them.
    header_reads: AtomicU64,
    roms_hashed: AtomicU64,
    header_cache: OnceLock<Arc<HeaderCache>>,
    /// Whether a ROM already holds what a PPF 3.0 with undo data writes,
    /// by the versions of both (see [`Library::mark_reverted_ppf`]).
    ppf_applied: Mutex<HashMap<PpfPairKey, bool>>,
}

/// A ROM and a patch, each by path and version.
type PpfPairKey = (String, FileId, String, FileId);

struct ClassifiedEntry {
    classified: Classified,
    /// Whether the next mount may reuse it: not when reading failed, which
    /// may not happen again.
    lasting: bool,
    /// Why the file is left out though it may be a ROM or patch (it could
    /// not be read), for the log.
    problem: Option<String>,
}

/// A folder entry after its `stat`.
enum Looked {
    Dir(String),
    Known(Found, Arc<ClassifiedEntry>),
    Unknown(Found),
    /// A file `stat`ed, not yet looked up in what earlier scans learned
    /// (see `Library::known_in_batch`).
    Stated(Found),
    /// An archive, by its name.
    Archive(Found),
    /// An archive the header cache knows, at this version, as holding the
    /// ROM it shows in its place.
    CachedRom(Found, Arc<Rom>),
    /// An archive of a folder scanned for the first time, not `stat`ed:
    /// reading it tells its version.
    NewArchive(String),
    /// Left out, and why (`None`: nothing worth saying, such as `.` files
    /// that are no ROM).
    Skipped(String, Option<String>),
}

/// A file of a folder being scanned.
pub(crate) struct Found {
    pub(crate) name: String,
    pub(crate) id: FileId,
    pub(crate) linked: bool,
}

impl Found {
    /// This file, moved out of a `Looked` being replaced (the name is
    /// moved, not copied).
    fn take(&mut self) -> Found {
        Found {
            name: std::mem::take(&mut self.name),
            ..*self
        }
    }
}

/// Every patch in the tree that can pair by checksum.
#[derive(Debug)]
pub struct PatchIndexData {
    pub generation: u64,
    pub patches: Vec<Arc<PatchFile>>,
    /// Positions in `patches` by the image sizes their checksums are for.
    by_size: HashMap<u64, Vec<usize>>,
    /// Patches without a checksum of their own whose source a collector
    /// named elsewhere (see [`hints`]), with what named it.
    pub hinted: Vec<Hinted>,
}

/// A patch without a checksum whose source ROM its file name or a readme
/// beside it names.
#[derive(Debug, Clone)]
pub struct Hinted {
    pub patch: Arc<PatchFile>,
    pub source: SourceDigest,
    /// What named it, for the info report ("the CRC32 in its file name").
    pub rule: String,
}

impl PatchIndexData {
    /// The patches with a checksum for an image of one of `sizes`, each
    /// once, in index order.
    fn for_sizes(&self, sizes: &[u64]) -> Vec<&Arc<PatchFile>> {
        let mut found: Vec<usize> = sizes
            .iter()
            .filter_map(|size| self.by_size.get(size))
            .flatten()
            .copied()
            .collect();
        found.sort_unstable();
        found.dedup();
        found
            .iter()
            .filter_map(|&at| self.patches.get(at))
            .collect()
    }
}

pub type PatchIndex = Arc<PatchIndexData>;

/// Counts folder scans and index builds, to tell results apart.
static SCANS: AtomicU64 = AtomicU64::new(1);

/// Threads that `stat` a large folder's entries (those that read headers
/// are as many as the backing says: `Backing::parallel_reads`), and the
/// number of files below which one thread does either alone.
const STAT_THREADS: usize = 4;
const SCAN_BATCH: usize = 64;

/// Files a scan must have read for the header cache to be saved at once.
const SAVE_AFTER_READS: usize = 64;

/// How often the whole tree is walked again for checksum pairing.
const INDEX_REFRESH: Duration = Duration::from_secs(1);

/// Where detection looks, with room for a 512-byte copier header: the
/// first 33 KiB (magics, iNES, LNX, N64, Game Boy and Mega Drive headers,
/// an SMD dump's Mega Drive header and its second 16 KiB block with the
/// SNES LoROM and SMS headers, the 32 KiB a TurboGrafx-16 game's region
/// check is looked for in), the SNES HiROM header, and the ExHiROM header.
const DETECTION_REGIONS: [(u64, u64); 3] =
    [(0, 0x8400), (0xFC00, 0x1_0200), (0x40_FC00, 0x41_0200)];

/// How many of a file's first bytes hold every detection region that
/// starts inside it: what detection must decompress of an archive member
/// of `size` bytes (4 MiB of a 4 MiB SNES game had been, for a header at
/// 64 KiB).
pub(crate) fn detection_len(size: u64) -> u64 {
    DETECTION_REGIONS
        .iter()
        .filter(|(start, _)| *start < size)
        .map(|(_, end)| (*end).min(size))
        .max()
        .unwrap_or(0)
}

/// The detection regions as the disk should be asked for them (one 33 KiB
/// read costs about what one 1 KiB read does; three requests cost three).
const PREFETCH_REGIONS: [(u64, u64); 3] = [(0, 0x8400), (0xFC00, 0x1_0200), (0x40_FC00, 0x41_0200)];

/// Extensions that say a file is a ROM of unknown system.
const RAW_ROM_EXTENSIONS: [&str; 2] = ["bin", "rom"];

/// Whether the name of file `name` (its last component) says it is a ROM:
/// a system's extension, or one of [`RAW_ROM_EXTENSIONS`].
fn named_like_rom(name: &str) -> bool {
    let (_, ext) = split_name(name);
    system::system_for_extension(name).is_some()
        || RAW_ROM_EXTENSIONS
            .iter()
            .any(|raw| ext.eq_ignore_ascii_case(raw))
}

pub fn split_name(file_name: &str) -> (&str, &str) {
    match file_name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, ext),
        _ => (file_name, ""),
    }
}

/// The name of `rel_path` in the relative folder `rel_dir`, if it lies
/// there directly.
fn name_in<'a>(rel_dir: &str, rel_path: &'a str) -> Option<&'a str> {
    let name = if rel_dir.is_empty() {
        rel_path
    } else {
        rel_path.strip_prefix(rel_dir)?.strip_prefix('/')?
    };
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// `name` inside the relative folder `rel_dir` (empty for the root).
pub(crate) fn join(rel_dir: &str, name: &str) -> String {
    let mut path = String::with_capacity(rel_dir.len() + 1 + name.len());
    join_into(&mut path, rel_dir, name);
    path
}

/// [`join`] into `path`, whose bytes it replaces: a loop over a folder's
/// files reuses one buffer. By hand, as `format!` cost a 10,000-file
/// folder's scan 6 ms.
pub(crate) fn join_into(path: &mut String, rel_dir: &str, name: &str) {
    path.clear();
    if !rel_dir.is_empty() {
        path.push_str(rel_dir);
        path.push('/');
    }
    path.push_str(name);
}

impl Library {
    /// The library of the folder `root`; an error if it cannot be opened.
    pub fn new(root: &Path, limits: Limits) -> io::Result<Library> {
        Ok(Library::with_backing(
            Box::new(LocalFolder::new(root)?),
            limits,
        ))
    }

    /// The library of any backing (a folder, an object store).
    pub fn with_backing(backing: Box<dyn Backing>, limits: Limits) -> Library {
        Library {
            backing,
            limits,
            dirs: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            index: Mutex::new(None),
            notes: Mutex::new(HashMap::new()),
            archives: Mutex::new(HashMap::new()),
            scanned_dirs: Mutex::new(HashSet::new()),
            archived_hints: Mutex::new(HashMap::new()),
            header_reads: AtomicU64::new(0),
            roms_hashed: AtomicU64::new(0),
            header_cache: OnceLock::new(),
            ppf_applied: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps header analyses in a file under `cache_dir` (see
    /// [`header_cache`]): loads what an earlier mount saved, and saves
    /// what this one learns. Call once, before the first scan; later calls
    /// change nothing.
    pub fn use_header_cache(&self, cache_dir: &Path) {
        if self.header_cache.get().is_none() {
            let cache = HeaderCache::open(cache_dir, self.backing.root(), self.limits);
            let _ = self.header_cache.set(Arc::new(cache));
        }
    }

    /// The header cache's file, if the cache is on.
    pub fn header_cache_file(&self) -> Option<&Path> {
        self.header_cache.get().map(|cache| cache.path())
    }

    /// Waits until what the scans learned so far is saved (saves run in
    /// the background).
    pub fn flush_header_cache(&self) {
        if let Some(cache) = self.header_cache.get() {
            cache.flush();
        }
    }

    /// How many files had their bytes read to be classified (headers of
    /// ROMs, whole patches) or for [`Library::report_len`] since this
    /// library was made.
    pub fn header_reads(&self) -> u64 {
        self.header_reads.load(Ordering::Relaxed)
    }

    /// How many ROMs were read whole to be hashed (for checksum pairing)
    /// since this library was made.
    pub fn roms_hashed(&self) -> u64 {
        self.roms_hashed.load(Ordering::Relaxed)
    }

    /// The length of the part of a ROM's report made from its header
    /// regions alone (`compute` reads them and makes it): computed once
    /// per file identity and, with the header cache, kept for the next
    /// mount, which then sizes `info/` files without reading any.
    pub fn report_len(&self, rom: &Rom, compute: impl FnOnce() -> Option<u64>) -> Option<u64> {
        if let Some(&len) = rom.report_len.get() {
            return Some(len);
        }
        self.header_reads.fetch_add(1, Ordering::Relaxed);
        let len = compute()?;
        if rom.report_len.set(len).is_ok()
            && let Some(cache) = self.header_cache.get()
        {
            cache.changed_since_save();
        }
        Some(len)
    }

    pub fn root(&self) -> &Path {
        self.backing.root()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The path of `rel_path`, for messages: reads go through the backing.
    pub fn path_of(&self, rel_path: &str) -> PathBuf {
        self.backing.path_of(rel_path)
    }

    /// The folder `rel_dir` (relative, `/`-separated; empty for the root),
    /// scanned again if it changed. `None` if it is not a folder.
    pub fn dir(&self, rel_dir: &str) -> Option<Arc<DirContents>> {
        let Ok(dir) = self.backing.open_folder(rel_dir) else {
            return self.archive_dir(rel_dir);
        };
        let id = dir.id().ok()?;
        if let Some(cached) = lock(&self.dirs).get(rel_dir)
            && cached.id == id
        {
            return Some(cached.contents.clone());
        }
        let contents = Arc::new(self.scan_dir(rel_dir, dir.as_ref(), id.access));
        lock(&self.dirs).insert(
            rel_dir.to_string(),
            DirEntryCache {
                id,
                contents: contents.clone(),
                scanned: Instant::now(),
            },
        );
        Some(contents)
    }

    /// Forgets the scan of the folder holding `rel_path`, so the next look
    /// reads it again (a file rewritten in place leaves the folder's mtime).
    pub fn forget_dir_of(&self, rel_path: &str) {
        let rel_dir = rel_path.rsplit_once('/').map_or("", |(dir, _)| dir);
        lock(&self.dirs).remove(rel_dir);
    }

    /// Forgets the scan of `rel_dir` if any of its files changed.
    pub fn forget_dir_if_files_changed(&self, rel_dir: &str) {
        let cached = lock(&self.dirs)
            .get(rel_dir)
            .filter(|c| c.scanned.elapsed() >= JUST_SCANNED)
            .map(|c| c.contents.clone());
        if let Some(contents) = cached
            && !self.files_unchanged(rel_dir, &contents)
        {
            lock(&self.dirs).remove(rel_dir);
        }
    }

    /// The identity (with owner and mode) of the folder `rel_dir`.
    pub fn folder_id(&self, rel_dir: &str) -> io::Result<FileId> {
        self.backing.stat(rel_dir).or_else(|error| {
            // A folder inside an archive: the archive's, as a folder.
            let contents = self.dir(rel_dir).ok_or(error)?;
            let (_, id) = contents
                .archive
                .as_ref()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such folder"))?;
            Ok(FileId {
                access: archives::as_folder(id.access),
                ..*id
            })
        })
    }

    /// The backing file of `rom`, open, if it is still the version scanned.
    pub fn open_rom(&self, rom: &Rom) -> Option<File> {
        if rom.source != Source::File {
            return None;
        }
        let file = self.backing.open_file(&rom.rel_path).ok()?;
        let meta = file.metadata().ok()?;
        (FileId::of(&meta) == rom.id).then_some(file)
    }

    /// Whether the file at `rel_path` is still the file `id` describes.
    pub fn is_current(&self, rel_path: &str, id: &FileId) -> bool {
        self.backing.stat(rel_path).is_ok_and(|now| now == *id)
    }

    /// Whether every file of the scanned folder `rel_dir` is still the same
    /// file (a rewrite in place does not change the folder's mtime).
    fn files_unchanged(&self, rel_dir: &str, contents: &DirContents) -> bool {
        if let Some((archive, id)) = &contents.archive {
            return self.is_current(archive, id);
        }
        // Each listing checks every file: stat them by name in the open
        // folder rather than walking the whole path each time.
        let Ok(dir) = self.backing.open_folder(rel_dir) else {
            return false;
        };
        let unchanged = |name: &str, source: &Source, id: &FileId| {
            let now = match source {
                Source::Member { archive, .. } => match name_in(rel_dir, archive) {
                    Some(name) if !contents.linked.contains(name) => {
                        dir.stat_entry(OsStr::new(name))
                    }
                    _ => self.backing.stat(archive),
                },
                Source::File if contents.linked.contains(name) => {
                    self.backing.stat(&join(rel_dir, name))
                }
                Source::File => dir.stat_entry(OsStr::new(name)),
            };
            now.is_ok_and(|now| now == *id)
        };
        contents
            .roms
            .iter()
            .all(|r| unchanged(&r.file_name, &r.source, &r.id))
            && contents
                .archive_notes
                .iter()
                .all(|n| self.is_current(&n.rel_path, &n.id))
            && contents
                .patches
                .iter()
                .all(|p| unchanged(&p.file_name, &p.source, &p.id))
    }

    fn scan_dir(&self, rel_dir: &str, dir: &dyn Folder, access: Access) -> DirContents {
        let started = Instant::now();
        let mut contents = DirContents {
            generation: SCANS.fetch_add(1, Ordering::Relaxed),
            access,
            ..DirContents::default()
        };
        let first_scan = self.first_scan(rel_dir);
        let looked = match self.list_and_look(rel_dir, dir, first_scan) {
            Ok(looked) => looked,
            Err(error) => {
                log::warn!("{}: cannot list: {error}", self.path_of(rel_dir).display());
                return contents;
            }
        };
        let listed_len = looked.len();
        let mut current = HashMap::with_capacity(listed_len);
        let mut unknown = Vec::new();
        let mut archived = Vec::new();
        // Archives whose ROM came straight from the header cache.
        let mut from_cache = Vec::new();
        let mut new_archives = Vec::new();
        for looked in looked {
            match looked {
                Looked::Archive(found) => {
                    if found.linked {
                        contents.linked.insert(found.name.clone());
                    }
                    archived.push(found)
                }
                Looked::CachedRom(found, rom) => {
                    if found.linked {
                        contents.linked.insert(found.name.clone());
                    }
                    contents.roms.push(rom);
                    from_cache.push(found.name);
                }
                Looked::NewArchive(name) => new_archives.push(name),
                Looked::Dir(name) => contents.subdirs.push(name),
                Looked::Known(found, entry) => {
                    if found.linked {
                        contents.linked.insert(found.name.clone());
                    }
                    current.insert(found.name, (found.id, entry));
                }
                Looked::Unknown(found) | Looked::Stated(found) => {
                    if found.linked {
                        contents.linked.insert(found.name.clone());
                    }
                    unknown.push(found);
                }
                Looked::Skipped(name, Some(reason)) => log::info!(
                    "{}: left out: {reason}",
                    self.path_of(&join(rel_dir, &name)).display()
                ),
                Looked::Skipped(_, None) => {}
            }
        }
        let looked_at = started.elapsed();
        // Reading headers is I/O-bound on a cold cache: several readers
        // keep the disk busy while one waits.
        let read = parallel_map(&unknown, self.backing.parallel_reads(), |found| {
            (
                found.name.clone(),
                found.id,
                self.classify(rel_dir, &found.name, found.id),
            )
        });
        current.extend(
            read.into_iter()
                .map(|(name, id, entry)| (name, (id, entry))),
        );
        for (name, (id, entry)) in &current {
            match &entry.classified {
                Classified::Rom(rom) => contents.roms.push(rom.clone()),
                Classified::Patch(patch) => contents.patches.push(patch.clone()),
                Classified::Other => {
                    if hints::is_note(name) {
                        contents.notes.push((name.clone(), *id));
                    }
                    self.log_left_out(rel_dir, name, id, entry);
                }
            }
        }
        let mut lasting_archives = Vec::new();
        let reads_before = self.header_reads();
        let readers = self.backing.parallel_reads();
        let scanned = parallel_map(&archived, readers, |found| {
            self.scanned_archive(&join(rel_dir, &found.name), found.id)
        });
        let read_new = parallel_map(&new_archives, readers, |name| {
            self.read_new_archive(&join(rel_dir, name), dir, name)
        });
        // Archives read rather than found in the header cache (scans of
        // other folders running at once may add to the count: no harm).
        let archives_read = self.header_reads().saturating_sub(reads_before) as usize;
        let mut rel_path = String::new();
        let new_found = new_archives
            .into_iter()
            .zip(read_new)
            .filter_map(|(name, read)| {
                join_into(&mut rel_path, rel_dir, &name);
                let (id, scanned) = self.scanned_new_archive(&rel_path, read?);
                let found = Found {
                    name,
                    id,
                    linked: false,
                };
                Some((found, scanned))
            });
        for (found, scanned) in archived.into_iter().zip(scanned).chain(new_found) {
            let members = match scanned {
                ScannedArchive::LoneRom(members) => {
                    contents.roms.extend(members.lone_rom_in_place().cloned());
                    Some(members)
                }
                ScannedArchive::Listing(listing) => {
                    self.add_archive(rel_dir, &found, &listing, &mut contents);
                    listing.members.clone()
                }
            };
            if let Some(members) = members {
                lasting_archives.push((found.name, found.id, members));
            }
        }
        contents.subdirs.sort();
        if let Some(cache) = self.header_cache.get()
            && cache.record_dir(
                rel_dir,
                &current,
                lasting_archives,
                &from_cache,
                &contents.subdirs,
            )
        {
            // A save rewrites the whole file, which for a large library
            // costs more than reading a few files again on the next mount:
            // a scan that read few is saved with the rest at unmount.
            if unknown.len() + archives_read >= SAVE_AFTER_READS {
                cache.save_soon();
            } else {
                cache.changed_since_save();
            }
        }
        // By name, then path: two archives may hold members of one name.
        // The ROMs the header cache gave lead the list, named as their
        // archives in `from_cache`.
        sort_roms(&mut contents.roms, &from_cache);
        contents
            .patches
            .sort_unstable_by(|a, b| (&a.file_name, &a.rel_path).cmp(&(&b.file_name, &b.rel_path)));
        log::debug!(
            "scanned /{rel_dir}: {} entries in {:?} ({:?} listing and stat), {} files read",
            listed_len,
            started.elapsed(),
            looked_at,
            unknown.len()
        );
        contents
    }

    /// Says in the log why a file that is neither ROM nor patch is not
    /// shown: at info level where it might have been one, else at debug.
    fn log_left_out(&self, rel_dir: &str, name: &str, id: &FileId, entry: &ClassifiedEntry) {
        let path = self.path_of(&join(rel_dir, name));
        if let Some(problem) = &entry.problem {
            log::warn!("{}: left out: {problem}", path.display());
        } else if id.size > self.limits.max_image_size {
            log::info!(
                "{}: left out: larger ({} bytes) than the largest image the mount builds ({} bytes)",
                path.display(),
                id.size,
                self.limits.max_image_size
            );
        } else {
            log::debug!("{}: left out: not a ROM or patch", path.display());
        }
    }

    /// Every entry of folder `rel_dir` (open as `dir`), [`look`]ed at, in
    /// inode order. A large folder is looked at by [`STAT_THREADS`] threads
    /// while it is still being listed: listing ten thousand entries took 5
    /// ms before the first `stat` could start.
    ///
    /// [`look`]: Library::look
    fn list_and_look(
        &self,
        rel_dir: &str,
        dir: &dyn Folder,
        first_scan: bool,
    ) -> io::Result<Vec<Looked>> {
        // Each entry's place in the listing breaks ties of inode numbers
        // (hard links), so the order is the same at every scan.
        let look_all = |(first, batch): (usize, Vec<Listed>), looked: &mut Vec<_>| {
            looked.reserve(batch.len());
            let from = looked.len();
            for (at, entry) in (first..).zip(batch) {
                let ino = entry.ino;
                let seen = self.look(rel_dir, dir, entry, first_scan);
                looked.push(((ino, at), seen));
            }
            self.lone_roms_from_cache(rel_dir, &mut looked[from..]);
            self.known_in_batch(rel_dir, dir, &mut looked[from..]);
        };
        let (sender, receiver) = std::sync::mpsc::channel::<(usize, Vec<Listed>)>();
        let receiver = Mutex::new(receiver);
        let files_before = lock(&self.files).len();
        let mut listed = 0;
        let mut looked = Vec::new();
        let listing = std::thread::scope(|scope| {
            let mut workers = Vec::new();
            let listing = dir.list_in_batches(&mut |mut batch| {
                let first = listed;
                listed += batch.len();
                {
                    // Room for what this scan may learn, made as the
                    // listing goes: grown file by file under the lock, the
                    // table was rehashed a dozen times while the scan's
                    // threads waited on it.
                    let mut files = lock(&self.files);
                    let room = (files_before + listed).saturating_sub(files.len());
                    files.reserve(room);
                }
                // Inode order is close to the inode table's order on disk:
                // cold `stat`s then read it nearly in sequence.
                batch.sort_unstable_by_key(|entry| entry.ino);
                if workers.is_empty() && batch.len() < SCAN_BATCH {
                    look_all((first, batch), &mut looked);
                    return;
                }
                if workers.is_empty() {
                    workers = (0..STAT_THREADS)
                        .map(|_| {
                            scope.spawn(|| {
                                let mut looked = Vec::new();
                                loop {
                                    // The lock is let go before the batch
                                    // is looked at.
                                    let next = lock(&receiver).recv();
                                    let Ok(batch) = next else { break };
                                    look_all(batch, &mut looked);
                                }
                                looked
                            })
                        })
                        .collect();
                }
                // The workers outlive the listing: a send cannot fail.
                let _ = sender.send((first, batch));
            });
            drop(sender);
            for worker in workers {
                looked.extend(worker.join().unwrap_or_default());
            }
            listing
        });
        listing?;
        looked.sort_unstable_by_key(|(order, _)| *order);
        Ok(looked.into_iter().map(|(_, looked)| looked).collect())
    }

    /// A zipped set is mostly archives of one ROM each, which the header
    /// cache knows on every later scan: their ROM comes straight from it,
    /// asked for by the thread that `stat`ed them, a batch under one lock.
    /// (Working out each archive's folders one by one cost ten thousand
    /// such archives 20 ms; asking for them all after the `stat`s, 2-4 ms
    /// with a core idle.)
    fn lone_roms_from_cache<K>(&self, rel_dir: &str, looked: &mut [(K, Looked)]) {
        let Some(cache) = self.header_cache.get() else {
            return;
        };
        if !looked.iter().any(|(_, l)| matches!(l, Looked::Archive(_))) {
            return;
        }
        cache.with_folder(rel_dir, |stored| {
            for (_, seen) in looked.iter_mut() {
                let Looked::Archive(found) = seen else {
                    continue;
                };
                let Some(rom) = stored.lone_rom(&found.name, &found.id) else {
                    continue;
                };
                *seen = Looked::CachedRom(found.take(), rom.clone());
            }
        });
    }

    /// The files of a batch [`look`](Library::look) `stat`ed, each as what
    /// this mount's scans (`files`) or the header cache already made of
    /// it at its version, else unknown; each lock is taken once a batch,
    /// not twice a file (a later mount's listing of 10,000 loose ROMs
    /// spent a fifth of its scan on them). For a file that must be read,
    /// the reads detection will make are asked of the kernel at once, so
    /// that the disk queue fills while the other batches are `stat`ed.
    fn known_in_batch<K>(&self, rel_dir: &str, dir: &dyn Folder, looked: &mut [(K, Looked)]) {
        if !looked.iter().any(|(_, l)| matches!(l, Looked::Stated(_))) {
            return;
        }
        let mut path = String::new();
        {
            let files = lock(&self.files);
            if !files.is_empty() {
                for (_, seen) in looked.iter_mut() {
                    let Looked::Stated(found) = seen else {
                        continue;
                    };
                    join_into(&mut path, rel_dir, &found.name);
                    if let Some((known, entry)) = files.get(path.as_str())
                        && *known == found.id
                    {
                        *seen = Looked::Known(found.take(), entry.clone());
                    }
                }
            }
        }
        if let Some(cache) = self.header_cache.get() {
            let mut learned = Vec::new();
            cache.with_folder(rel_dir, |stored| {
                for (_, seen) in looked.iter_mut() {
                    let Looked::Stated(found) = seen else {
                        continue;
                    };
                    let Some(entry) = stored.file(&found.name, &found.id) else {
                        continue;
                    };
                    learned.push((join(rel_dir, &found.name), found.id, entry.clone()));
                    *seen = Looked::Known(found.take(), entry.clone());
                }
            });
            if !learned.is_empty() {
                let mut files = lock(&self.files);
                for (rel_path, id, entry) in learned {
                    files.insert(rel_path, (id, entry));
                }
            }
        }
        for (_, seen) in looked.iter_mut() {
            let Looked::Stated(found) = seen else {
                continue;
            };
            let whole = [(0, found.id.size)];
            let regions: &[(u64, u64)] = if PatchFormat::from_extension(&found.name).is_some() {
                &whole
            } else if found.id.size <= self.limits.max_image_size {
                &PREFETCH_REGIONS
            } else {
                &[]
            };
            if !regions.is_empty() {
                if found.linked {
                    join_into(&mut path, rel_dir, &found.name);
                    self.backing.prefetch(&path, found.id.size, regions);
                } else {
                    dir.prefetch_entry(OsStr::new(&found.name), found.id.size, regions);
                }
            }
            *seen = Looked::Unknown(found.take());
        }
    }

    /// `stat`s one entry of folder `rel_dir` (open as `dir`) and says what
    /// it is; [`known_in_batch`](Library::known_in_batch) then says what
    /// is known of a file.
    fn look(&self, rel_dir: &str, dir: &dyn Folder, entry: Listed, first_scan: bool) -> Looked {
        // The listing's own copy of the name becomes the entry's: the stat
        // threads make and free no string of their own for most entries.
        let owned = match entry.name.into_string() {
            Ok(owned) => owned,
            Err(raw) => {
                return Looked::Skipped(
                    raw.to_string_lossy().into_owned(),
                    Some("its name is not valid UTF-8 (rename it to show it)".into()),
                );
            }
        };
        let name = owned.as_str();
        let os_name = OsStr::new(name);
        let skipped = |reason: &str| Looked::Skipped(name.to_string(), Some(reason.to_string()));
        // Not made for an archive, most of a zipped set's entries.
        let rel_path = || join(rel_dir, name);
        if name.starts_with('.') {
            // Hidden files are mostly other programs' (`.DS_Store`, `._x`):
            // say so only of those named like a ROM or patch.
            let (_, ext) = split_name(name.trim_start_matches('.'));
            let rom_like = system::system_for_extension(name).is_some()
                || PatchFormat::from_extension(name).is_some()
                || RAW_ROM_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str());
            return Looked::Skipped(
                name.to_string(),
                rom_like
                    .then(|| "its name starts with a dot (hidden); rename it to show it".into()),
            );
        }
        let file_type = match entry.file_type {
            FileType::Unknown => match dir.entry_type(os_name) {
                Ok(file_type) => file_type,
                Err(error) => return skipped(&format!("cannot be read: {error}")),
            },
            known => known,
        };
        if first_scan && file_type == FileType::RegularFile && archives::is_archive(name) {
            return Looked::NewArchive(owned);
        }
        let linked = file_type == FileType::Symlink;
        let id = match file_type {
            FileType::Directory => return Looked::Dir(owned),
            FileType::RegularFile => dir.stat_entry(os_name),
            FileType::Symlink => match self.backing.stat_with_type(&rel_path()) {
                // Only a folder's own folders are walked, so that a link
                // back up the tree cannot make the walk endless.
                Ok((_, FileType::Directory)) => {
                    return skipped("a link to a folder (links to folders are not followed)");
                }
                Ok((id, FileType::RegularFile)) => Ok(id),
                Ok(_) => return skipped("a link to something that is no regular file"),
                Err(error) => Err(error),
            },
            FileType::Fifo => return skipped("a FIFO, not a regular file"),
            FileType::Socket => return skipped("a socket, not a regular file"),
            FileType::CharacterDevice | FileType::BlockDevice => {
                return skipped("a device, not a regular file");
            }
            FileType::Unknown => return skipped("of a kind that is no file or folder"),
        };
        let id = match id {
            Ok(id) => id,
            Err(error) if backing::leads_outside(&error) => {
                return skipped("a link that leads outside the backing folder (not followed)");
            }
            Err(error) if linked && error.kind() == io::ErrorKind::NotFound => {
                return skipped("a link to nothing (its target does not exist)");
            }
            Err(error) => return skipped(&format!("cannot be read: {error}")),
        };
        if archives::is_archive(name) {
            return Looked::Archive(Found {
                name: owned,
                id,
                linked,
            });
        }
        Looked::Stated(Found {
            name: owned,
            id,
            linked,
        })
    }

    /// Whether this is the first scan of folder `rel_dir`, by this mount or
    /// (with a header cache) any before. Then no archive of it has a known
    /// listing, so each is read without a `stat` first: its read says which
    /// version it is, and a zipped set of ten thousand makes ten thousand
    /// system calls fewer.
    fn first_scan(&self, rel_dir: &str) -> bool {
        let first = lock(&self.scanned_dirs).insert(rel_dir.to_string());
        first
            && !self
                .header_cache
                .get()
                .is_some_and(|cache| cache.knows_dir(rel_dir))
    }

    /// What an earlier scan, or an earlier mount, learned of this file.
    fn known(
        &self,
        rel_dir: &str,
        name: &str,
        rel_path: &str,
        id: FileId,
    ) -> Option<Arc<ClassifiedEntry>> {
        if let Some((known, entry)) = lock(&self.files).get(rel_path)
            && *known == id
        {
            return Some(entry.clone());
        }
        let entry = self.header_cache.get()?.get(rel_dir, name, id)?;
        lock(&self.files).insert(rel_path.to_string(), (id, entry.clone()));
        Some(entry)
    }

    /// Reads the file to classify it (unless a scan running at the same
    /// time just did).
    fn classify(&self, rel_dir: &str, name: &str, id: FileId) -> Arc<ClassifiedEntry> {
        let rel_path = join(rel_dir, name);
        if let Some(entry) = self.known(rel_dir, name, &rel_path, id) {
            return entry;
        }
        let entry = match self.read_classification(&rel_path, name, id) {
            Ok((classified, lasting)) => ClassifiedEntry {
                classified,
                lasting,
                problem: None,
            },
            Err(error) => {
                let previous = lock(&self.files)
                    .get(&rel_path)
                    .map(|(_, known)| known.clone());
                match previous {
                    // A file being rewritten: until it settles it is shown
                    // as the version last read, whose builds then fail
                    // with EIO and this reason, rather than vanish.
                    Some(previous)
                        if matches!(
                            error,
                            ReadError::Changed { .. } | ReadError::Unsettled { .. }
                        ) =>
                    {
                        ClassifiedEntry {
                            classified: previous.classified.clone(),
                            lasting: false,
                            problem: Some(error.to_string()),
                        }
                    }
                    _ => ClassifiedEntry {
                        classified: Classified::Other,
                        lasting: false,
                        problem: Some(error.to_string()),
                    },
                }
            }
        };
        let entry = Arc::new(entry);
        // A read that failed is tried again by the next scan.
        if entry.lasting {
            lock(&self.files).insert(rel_path, (id, entry.clone()));
        }
        entry
    }

    /// What the file is, and whether that is worth keeping for the next
    /// mount.
    fn read_classification(
        &self,
        rel_path: &str,
        name: &str,
        id: FileId,
    ) -> Result<(Classified, bool), ReadError> {
        let found = Found {
            name: name.to_string(),
            id,
            linked: false,
        };
        let folder = rel_path.rsplit_once('/').map_or("", |(dir, _)| dir);
        if PatchFormat::from_extension(name).is_some() {
            self.header_reads.fetch_add(1, Ordering::Relaxed);
            let bytes = self.backing.read_whole(rel_path, &id);
            let lasting = bytes.is_ok();
            let patch = self.patch_from_bytes(rel_path, folder, &found, Source::File, bytes);
            return Ok((Classified::Patch(Arc::new(patch)), lasting));
        }
        if id.size > self.limits.max_image_size {
            return Ok((Classified::Other, true));
        }
        self.header_reads.fetch_add(1, Ordering::Relaxed);
        let head = self
            .backing
            .read_consistent(rel_path, &id, |file, size| detection_head(file, size, name))?;
        Ok((
            self.rom_from_head(rel_path, folder, &found, name, Source::File, &head),
            true,
        ))
    }

    /// What the file `found` (whose name for detection is `name`: a member's
    /// own) is, from its detection regions `head`: a ROM, or nothing.
    pub(crate) fn rom_from_head(
        &self,
        rel_path: &str,
        folder: &str,
        found: &Found,
        name: &str,
        source: Source,
        head: &[u8],
    ) -> Classified {
        match Detected::of(name, head) {
            Some(detected) => Classified::Rom(Arc::new(rom_from_detected(
                rel_path.to_string(),
                folder.to_string(),
                found.name.clone(),
                found.id,
                name,
                source,
                detected,
            ))),
            None => Classified::Other,
        }
    }

    /// The patch `found` (named `found.name`) as far as pairing needs it,
    /// from its bytes, or with the reason they could not be read.
    pub(crate) fn patch_from_bytes(
        &self,
        rel_path: &str,
        folder: &str,
        found: &Found,
        source: Source,
        bytes: Result<Vec<u8>, impl std::fmt::Display>,
    ) -> PatchFile {
        let name = found.name.as_str();
        let (stem, ext) = split_name(name);
        let mut patch = PatchFile {
            rel_path: rel_path.to_string(),
            file_name: name.to_string(),
            folder: folder.to_string(),
            source,
            stem: stem.to_string(),
            ext: ext.to_ascii_lowercase(),
            id: found.id,
            format: PatchFormat::from_extension(name).unwrap_or(PatchFormat::Ips),
            pair_keys: Vec::new(),
            verifies_source: false,
            source_size: None,
            target_size: None,
            error: None,
        };
        match bytes {
            Err(error) => patch.error = Some(error.to_string()),
            Ok(bytes) => match PatchFormat::detect(Some(name), &bytes) {
                None => patch.error = Some("not a patch this tool can read".into()),
                Some(format) => {
                    patch.format = format;
                    match Patch::parse(format, &bytes, &self.limits) {
                        Ok(parsed) => {
                            let summary = parsed.summary();
                            patch.pair_keys = pair_keys(&parsed);
                            patch.verifies_source = parsed.verifies_source();
                            patch.source_size = summary.source_size;
                            patch.target_size = summary.target_size;
                        }
                        Err(error) => patch.error = Some(error.to_string()),
                    }
                }
            },
        }
        patch
    }

    /// Every patch under the root that can pair by checksum, refreshed at
    /// most once a second.
    pub fn checksum_patches(&self) -> PatchIndex {
        if let Some((at, index)) = lock(&self.index).as_ref()
            && at.elapsed() < INDEX_REFRESH
        {
            return index.clone();
        }
        let mut found = Vec::new();
        let mut hinted = Vec::new();
        let mut pending = vec![String::new()];
        while let Some(rel_dir) = pending.pop() {
            let Some(contents) = self.dir(&rel_dir) else {
                continue;
            };
            found.extend(
                contents
                    .patches
                    .iter()
                    .filter(|p| !p.pair_keys.is_empty())
                    .cloned(),
            );
            self.collect_hints(&rel_dir, &contents, &mut hinted);
            pending.extend(contents.subdirs.iter().map(|d| join(&rel_dir, d)));
        }
        let mut by_size: HashMap<u64, Vec<usize>> = HashMap::new();
        for (at, patch) in found.iter().enumerate() {
            for key in &patch.pair_keys {
                let positions = by_size.entry(key.size).or_default();
                if positions.last() != Some(&at) {
                    positions.push(at);
                }
            }
        }
        let index = Arc::new(PatchIndexData {
            generation: SCANS.fetch_add(1, Ordering::Relaxed),
            patches: found,
            by_size,
            hinted,
        });
        *lock(&self.index) = Some((Instant::now(), index.clone()));
        index
    }

    /// The folder's patches without a checksum whose source its file name
    /// or the folder's one readme names (a folder whose readmes name
    /// different ROMs names none).
    fn collect_hints(&self, rel_dir: &str, contents: &DirContents, hinted: &mut Vec<Hinted>) {
        let unchecked: Vec<&Arc<PatchFile>> = contents
            .patches
            .iter()
            .filter(|p| p.pair_keys.is_empty() && p.error.is_none())
            .collect();
        if unchecked.is_empty() {
            return;
        }
        let mut named: Vec<(SourceDigest, &str)> = Vec::new();
        for (name, id) in &contents.notes {
            if let Some(source) = self.note_source(&join(rel_dir, name), id)
                && !named.iter().any(|(seen, _)| *seen == source)
            {
                named.push((source, name));
            }
        }
        let readme = match named.as_slice() {
            [(source, name)] => Some((
                *source,
                format!("the readme {name} beside it names a source with {source}"),
            )),
            _ => None,
        };
        for patch in unchecked {
            if let Some(crc) = hints::crc32_in_name(&patch.file_name) {
                let source = SourceDigest::Crc32(crc);
                hinted.push(Hinted {
                    patch: patch.clone(),
                    source,
                    rule: format!("the {source} in its file name"),
                });
            } else if let Some((source, rule)) =
                lock(&self.archived_hints).get(&patch.rel_path).cloned()
            {
                hinted.push(Hinted {
                    patch: patch.clone(),
                    source,
                    rule,
                });
            } else if let Some((source, rule)) = &readme {
                hinted.push(Hinted {
                    patch: patch.clone(),
                    source: *source,
                    rule: rule.clone(),
                });
            }
        }
    }

    /// The source ROM the text file `rel_path` (the version `id`) names,
    /// read once per version.
    fn note_source(&self, rel_path: &str, id: &FileId) -> Option<SourceDigest> {
        if let Some((known, source)) = lock(&self.notes).get(rel_path)
            && known == id
        {
            return *source;
        }
        let head = |file: &dyn ReadAt, size: u64| {
            let mut text = vec![0u8; size.min(hints::NOTE_BYTES) as usize];
            file.read_exact_at(&mut text, 0)?;
            Ok(text)
        };
        let source = match self.backing.read_consistent(rel_path, id, head) {
            Ok(text) => hints::source_in_note(&text),
            Err(error) => {
                log::debug!("{rel_path}: not read as a readme: {error}");
                return None;
            }
        };
        lock(&self.notes).insert(rel_path.to_string(), (*id, source));
        source
    }

    /// The SHA-1 of a ROM's layouts (read once per file identity).
    fn sha1s(&self, rom: &Rom) -> io::Result<LayoutSha1s> {
        if let Some(sha1s) = rom.sha1s.get() {
            return Ok(sha1s.clone());
        }
        let sha1s = Arc::new(self.layout_digests(rom, |bytes| {
            use sha1::Digest;
            sha1::Sha1::digest(bytes).into()
        })?);
        if rom.sha1s.set(sha1s.clone()).is_ok()
            && let Some(cache) = self.header_cache.get()
        {
            cache.changed_since_save();
        }
        Ok(sha1s)
    }

    /// `digest` of each of the ROM's images (raw, normalized,
    /// deinterleaved), from one read of its file.
    fn layout_digests<T>(
        &self,
        rom: &Rom,
        digest: impl Fn(&[u8]) -> T,
    ) -> io::Result<Vec<(ImageLayout, T)>> {
        let raw = self.read_rom(rom).map_err(io::Error::other)?;
        let normalized = system::normalize(&raw, &rom.layout).map_err(io::Error::other)?;
        let deinterleaved = system::restore(&normalized, &rom.layout).map_err(io::Error::other)?;
        Ok(vec![
            (ImageLayout::Raw, digest(&raw)),
            (ImageLayout::Normalized, digest(&normalized)),
            (ImageLayout::Deinterleaved, digest(&deinterleaved)),
        ])
    }

    /// The layout of `rom` whose image has the digest `source`, if any.
    fn layout_with(&self, rom: &Rom, source: SourceDigest) -> io::Result<Option<ImageLayout>> {
        Ok(match source {
            SourceDigest::Crc32(want) => self
                .hashes(rom)?
                .layouts
                .iter()
                .find(|(_, _, crc, _)| *crc == want)
                .map(|(layout, ..)| *layout),
            SourceDigest::Md5(want) => self
                .hashes(rom)?
                .layouts
                .iter()
                .find(|(.., md5)| *md5 == want)
                .map(|(layout, ..)| *layout),
            SourceDigest::Sha1(want) => self
                .sha1s(rom)?
                .iter()
                .find(|(_, sha1)| *sha1 == want)
                .map(|(layout, _)| *layout),
        })
    }

    /// The digests of a ROM's layouts (read once per file identity).
    pub fn hashes(&self, rom: &Rom) -> io::Result<Arc<RomHashes>> {
        if let Some(hashes) = rom.hashes.get() {
            return Ok(hashes.clone());
        }
        self.roms_hashed.fetch_add(1, Ordering::Relaxed);
        let layouts = self.layout_digests(rom, |bytes| {
            (
                bytes.len() as u64,
                crc32fast::hash(bytes),
                digest::md5(bytes),
            )
        })?;
        let hashes = Arc::new(RomHashes {
            layouts: layouts
                .into_iter()
                .map(|(layout, (size, crc, md5))| (layout, size, crc, md5))
                .collect(),
        });
        if rom.hashes.set(hashes.clone()).is_ok()
            && let Some(cache) = self.header_cache.get()
        {
            cache.changed_since_save();
        }
        Ok(hashes)
    }

    /// The size, CRC32, MD5 and SHA-1 of each of a ROM's images (DAT
    /// verification): from the digests kept when both kinds are known,
    /// else from one read of the file, which then fills both (and the
    /// header cache keeps them).
    pub fn full_digests(&self, rom: &Rom) -> io::Result<Vec<(ImageLayout, u64, digest::Digests)>> {
        if let Some(kept) = Self::kept_digests(rom) {
            return Ok(kept);
        }
        self.roms_hashed.fetch_add(1, Ordering::Relaxed);
        let raw = self.read_rom(rom).map_err(io::Error::other)?;
        self.digests_from_raw(rom, &raw)
    }

    /// What [`Library::full_digests`] gives, when it is kept.
    fn kept_digests(rom: &Rom) -> Option<Vec<(ImageLayout, u64, digest::Digests)>> {
        if let (Some(hashes), Some(sha1s)) = (rom.hashes.get(), rom.sha1s.get()) {
            let joined: Vec<_> = hashes
                .layouts
                .iter()
                .zip(sha1s.iter())
                .filter(|((layout, ..), (sha1_layout, _))| layout == sha1_layout)
                .map(|((layout, size, crc32, md5), (_, sha1))| {
                    let digests = digest::Digests {
                        crc32: *crc32,
                        md5: *md5,
                        sha1: *sha1,
                    };
                    (*layout, *size, digests)
                })
                .collect();
            if joined.len() == hashes.layouts.len() {
                return Some(joined);
            }
        }
        None
    }

    /// [`Library::full_digests`] from the ROM's bytes `raw`, which it keeps.
    fn digests_from_raw(
        &self,
        rom: &Rom,
        raw: &[u8],
    ) -> io::Result<Vec<(ImageLayout, u64, digest::Digests)>> {
        // Most ROMs' three images are the same bytes: each distinct image
        // is hashed once (comparing costs a small part of hashing).
        let normalized = system::normalize(raw, &rom.layout).map_err(io::Error::other)?;
        let deinterleaved = system::restore(&normalized, &rom.layout).map_err(io::Error::other)?;
        let of = |bytes: &[u8]| (bytes.len() as u64, digest::Digests::of(bytes));
        let raw_digests = of(raw);
        let normalized_digests = if normalized[..] == raw[..] {
            raw_digests.clone()
        } else {
            of(&normalized)
        };
        let deinterleaved_digests = if deinterleaved[..] == normalized[..] {
            normalized_digests.clone()
        } else {
            of(&deinterleaved)
        };
        let layouts = [
            (ImageLayout::Raw, raw_digests),
            (ImageLayout::Normalized, normalized_digests),
            (ImageLayout::Deinterleaved, deinterleaved_digests),
        ];
        let hashes = RomHashes {
            layouts: layouts
                .iter()
                .map(|(layout, (size, d))| (*layout, *size, d.crc32, d.md5))
                .collect(),
        };
        let sha1s = layouts.iter().map(|(layout, (_, d))| (*layout, d.sha1));
        let _ = rom.hashes.set(Arc::new(hashes));
        let _ = rom.sha1s.set(Arc::new(sha1s.collect()));
        if let Some(cache) = self.header_cache.get() {
            cache.changed_since_save();
        }
        Ok(layouts
            .into_iter()
            .map(|(layout, (size, d))| (layout, size, d))
            .collect())
    }

    /// The ROM's bytes, checked to be the file that was analyzed.
    pub fn read_rom(&self, rom: &Rom) -> Result<Vec<u8>, ReadError> {
        self.read_source(&rom.rel_path, &rom.source, &rom.id)
    }

    /// The patch's bytes, checked to be the file that was analyzed.
    pub fn read_patch_bytes(&self, patch: &PatchFile) -> Result<Vec<u8>, ReadError> {
        self.read_source(&patch.rel_path, &patch.source, &patch.id)
    }

    fn read_source(
        &self,
        rel_path: &str,
        source: &Source,
        id: &FileId,
    ) -> Result<Vec<u8>, ReadError> {
        match source {
            Source::File => self.backing.read_whole(rel_path, id),
            Source::Member { archive, member } => self.read_member(archive, id, member),
        }
    }

    /// The regions of `rom` that detection reads, in a buffer as long as
    /// its image (see [`detection_regions`]).
    pub fn read_rom_head(&self, rom: &Rom) -> Result<Vec<u8>, ReadError> {
        match &rom.source {
            Source::File => self.read_head(&rom.rel_path, &rom.id),
            // Detection's regions of a member are the whole member.
            Source::Member { archive, member } => self.read_member(archive, &rom.id, member),
        }
    }

    /// Whether the backing file of `rom` is still the version scanned.
    pub fn rom_is_current(&self, rom: &Rom) -> bool {
        self.is_current(rom.file_path(), &rom.id)
    }

    /// Whether the backing file of `patch` is still the version scanned.
    pub fn patch_is_current(&self, patch: &PatchFile) -> bool {
        self.is_current(patch.file_path(), &patch.id)
    }

    /// The regions of file `rel_path` (the version `id`) that detection
    /// reads, in a buffer as long as the file (see [`detection_regions`]).
    pub fn read_head(&self, rel_path: &str, id: &FileId) -> Result<Vec<u8>, ReadError> {
        self.backing
            .read_consistent(rel_path, id, detection_regions)
    }

    /// The patched variants of `rom` (see [`Library::pairings`]).
    pub fn variants(&self, rom: &Rom, rel_dir: &str, dir: &DirContents) -> Vec<Variant> {
        self.pairings(rom, rel_dir, dir).variants
    }

    /// The patches that pair with `rom`, which lives in folder `rel_dir`
    /// (whose contents are `dir`): sidecar patches with the ROM's stem (and
    /// RetroArch's numbered stack), patches in a folder named after the ROM,
    /// and patches anywhere whose checksum matches one of its layouts. A
    /// patch paired by name whose checksum fits none of the ROM's images is
    /// for another version: it is no variant, and `unfit` says why.
    pub fn pairings(&self, rom: &Rom, rel_dir: &str, dir: &DirContents) -> Pairings {
        let mut variants = Vec::new();
        let by_name = |patch: &Arc<PatchFile>, reason: &str| Variant {
            label: patch.stem.clone(),
            patches: vec![patch.clone()],
            layout: None,
            reversed: false,
            reason: reason.to_string(),
        };
        let sidecars: Vec<&Arc<PatchFile>> = dir.patches_named(&rom.stem).collect();
        let mut stacks: HashMap<String, Vec<(u32, Arc<PatchFile>)>> = HashMap::new();
        for patch in &sidecars {
            // `.ips32` is IPS32's own extension, not step 32 of a stack.
            let base = match patch.ext.as_str() {
                "ips32" => "ips32",
                ext => ext.trim_end_matches(|c: char| c.is_ascii_digit()),
            };
            let step: u32 = patch.ext[base.len()..].parse().unwrap_or(0);
            if step == 0 {
                variants.push(by_name(patch, "beside the ROM with its name"));
            }
            stacks
                .entry(base.to_string())
                .or_default()
                .push((step, (*patch).clone()));
        }
        let mut stack_list: Vec<_> = stacks.into_iter().collect();
        stack_list.sort_by(|a, b| a.0.cmp(&b.0));
        for (base, mut steps) in stack_list {
            if steps.len() < 2 && steps.first().is_some_and(|(n, _)| *n == 0) {
                continue;
            }
            steps.sort_by_key(|(n, _)| *n);
            let mut label = rom.stem.clone();
            for (n, _) in steps.iter().filter(|(n, _)| *n > 0) {
                label.push_str(&format!("+{base}{n}"));
            }
            variants.push(Variant {
                label,
                patches: steps.into_iter().map(|(_, p)| p).collect(),
                layout: None,
                reversed: false,
                reason: "RetroArch's numbered stack, in order".into(),
            });
        }
        if dir.subdirs.contains(&rom.stem)
            && let Some(folder) = self.dir(&join(rel_dir, &rom.stem))
        {
            for patch in &folder.patches {
                variants.push(by_name(patch, "in a folder named after the ROM"));
            }
        }
        let unfit = self.check_named_variants(rom, &mut variants);
        self.checksum_variants(rom, &mut variants);
        self.hinted_variants(rom, &mut variants);
        self.mark_reverted_ppf(rom, &mut variants);
        resolve_label_collisions(&mut variants);
        Pairings { variants, unfit }
    }

    /// Checks the variants paired by name whose (first) patch carries a
    /// checksum against the ROM's images: one that fits learns where it
    /// applies (and whether it un-patches); one that fits none is taken out
    /// and returned, with why.
    fn check_named_variants(&self, rom: &Rom, variants: &mut Vec<Variant>) -> Vec<Unfit> {
        let sizes = [rom.id.size, rom.normalized_len(), rom.deinterleaved_len()];
        let checked = |variant: &Variant| {
            variant
                .patches
                .first()
                .filter(|patch| !patch.pair_keys.is_empty())
                .cloned()
        };
        if !variants.iter().any(|v| checked(v).is_some()) {
            return Vec::new();
        }
        // Hashing costs a read of the ROM: only when a size fits at all.
        let sized = variants
            .iter()
            .filter_map(checked)
            .any(|patch| patch.pair_keys.iter().any(|key| sizes.contains(&key.size)));
        let hashes = if sized {
            match self.hashes(rom) {
                Ok(hashes) => Some(hashes),
                Err(error) => {
                    // Unknown: keep them; applying will tell.
                    log::warn!("{}: cannot hash: {error}", rom.rel_path);
                    return Vec::new();
                }
            }
        } else {
            None
        };
        let mut unfit = Vec::new();
        variants.retain_mut(|variant| {
            let Some(patch) = checked(variant) else {
                return true;
            };
            let fit = hashes.as_ref().and_then(|hashes| {
                patch
                    .pair_keys
                    .iter()
                    .find_map(|key| layout_matching(hashes, key).map(|layout| (key, layout)))
            });
            match fit {
                Some((key, layout)) => {
                    variant.layout = Some(layout);
                    if key.reverses && variant.patches.len() == 1 {
                        variant.reversed = true;
                        variant.label.push_str(" reverted");
                    }
                    true
                }
                None => {
                    unfit.push(Unfit {
                        why: unfit_reason(rom, &patch, hashes.as_deref()),
                        patch,
                    });
                    false
                }
            }
        });
        // A patch that is also the first step of a stack is told once.
        let mut told = HashSet::new();
        unfit.retain(|u| told.insert(u.patch.rel_path.clone()));
        unfit
    }

    /// Variants whose one patch is a PPF 3.0 with undo data that this ROM
    /// already holds (the bytes it writes, at every record, in one of its
    /// images) undo it: `[<patch> reverted]`, as a NINJA2 patch whose
    /// target matches does. Plain apply never un-patches a PPF.
    fn mark_reverted_ppf(&self, rom: &Rom, variants: &mut [Variant]) {
        for variant in variants.iter_mut() {
            let [patch] = variant.patches.as_slice() else {
                continue;
            };
            if patch.format == PatchFormat::Ppf
                && patch.error.is_none()
                && !variant.reversed
                && self.ppf_already_applied(rom, patch)
            {
                variant.reversed = true;
                variant.label.push_str(" reverted");
                variant.reason.push_str(
                    "; the ROM holds the bytes it writes at every record, so its undo data un-patches it",
                );
            }
        }
    }

    /// Whether `rom` holds what the PPF `patch` writes and its undo data
    /// can undo; read once per version of the two.
    fn ppf_already_applied(&self, rom: &Rom, patch: &PatchFile) -> bool {
        let key = (
            rom.rel_path.clone(),
            rom.id,
            patch.rel_path.clone(),
            patch.id,
        );
        if let Some(&known) = lock(&self.ppf_applied).get(&key) {
            return known;
        }
        let judged = (|| {
            let bytes = self.read_patch_bytes(patch).ok()?;
            let Ok(Patch::Ppf(ppf)) = Patch::parse(PatchFormat::Ppf, &bytes, &self.limits) else {
                return Some(false);
            };
            if !ppf.has_undo {
                return Some(false);
            }
            let raw = self.read_rom(rom).ok()?;
            let normalized = system::normalize(&raw, &rom.layout).ok()?;
            let deinterleaved = system::restore(&normalized, &rom.layout).ok()?;
            Some(
                [&raw[..], &normalized, &deinterleaved]
                    .into_iter()
                    .any(|image| ppf.holds_patched_bytes(image)),
            )
        })();
        match judged {
            Some(applied) => {
                lock(&self.ppf_applied).insert(key, applied);
                applied
            }
            // Unreadable now: applying will say why.
            None => false,
        }
    }

    /// Patches without a checksum whose source a file name or readme
    /// names, where that is one of this ROM's images. Hints name no size,
    /// so while any exist, every ROM whose patched/ folder is listed is
    /// hashed (once per version; the header cache keeps the digests).
    fn hinted_variants(&self, rom: &Rom, variants: &mut Vec<Variant>) {
        let index = self.checksum_patches();
        for hint in &index.hinted {
            if variants
                .iter()
                .any(|v| v.patches.iter().any(|q| q.rel_path == hint.patch.rel_path))
            {
                continue;
            }
            match self.layout_with(rom, hint.source) {
                Ok(Some(layout)) => variants.push(Variant {
                    label: hint.patch.stem.clone(),
                    patches: vec![hint.patch.clone()],
                    layout: Some(layout),
                    reversed: false,
                    reason: format!("{}, the {layout} image's", hint.rule),
                }),
                Ok(None) => {}
                Err(error) => {
                    log::warn!("{}: cannot hash: {error}", rom.rel_path);
                    return;
                }
            }
        }
    }

    fn checksum_variants(&self, rom: &Rom, variants: &mut Vec<Variant>) {
        let index = self.checksum_patches();
        let sizes = [rom.id.size, rom.normalized_len(), rom.deinterleaved_len()];
        let candidates: Vec<&Arc<PatchFile>> = index
            .for_sizes(&sizes)
            .into_iter()
            .filter(|p| {
                !variants
                    .iter()
                    .any(|v| v.patches.iter().any(|q| q.rel_path == p.rel_path))
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let hashes = match self.hashes(rom) {
            Ok(hashes) => hashes,
            Err(error) => {
                log::warn!("{}: cannot hash: {error}", rom.rel_path);
                return;
            }
        };
        for patch in candidates {
            for key in &patch.pair_keys {
                if let Some(layout) = layout_matching(&hashes, key) {
                    variants.push(Variant {
                        label: if key.reverses {
                            format!("{} reverted", patch.stem)
                        } else {
                            patch.stem.clone()
                        },
                        patches: vec![patch.clone()],
                        layout: Some(layout),
                        reversed: key.reverses,
                        reason: format!(
                            "its {} {} matches the {layout} image",
                            if key.reverses { "target" } else { "source" },
                            key.checksum
                        ),
                    });
                    break;
                }
            }
        }
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        // A save cut short by the process exiting would leave a temporary
        // file behind.
        self.flush_header_cache();
    }
}

/// Sorts `roms` by name, then path. The first of them are named `names`
/// (the ROMs the header cache gave, named as their archives): those names
/// are compared where the listing just made them, rather than in ten
/// thousand ROMs spread over the heap (1-3 ms of cache misses).
fn sort_roms(roms: &mut Vec<Arc<Rom>>, names: &[String]) {
    debug_assert!(
        names
            .iter()
            .zip(roms.iter())
            .all(|(n, r)| *n == r.file_name)
    );
    let mut order: Vec<(&str, u32)> = (0..roms.len())
        .map(|at| {
            let name = names.get(at).unwrap_or(&roms[at].file_name);
            (name.as_str(), at as u32)
        })
        .collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(b.0).then_with(|| {
            roms[a.1 as usize]
                .rel_path
                .cmp(&roms[b.1 as usize].rel_path)
        })
    });
    let order: Vec<u32> = order.into_iter().map(|(_, at)| at).collect();
    let mut unsorted: Vec<Option<Arc<Rom>>> = roms.drain(..).map(Some).collect();
    roms.extend(
        order
            .into_iter()
            .filter_map(|at| unsorted[at as usize].take()),
    );
}

/// `f` over `items` from up to `threads` threads (one for a small folder),
/// each taking a contiguous share; the results in the order of `items`.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = items.len().div_ceil(SCAN_BATCH).clamp(1, threads);
    if workers == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(workers);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    })
}

/// The layout of the ROM whose image `key` describes, if any.
fn layout_matching(hashes: &RomHashes, key: &PairKey) -> Option<ImageLayout> {
    hashes
        .layouts
        .iter()
        .find(|(_, size, crc, md5)| {
            *size == key.size
                && match key.checksum {
                    Checksum::Crc32(want) => *crc == want,
                    // NINJA2 entries normalize as their own type, but other
                    // tools' RUPs hash whatever image their author had: any
                    // layout may match, as `apply` tries them.
                    Checksum::Md5(want) => *md5 == want,
                    Checksum::Other(_) => false,
                }
        })
        .map(|(layout, ..)| *layout)
}

/// Why `patch` fits none of `rom`'s images, in words: what it expects, and
/// what the ROM's images are (their digests when they were hashed).
fn unfit_reason(rom: &Rom, patch: &PatchFile, hashes: Option<&RomHashes>) -> String {
    let expected: Vec<String> = patch
        .pair_keys
        .iter()
        .map(|key| {
            format!(
                "a {} of {} bytes with {}",
                if key.reverses { "target" } else { "source" },
                key.size,
                key.checksum
            )
        })
        .collect();
    let images: Vec<String> = match hashes {
        Some(hashes) => hashes
            .layouts
            .iter()
            .map(
                |(layout, size, crc, md5)| match patch.pair_keys[0].checksum {
                    Checksum::Md5(_) => {
                        format!("MD5 {} ({layout}, {size} bytes)", crate::digest::hex(md5))
                    }
                    _ => format!("CRC32 {crc:08x} ({layout}, {size} bytes)"),
                },
            )
            .collect(),
        None => vec![
            format!("{} bytes raw", rom.id.size),
            format!("{} normalized", rom.normalized_len()),
            format!("{} deinterleaved", rom.deinterleaved_len()),
        ],
    };
    format!(
        "expects {}; this ROM is {}: the patch is for another version",
        expected.join(" or "),
        images.join(", ")
    )
}

/// Variants sharing a label are all told apart by their patch's file name
/// (unique in its folder), then by its whole path.
fn resolve_label_collisions(variants: &mut [Variant]) {
    let relabel = |variants: &mut [Variant], rename: &dyn Fn(&Variant, &PatchFile) -> String| {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for variant in variants.iter() {
            *counts.entry(variant.label.clone()).or_default() += 1;
        }
        for variant in variants.iter_mut() {
            if counts.get(&variant.label).is_some_and(|&n| n > 1)
                && let Some(first) = variant.patches.first().cloned()
            {
                variant.label = rename(variant, &first);
            }
        }
    };
    let suffix = |variant: &Variant| if variant.reversed { " reverted" } else { "" };
    relabel(variants, &|v, p| format!("{}{}", p.file_name, suffix(v)));
    relabel(variants, &|v, p| {
        format!("{}{}", p.rel_path.replace('/', "_"), suffix(v))
    });
}

/// The checksums by which a patch pairs with ROMs anywhere in the tree.
fn pair_keys(patch: &Patch<'_>) -> Vec<PairKey> {
    match patch {
        Patch::Bps(_) | Patch::Ups(_) | Patch::Pmsr(_) => {
            let summary = patch.summary();
            match (summary.source_size, summary.source_checksum) {
                (Some(size), Some(checksum @ Checksum::Crc32(_))) => vec![PairKey {
                    size,
                    checksum,
                    rup_system: None,
                    reverses: false,
                }],
                _ => Vec::new(),
            }
        }
        Patch::Rup(rup) => rup
            .entries
            .iter()
            .filter(|e| e.name.is_none() || rup.entries.len() == 1)
            .flat_map(|e| {
                let system = SystemType::from_code(e.system_type);
                [
                    PairKey {
                        size: e.source_size,
                        checksum: Checksum::Md5(e.source_md5),
                        rup_system: system,
                        reverses: false,
                    },
                    PairKey {
                        size: e.target_size,
                        checksum: Checksum::Md5(e.target_md5),
                        rup_system: system,
                        reverses: true,
                    },
                ]
            })
            .filter(|k| k.rup_system.is_some())
            .collect(),
        _ => Vec::new(),
    }
}

/// All a [`Rom`] takes from its bytes: what detection made of them, so the
/// bytes need not outlive detection.
#[derive(Debug, PartialEq)]
pub(crate) struct Detected {
    layout: Layout,
    normalized_ext: Cow<'static, str>,
    deinterleaved_ext: Cow<'static, str>,
}

impl Detected {
    /// The ROM that `head` (detection regions in a buffer as long as the
    /// file) of the file `name` is; `None` when neither its name nor its
    /// content says ROM.
    pub(crate) fn of(name: &str, head: &[u8]) -> Option<Detected> {
        if !named_like_rom(name) && system::sniff(head) == SystemType::Raw {
            return None;
        }
        let layout = system::detect(Some(name), head);
        let (normalized_ext, deinterleaved_ext) =
            view_extensions(split_name(name).1, &layout, head);
        Some(Detected {
            layout,
            normalized_ext,
            deinterleaved_ext,
        })
    }
}

/// The ROM at `rel_path`, shown as `file_name` in the views' `folder`,
/// the version `id` of what holds it, named `name` for detection (a
/// member's own name), as detection saw it.
pub(crate) fn rom_from_detected(
    rel_path: String,
    folder: String,
    file_name: String,
    id: FileId,
    name: &str,
    source: Source,
    detected: Detected,
) -> Rom {
    Rom {
        rel_path,
        file_name,
        folder,
        source,
        stem: split_name(name).0.to_string(),
        id,
        layout: detected.layout,
        normalized_ext: detected.normalized_ext.into_owned(),
        deinterleaved_ext: detected.deinterleaved_ext.into_owned(),
        report_len: OnceLock::new(),
        hashes: OnceLock::new(),
        sha1s: OnceLock::new(),
        fds_disk: OnceLock::new(),
    }
}

/// A buffer as long as the file with only the detection regions read in:
/// the rest stays zero pages the allocator never touches, so detection
/// costs a few kilobytes of I/O whatever the file's size. UNIF files, whose
/// chunk headers are spread through the file, are read whole.
fn detection_regions(file: &dyn ReadAt, size: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(size).map_err(io::Error::other)?;
    let mut buffer = vec![0u8; len];
    // The regions in the file, in order, each cut to the file's end.
    let mut regions: Vec<(u64, &mut [u8])> = Vec::new();
    let mut rest: &mut [u8] = &mut buffer;
    let mut at = 0u64;
    for (start, end) in DETECTION_REGIONS {
        let end = end.min(size);
        if start >= end {
            continue;
        }
        let (_, from_start) = rest.split_at_mut((start - at) as usize);
        let (region, after) = from_start.split_at_mut((end - start) as usize);
        regions.push((start, region));
        rest = after;
        at = end;
    }
    file.read_regions(&mut regions)?;
    if buffer.starts_with(b"UNIF") {
        file.read_exact_at(&mut buffer, 0)?;
    }
    Ok(buffer)
}

/// What detection of the file `name` needs to have read: its first
/// [`system::START_DETECTION_LEN`] bytes where those settle it (see
/// [`system::detect_from_start`]), else its [`detection_regions`]; in a
/// buffer as long as the file.
fn detection_head(file: &dyn ReadAt, size: u64, name: &str) -> io::Result<Vec<u8>> {
    let len = usize::try_from(size).map_err(io::Error::other)?;
    if system::may_detect_from_start(name) {
        let mut buffer = vec![0u8; len];
        let start = len.min(system::START_DETECTION_LEN);
        file.read_exact_at(&mut buffer[..start], 0)?;
        if system::detect_from_start(name, &buffer).is_some() {
            return Ok(buffer);
        }
    }
    detection_regions(file, size)
}

/// The extensions of a ROM's normalized and deinterleaved images: fixed
/// ones for the systems this tool knows, borrowed, so that detection in a
/// scan's reader threads allocates nothing that outlives them.
fn view_extensions(
    raw_ext: &str,
    layout: &Layout,
    head: &[u8],
) -> (Cow<'static, str>, Cow<'static, str>) {
    let same = |ext: &'static str| (Cow::Borrowed(ext), Cow::Borrowed(ext));
    match layout.system {
        SystemType::Raw => {
            let raw_ext = raw_ext.to_ascii_lowercase();
            (Cow::Owned(raw_ext.clone()), Cow::Owned(raw_ext))
        }
        SystemType::Fds => same("fds"),
        SystemType::Nes => (
            Cow::Borrowed("nes"),
            Cow::Borrowed(match layout.header {
                Some(HeaderKind::Unif) => "unf",
                _ => "nes",
            }),
        ),
        SystemType::Snes => same("sfc"),
        SystemType::N64 => same("z64"),
        SystemType::Gb => {
            let cgb = head
                .get(layout.data_offset + 0x143)
                .is_some_and(|flag| flag & 0x80 != 0);
            same(if raw_ext.eq_ignore_ascii_case("gbc") || cgb {
                "gbc"
            } else {
                "gb"
            })
        }
        SystemType::Sms => same(if raw_ext.eq_ignore_ascii_case("gg") {
            "gg"
        } else {
            "sms"
        }),
        SystemType::Mega => same("md"),
        SystemType::Pce => same("pce"),
        SystemType::Lynx => (
            Cow::Borrowed("lyx"),
            Cow::Borrowed(if layout.header == Some(HeaderKind::Lnx) {
                "lnx"
            } else {
                "lyx"
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rom(file_name: &str, rel_path: &str) -> Arc<Rom> {
        let detected = Detected::of("x.bin", &[0; 64]).expect("a .bin file is a ROM");
        let id = FileId {
            dev: 0,
            ino: 0,
            size: 64,
            mtime_ns: 0,
            ctime_ns: 0,
            access: crate::backing::Access::default(),
            tag: 0,
        };
        Arc::new(rom_from_detected(
            rel_path.into(),
            String::new(),
            file_name.into(),
            id,
            file_name,
            Source::File,
            detected,
        ))
    }

    #[test]
    fn detection_reads_up_to_the_last_region_inside_the_file() {
        for (size, len) in [
            (0, 0),
            (0x100, 0x100),
            (0x9000, 0x8400),
            (0xFD00, 0xFD00),
            (0x40_0000, 0x1_0200),
            (0x40_FD00, 0x40_FD00),
            (0x80_0000, 0x41_0200),
        ] {
            assert_eq!(detection_len(size), len, "{size:#x}");
        }
    }

    proptest! {
        /// A prefix of `detection_len` bytes holds every byte of every
        /// region that lies in the file, and nothing past its end.
        #[test]
        fn detection_len_covers_each_region(size in 0u64..0x50_0000) {
            let len = detection_len(size);
            prop_assert!(len <= size);
            for (start, end) in DETECTION_REGIONS {
                if start < size {
                    prop_assert!(end.min(size) <= len);
                }
            }
        }
    }

    proptest! {
        /// The keyed sort gives what sorting the ROMs themselves by name,
        /// then path, gives, whatever share of them leads named.
        #[test]
        fn roms_sort_by_name_then_path(
            entries in proptest::collection::vec(("[ab]{0,3}", "[xy]{0,3}"), 0..40),
            named in any::<prop::sample::Index>(),
        ) {
            let mut roms: Vec<Arc<Rom>> = entries
                .iter()
                .enumerate()
                .map(|(at, (name, path))| rom(name, &format!("{path}/{at}")))
                .collect();
            let names: Vec<String> = roms
                .iter()
                .take(named.index(roms.len() + 1))
                .map(|rom| rom.file_name.clone())
                .collect();
            let mut expected = roms.clone();
            expected.sort_by(|a, b| (&a.file_name, &a.rel_path).cmp(&(&b.file_name, &b.rel_path)));
            sort_roms(&mut roms, &names);
            let paths = |roms: &[Arc<Rom>]| roms.iter().map(|r| r.rel_path.clone()).collect::<Vec<_>>();
            prop_assert_eq!(paths(&roms), paths(&expected));
        }
    }

    #[test]
    fn a_name_in_a_folder_is_only_a_direct_entry() {
        assert_eq!(name_in("", "Game.zip"), Some("Game.zip"));
        assert_eq!(name_in("", "snes/Game.zip"), None);
        assert_eq!(name_in("snes", "snes/Game.zip"), Some("Game.zip"));
        assert_eq!(name_in("snes", "snes/x/Game.zip"), None);
        assert_eq!(name_in("snes", "snesx/Game.zip"), None);
        assert_eq!(name_in("snes", "snes/"), None);
        assert_eq!(name_in("sn", "snes/Game.zip"), None);
    }
}
