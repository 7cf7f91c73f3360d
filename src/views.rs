//! The virtual tree: four views of the backing folder (`normalized/`,
//! `deinterleaved/`, `patched/`, `info/`), their names and exact sizes, and
//! the images behind them, built on first read through the cache.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustc_hash::FxHashMap;

use crate::apply::{self, ImageLayout};
use crate::backing::{Access, Backing};
use crate::cache::{FILE_THRESHOLD, HugePageFiles, Image, ImageCache, lock};
use crate::digest::Digests;
use crate::library::{
    ArchiveNote, DirContents, FileId, Library, PatchFile, Rom, Variant, join, join_into,
};
use crate::patch::any::Patch;
use crate::patch::{ApplyOptions, Limits};
use crate::report::RomReport;
use crate::system::{self, HeaderKind};
use crate::vfs::{
    Attributes, DirEntries, DirEntry, FsError, FsStats, NodeKind, Opened, ROOT_INO, VirtualFs,
};

mod verified;

/// The four views at the mount's root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum View {
    Normalized,
    Deinterleaved,
    Patched,
    Info,
    /// The backing file byte for byte: only under `verified/`, for a ROM
    /// whose raw image is the one a DAT describes.
    Raw,
    /// An FDS ROM's disk image without its 16-byte fwNES header: only under
    /// `verified/`, for a DAT naming the `fds.xml` header skipper.
    FdsDisk,
}

impl View {
    pub const ALL: [View; 4] = [
        View::Normalized,
        View::Deinterleaved,
        View::Patched,
        View::Info,
    ];

    pub fn dir_name(self) -> &'static str {
        match self {
            View::Normalized => "normalized",
            View::Deinterleaved => "deinterleaved",
            View::Patched => "patched",
            View::Info => "info",
            View::Raw => "raw",
            View::FdsDisk => "fds-disk",
        }
    }
}

/// What a virtual file is made from.
#[derive(Debug, Clone)]
pub struct Target {
    pub view: View,
    pub rom: Arc<Rom>,
    pub variant: Option<Variant>,
}

impl Target {
    /// The cache key: everything the image's bytes depend on.
    fn key(&self, failures: u64) -> ImageKey {
        ImageKey {
            failures,
            view: self.view,
            rom_path: self.rom.rel_path.clone(),
            rom: self.rom.id,
            patches: self
                .variant
                .iter()
                .flat_map(|v| v.patches.iter().map(|p| (p.rel_path.clone(), p.id)))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageKey {
    view: View,
    rom_path: String,
    rom: FileId,
    patches: Vec<(String, FileId)>,
    /// `info/` only: a digest of the failures its report lists.
    failures: u64,
}

enum Node {
    Root,
    Dir {
        view: View,
        rel_dir: String,
    },
    File(Target),
    /// The `info/` report of an archive that shows no ROM of its own.
    Note(Arc<ArchiveNote>),
}

type Names = Arc<NameTable>;

/// A folder's virtual names in listing order, each with what it shows,
/// and an index by name: a lookup in a folder of thousands of files is a
/// bisection, not a walk through every name.
#[derive(Default)]
pub struct NameTable {
    entries: Vec<(String, Target)>,
    /// Positions in `entries`, in the order of their names.
    by_name: Vec<u32>,
}

impl NameTable {
    fn new(entries: Vec<(String, Target)>) -> NameTable {
        let mut by_name: Vec<u32> = (0..entries.len() as u32).collect();
        by_name.sort_unstable_by(|&a, &b| entries[a as usize].0.cmp(&entries[b as usize].0));
        NameTable { entries, by_name }
    }

    /// What the file `name` shows, if the folder has one so named.
    fn get(&self, name: &str) -> Option<&Target> {
        let at = self
            .by_name
            .binary_search_by(|&i| self.entries[i as usize].0.as_str().cmp(name))
            .ok()?;
        Some(&self.entries[self.by_name[at] as usize].1)
    }

    fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether no two entries have one name.
    fn all_distinct(&self) -> bool {
        self.by_name
            .windows(2)
            .all(|pair| self.entries[pair[0] as usize].0 != self.entries[pair[1] as usize].0)
    }
}

impl std::ops::Deref for NameTable {
    type Target = [(String, Target)];

    fn deref(&self) -> &Self::Target {
        &self.entries
    }
}

struct Listing {
    names: Names,
    generation: u64,
    files: Arc<Vec<DirEntry>>,
}

/// What an open handle reads from.
#[derive(Clone)]
enum OpenImage {
    Built(Arc<Image>),
    /// A view that is the backing file itself, built only if read here.
    Deferred(Target),
}

/// Names of a folder, with the identities of the folder scan and patch
/// index they were computed from.
type NamesMemo = (u64, u64, Names);

#[derive(Default)]
struct Inodes {
    /// Each path is held once, shared by both tables.
    by_path: FxHashMap<Arc<str>, u64>,
    paths: Vec<Arc<str>>,
}

impl Inodes {
    /// The inode number of `path`, given one now if it has none yet.
    fn ino_of(&mut self, path: &str) -> u64 {
        self.ino_of_one_of(path, 1)
    }

    /// [`ino_of`](Self::ino_of) for the first of `left` paths that may
    /// be new: the tables make room for all of them at the first that is
    /// (a listing of thousands grew them a dozen times over).
    fn ino_of_one_of(&mut self, path: &str, left: usize) -> u64 {
        if let Some(&ino) = self.by_path.get(path) {
            return ino;
        }
        self.by_path.reserve(left);
        self.paths.reserve(left);
        let ino = self.paths.len() as u64;
        let path: Arc<str> = Arc::from(path);
        self.paths.push(path.clone());
        self.by_path.insert(path, ino);
        ino
    }
}

/// The filesystem's core: plain Rust over the backing folder, driven by the
/// FUSE adapter through [`VirtualFs`].
pub struct NinjaFs {
    library: Library,
    cache: ImageCache<ImageKey>,
    inodes: Mutex<Inodes>,
    names: Mutex<HashMap<(View, String), NamesMemo>>,
    sizes: Mutex<FxHashMap<ImageKey, u64>>,
    /// The file entries of each folder listing, with the names they were
    /// made from and the attribute generation they saw.
    listings: Mutex<HashMap<(View, String), Listing>>,
    /// Bumped whenever a file's size or inode number changes after it was
    /// first given, so listings made before are made again.
    attributes_generation: AtomicU64,
    handles: Mutex<HashMap<u64, OpenImage>>,
    next_handle: AtomicU64,
    last_opened: Mutex<HashMap<u64, ImageKey>>,
    /// Why the last build of a file failed, by ROM, view and variant label
    /// (empty but in `patched/`); cleared when a build succeeds.
    failures: Mutex<HashMap<FailureKey, String>>,
    mounted_at: SystemTime,
    /// Whether `patched/` files carry recomputed internal checksums.
    fix_checksums: AtomicBool,
    /// Whether each patched image's internal checksum held as its patches
    /// left it (`None`: no header holds one), for `info/`.
    checksums: Mutex<FxHashMap<ImageKey, Option<bool>>>,
    /// The DATs ROMs are checked against, if any (see [`verified`]).
    verified: std::sync::OnceLock<verified::Verified>,
    /// Where built images of [`FILE_THRESHOLD`] bytes or more are kept,
    /// once [`NinjaFs::keep_images_in_huge_pages`] made it.
    huge_page_files: std::sync::OnceLock<HugePageFiles>,
}

impl NinjaFs {
    /// A filesystem over `backing` with an image cache of `cache_bytes`.
    pub fn new(backing: &Path, cache_bytes: u64, limits: Limits) -> Result<NinjaFs, String> {
        let meta = std::fs::metadata(backing)
            .map_err(|e| format!("backing folder {}: {e}", backing.display()))?;
        if !meta.is_dir() {
            return Err(format!(
                "backing folder {}: is not a folder",
                backing.display()
            ));
        }
        let library = Library::new(backing, limits)
            .map_err(|e| format!("backing folder {}: {e}", backing.display()))?;
        Ok(NinjaFs::with_library(library, cache_bytes))
    }

    /// A filesystem over any backing (see [`crate::backing::Backing`]).
    pub fn with_backing(backing: Box<dyn Backing>, cache_bytes: u64, limits: Limits) -> NinjaFs {
        NinjaFs::with_library(Library::with_backing(backing, limits), cache_bytes)
    }

    fn with_library(library: Library, cache_bytes: u64) -> NinjaFs {
        // Inode 1 is the root; index 0 is unused.
        let inodes = Inodes {
            paths: vec![Arc::from(""), Arc::from("")],
            by_path: FxHashMap::from_iter([(Arc::from(""), ROOT_INO)]),
        };
        NinjaFs {
            library,
            cache: ImageCache::new(usize::try_from(cache_bytes).unwrap_or(usize::MAX)),
            inodes: Mutex::new(inodes),
            names: Mutex::new(HashMap::new()),
            sizes: Mutex::new(FxHashMap::default()),
            listings: Mutex::new(HashMap::new()),
            attributes_generation: AtomicU64::new(0),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            last_opened: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            mounted_at: SystemTime::now(),
            fix_checksums: AtomicBool::new(false),
            checksums: Mutex::new(FxHashMap::default()),
            verified: std::sync::OnceLock::new(),
            huge_page_files: std::sync::OnceLock::new(),
        }
    }

    /// Keeps large built images in files of a private tmpfs with huge
    /// pages, which open hands to the adapter: the kernel can then read
    /// them itself (FUSE passthrough) as fast as a backing file, where its
    /// FUSE page cache copies 4 KiB pages. Fails where that tmpfs cannot
    /// be had (no CAP_SYS_ADMIN, which passthrough needs too); images then
    /// stay on the heap.
    pub fn keep_images_in_huge_pages(&self) -> Result<(), String> {
        let files =
            HugePageFiles::new().map_err(|e| format!("no private tmpfs with huge pages: {e}"))?;
        let _ = self.huge_page_files.set(files);
        Ok(())
    }

    /// A built image, moved into a huge-page file where that is on and
    /// the image is large.
    fn keep(&self, bytes: Vec<u8>) -> Image {
        match self.huge_page_files.get() {
            Some(files) if bytes.len() >= FILE_THRESHOLD => match files.keep(&bytes) {
                Ok(image) => image,
                Err(error) => {
                    log::debug!("image kept on the heap: {error}");
                    Image::from(bytes)
                }
            },
            _ => Image::from(bytes),
        }
    }

    pub fn library(&self) -> &Library {
        &self.library
    }

    /// Makes `patched/` files carry recomputed internal checksums (off
    /// by default: a fixed file no longer matches a patch's target
    /// checksum). Set before the first file is read.
    pub fn set_fix_checksums(&self, on: bool) {
        self.fix_checksums.store(on, Ordering::Relaxed);
    }

    pub fn cache(&self) -> &ImageCache<ImageKey> {
        &self.cache
    }

    fn ino_of(&self, path: &str) -> u64 {
        lock(&self.inodes).ino_of(path)
    }

    fn path_of(&self, ino: u64) -> Result<String, FsError> {
        let inodes = lock(&self.inodes);
        match usize::try_from(ino).ok().and_then(|i| inodes.paths.get(i)) {
            Some(path) if ino >= ROOT_INO => Ok(path.to_string()),
            _ => Err(FsError::NotFound),
        }
    }

    /// The file entries of virtual folder `path` (`rel_dir` in `view`),
    /// made again only when its names or any file's attributes changed.
    fn file_entries(
        &self,
        view: View,
        rel_dir: &str,
        path: &str,
        names: Names,
    ) -> Result<Arc<Vec<DirEntry>>, FsError> {
        let memo_key = (view, rel_dir.to_string());
        let generation = self.attributes_generation.load(Ordering::Acquire);
        if let Some(listing) = lock(&self.listings).get(&memo_key)
            && Arc::ptr_eq(&listing.names, &names)
            && listing.generation == generation
        {
            return Ok(listing.files.clone());
        }
        if view == View::Info {
            // Each report length not known yet needs its ROM's header
            // regions read again and described: spread that over threads
            // first (the lengths are kept), then list as for any view.
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            crate::library::parallel_map(&names, threads, |(_, target)| {
                self.header_report_len(&target.rom)
            });
        }
        // Every file's inode under one lock, each path made in one buffer.
        let inos: Vec<u64> = {
            let mut inodes = lock(&self.inodes);
            let mut file_path = String::new();
            names
                .iter()
                .enumerate()
                .map(|(at, (name, _))| {
                    join_into(&mut file_path, path, name);
                    inodes.ino_of_one_of(&file_path, names.len() - at)
                })
                .collect()
        };
        let mut files = Vec::with_capacity(names.len());
        for ((name, target), ino) in names.iter().zip(inos) {
            files.push(DirEntry {
                name: name.into(),
                attributes: self.file_attributes(ino, target)?,
            });
        }
        let files = Arc::new(files);
        lock(&self.listings).insert(
            memo_key,
            Listing {
                names,
                generation,
                files: files.clone(),
            },
        );
        Ok(files)
    }

    /// The virtual names of folder `rel_dir` in `view`, each with what it is
    /// made from. Two ROMs that would get one name both stay visible: the
    /// later (by backing file name) gets a stable tag from its own path.
    pub fn names(&self, view: View, rel_dir: &str) -> Option<Names> {
        let dir = self.library.dir(rel_dir)?;
        let index_id = if view == View::Patched {
            self.library.checksum_patches().generation
        } else {
            0
        };
        let dir_id = dir.generation;
        if let Some((d, i, names)) = lock(&self.names).get(&(view, rel_dir.to_string()))
            && *d == dir_id
            && *i == index_id
        {
            return Some(names.clone());
        }
        let names = Arc::new(self.compute_names(view, rel_dir, &dir));
        lock(&self.names).insert(
            (view, rel_dir.to_string()),
            (dir_id, index_id, names.clone()),
        );
        Some(names)
    }

    fn compute_names(&self, view: View, rel_dir: &str, dir: &DirContents) -> NameTable {
        let target = |rom: &Arc<Rom>, variant| Target {
            view,
            rom: rom.clone(),
            variant,
        };
        let mut taken: HashSet<String> = dir.subdirs.iter().cloned().collect();
        let wanted: Vec<(String, Target)> = match view {
            View::Normalized | View::Deinterleaved => {
                let ext_of: fn(&Rom) -> &str = match view {
                    View::Normalized => |rom| rom.normalized_ext.as_str(),
                    _ => |rom| rom.deinterleaved_ext.as_str(),
                };
                // Usually each ROM keeps its plain name and no two names
                // meet: the sort the index by name makes anyway tells so,
                // with no set of ten thousand names hashed twice. Plain
                // names that are all distinct and free are exactly what
                // the tagging below would give.
                let plain = dir
                    .roms
                    .iter()
                    .map(|rom| {
                        let (stem, ext) = (rom.stem.as_str(), ext_of(rom));
                        let mut name = String::with_capacity(stem.len() + 1 + ext.len());
                        file_name_into(&mut name, stem, ext);
                        (name, target(rom, None))
                    })
                    .collect();
                let plain = NameTable::new(plain);
                if plain.all_distinct() && !dir.subdirs.iter().any(|sub| plain.contains(sub)) {
                    return plain;
                }
                let stems = shown_stems(&dir.roms, ext_of, &taken);
                dir.roms
                    .iter()
                    .zip(stems)
                    .map(|(rom, stem)| {
                        let ext = ext_of(rom);
                        let mut name = String::with_capacity(stem.len() + 1 + ext.len());
                        file_name_into(&mut name, &stem, ext);
                        (name, target(rom, None))
                    })
                    .collect()
            }
            View::Info => dir
                .roms
                .iter()
                .map(|rom| (format!("{}.txt", rom.file_name), target(rom, None)))
                .collect(),
            // Not a folder at the root: verified/ alone shows raw files.
            View::Raw | View::FdsDisk => Vec::new(),
            // A patched file is named after its ROM as deinterleaved/ shows
            // it, so the two stay told apart the same way.
            View::Patched => {
                let stems = shown_stems(&dir.roms, |rom| rom.deinterleaved_ext.as_str(), &taken);
                let mut named = Vec::new();
                for (rom, stem) in dir.roms.iter().zip(stems) {
                    for variant in self.library.variants(rom, rel_dir, dir) {
                        let name = format!("{stem} [{}].{}", variant.label, rom.deinterleaved_ext);
                        named.push((name, target(rom, Some(variant))));
                    }
                }
                named
            }
        };
        // Whatever still collides (a backing file literally named like a
        // tagged name) is numbered, in backing file order. Usually nothing
        // does, which one pass of borrowed names tells.
        let mut seen: HashSet<&str> = HashSet::with_capacity(taken.len() + wanted.len());
        seen.extend(taken.iter().map(String::as_str));
        if wanted.iter().all(|(name, _)| seen.insert(name.as_str())) {
            return NameTable::new(wanted);
        }
        drop(seen);
        NameTable::new(
            wanted
                .into_iter()
                .map(|(name, target)| (numbered_if_taken(name, &mut taken), target))
                .collect(),
        )
    }

    /// Whether folder `rel_dir` has anything to show in `view`, in it or
    /// below it: a view shows only folders that hold something there.
    fn shows_folder(&self, view: View, rel_dir: &str) -> bool {
        let Some(dir) = self.library.dir(rel_dir) else {
            return false;
        };
        self.names(view, rel_dir)
            .is_some_and(|names| !names.is_empty())
            || (view == View::Info && !dir.archive_notes.is_empty())
            || dir
                .subdirs
                .iter()
                .any(|sub| self.shows_folder(view, &join(rel_dir, sub)))
    }

    fn resolve(&self, path: &str) -> Result<Node, FsError> {
        if path.is_empty() {
            return Ok(Node::Root);
        }
        let (view_name, rest) = path.split_once('/').unwrap_or((path, ""));
        let view = View::ALL
            .into_iter()
            .find(|v| v.dir_name() == view_name)
            .ok_or(FsError::NotFound)?;
        if rest.is_empty() {
            return Ok(Node::Dir {
                view,
                rel_dir: String::new(),
            });
        }
        let (parent, name) = rest.rsplit_once('/').unwrap_or(("", rest));
        let dir = self.library.dir(parent).ok_or(FsError::NotFound)?;
        if dir.subdirs.iter().any(|d| d == name) && self.shows_folder(view, rest) {
            return Ok(Node::Dir {
                view,
                rel_dir: rest.to_string(),
            });
        }
        let names = self.names(view, parent).ok_or(FsError::NotFound)?;
        if let Some(target) = names.get(name) {
            return Ok(Node::File(target.clone()));
        }
        if view == View::Info {
            return self
                .notes(&dir, &names)
                .find(|(n, _)| n == name)
                .map(|(_, note)| Node::Note(note.clone()))
                .ok_or(FsError::NotFound);
        }
        Err(FsError::NotFound)
    }

    /// The archive reports of folder `dir` of `info/` whose names no
    /// ROM's report (`names`) or folder has taken.
    fn notes<'a>(
        &self,
        dir: &'a DirContents,
        names: &'a Names,
    ) -> impl Iterator<Item = (String, &'a Arc<ArchiveNote>)> {
        dir.archive_notes
            .iter()
            .map(|note| (format!("{}.txt", note.name), note))
            .filter(move |(name, _)| !names.contains(name) && !dir.subdirs.contains(name))
    }

    fn note_attributes(&self, ino: u64, note: &ArchiveNote) -> Attributes {
        let access = note.id.access.as_file();
        Attributes {
            ino,
            kind: NodeKind::File,
            size: note.text.len() as u64,
            mtime: note.id.mtime(),
            uid: access.uid,
            gid: access.gid,
            perm: access.mode as u16,
        }
    }

    /// Resolves `path`; if the backing files behind it changed since they
    /// were read, the folder is read again so the new files are served.
    fn resolve_fresh(&self, path: &str) -> Result<Node, FsError> {
        let node = self.resolve(path)?;
        if let Node::Note(note) = &node {
            if self.library.is_current(&note.rel_path, &note.id) {
                return Ok(node);
            }
            self.library.forget_dir_of(&note.rel_path);
            return self.resolve(path);
        }
        let Node::File(target) = &node else {
            return Ok(node);
        };
        if self.sources_unchanged(target) {
            return Ok(node);
        }
        self.drop_images_of_changed_sources(target);
        self.library.forget_dir_of(target.rom.file_path());
        for patch in target.variant.iter().flat_map(|v| &v.patches) {
            self.library.forget_dir_of(patch.file_path());
        }
        self.resolve(path)
    }

    /// Frees the cached images built from a version of `target`'s files
    /// that is gone: nothing serves them again, and their memory is best
    /// reused for the new version's image at once.
    fn drop_images_of_changed_sources(&self, target: &Target) {
        let rom = &target.rom;
        let rom_changed = !self.library.rom_is_current(rom);
        let changed_patches: Vec<(&str, FileId)> = target
            .variant
            .iter()
            .flat_map(|v| &v.patches)
            .filter(|p| !self.library.patch_is_current(p))
            .map(|p| (p.rel_path.as_str(), p.id))
            .collect();
        self.cache.retain(|key| {
            let old_rom = rom_changed && key.rom_path == rom.rel_path && key.rom == rom.id;
            let old_patch = key
                .patches
                .iter()
                .any(|(path, id)| changed_patches.contains(&(path.as_str(), *id)));
            !old_rom && !old_patch
        });
    }

    fn sources_unchanged(&self, target: &Target) -> bool {
        self.library.rom_is_current(&target.rom)
            && target
                .variant
                .iter()
                .flat_map(|v| &v.patches)
                .all(|p| self.library.patch_is_current(p))
    }

    fn attributes(&self, ino: u64, node: &Node) -> Result<Attributes, FsError> {
        // A folder the backing no longer has is shown as root's alone
        // until the kernel forgets it.
        let dir_attributes = |rel: &str| {
            let (mtime, access) = match self.library.folder_id(rel) {
                Ok(id) => (id.mtime(), id.access.as_folder()),
                Err(_) => (self.mounted_at, Access::default()),
            };
            Attributes {
                ino,
                kind: NodeKind::Directory,
                size: 0,
                mtime,
                uid: access.uid,
                gid: access.gid,
                perm: access.mode as u16,
            }
        };
        match node {
            Node::Root => Ok(dir_attributes("")),
            Node::Dir { rel_dir, .. } => Ok(dir_attributes(rel_dir)),
            Node::File(target) => self.file_attributes(ino, target),
            Node::Note(note) => Ok(self.note_attributes(ino, note)),
        }
    }

    fn file_attributes(&self, ino: u64, target: &Target) -> Result<Attributes, FsError> {
        let access = self.access_of(target);
        Ok(Attributes {
            ino,
            kind: NodeKind::File,
            size: self.size_of(target)?,
            mtime: target
                .variant
                .iter()
                .flat_map(|v| &v.patches)
                .map(|p| p.id.mtime())
                .fold(target.rom.id.mtime(), SystemTime::max),
            uid: access.uid,
            gid: access.gid,
            perm: access.mode as u16,
        })
    }

    /// Who may read the file made from `target`: the ROM's owner, group and
    /// read bits, narrowed so that only readers of every patch in its stack
    /// remain, counting the folders that lead to each patch from the ROM's
    /// own (the mount mirrors the ROM's folders, which guard it already).
    fn access_of(&self, target: &Target) -> Access {
        let mut access = target.rom.id.access.as_file();
        let rom_dir = target.rom.folder.as_str();
        for patch in target.variant.iter().flat_map(|v| &v.patches) {
            access = access.narrowed_by(patch.id.access, false);
            for folder in folders_from(rom_dir, &patch.folder) {
                access = match self.library.folder_id(&folder) {
                    Ok(id) => access.narrowed_by(id.access, true),
                    Err(_) => Access { mode: 0, ..access },
                };
            }
        }
        access
    }

    /// Remembers the size of the image `key`; a size that differs from one
    /// given before makes listings be made again.
    fn record_size(&self, key: ImageKey, size: u64) {
        let previous = lock(&self.sizes).insert(key, size);
        if previous.is_some_and(|old| old != size) {
            self.attributes_changed();
        }
    }

    fn attributes_changed(&self) {
        self.attributes_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The exact size of a virtual file: from headers and patch metadata
    /// where they tell it, else by building the image (once; it is cached).
    fn size_of(&self, target: &Target) -> Result<u64, FsError> {
        let rom = &target.rom;
        // The layout gives these exactly: nothing to remember (a listing
        // of thousands of ROMs would take a lock and a key for each).
        match target.view {
            View::Normalized => return Ok(rom.normalized_len()),
            View::Deinterleaved => return Ok(rom.deinterleaved_len()),
            View::Raw => return Ok(rom.layout.raw_len as u64),
            View::FdsDisk => {
                return Ok((rom.layout.raw_len as u64)
                    .saturating_sub(system::fds::FWNES_HEADER_LEN as u64));
            }
            View::Patched | View::Info => {}
        }
        let key = self.key_of(target);
        if let Some(&size) = lock(&self.sizes).get(&key) {
            return Ok(size);
        }
        let predicted = match (&target.view, &target.variant) {
            (View::Patched, Some(variant)) => self.predict_patched_size(rom, variant),
            (View::Info, _) => self.predict_info_size(rom),
            _ => None,
        };
        if let Some(size) = predicted {
            self.record_size(key, size);
            return Ok(size);
        }
        // A patch that fails is still listed; its size is 0 until it works.
        let size = match self.build(target) {
            Ok(image) => image.len() as u64,
            Err(_) => 0,
        };
        self.record_size(key, size);
        Ok(size)
    }

    fn key_of(&self, target: &Target) -> ImageKey {
        let failures = match target.view {
            View::Info => {
                use std::hash::{Hash, Hasher};
                let failures = lock(&self.failures);
                let mut listed: Vec<_> = failures
                    .iter()
                    .filter(|((rom, ..), _)| *rom == target.rom.rel_path)
                    .collect();
                listed.sort_unstable();
                let mut hasher = rustc_hash::FxHasher::default();
                listed.hash(&mut hasher);
                hasher.finish()
            }
            _ => 0,
        };
        target.key(failures)
    }

    /// The size of a ROM's `info/` report without hashing it: the report
    /// made from the header regions alone, with placeholder digests of the
    /// same width. Building the real report corrects it if a dump's
    /// headers lie outside the regions detection reads.
    fn predict_info_size(&self, rom: &Rom) -> Option<u64> {
        let report = self.header_report_len(rom)?;
        Some(report + self.dat_text(rom).len() as u64 + self.patches_text(rom).len() as u64)
    }

    /// The length of the ROM's part of its report, which depends on the
    /// file alone: the library keeps it (with the header cache, across
    /// mounts).
    fn header_report_len(&self, rom: &Rom) -> Option<u64> {
        self.library.report_len(rom, || {
            let head = self.library.read_rom_head(rom).ok()?;
            let normalized = system::normalize(&head, &rom.layout).ok()?;
            let placeholder = &Digests::PLACEHOLDER;
            let text = RomReport::with_digests(
                &rom.rel_path,
                &head,
                &normalized,
                &rom.layout,
                placeholder,
            );
            Some(text.to_text().len() as u64)
        })
    }

    /// The backing ROM, open, when `target` is that file byte for byte
    /// and the file opened is still the one scanned.
    fn backing_file_of(&self, target: &Target) -> Option<File> {
        let layout = &target.rom.layout;
        let whole_file = match (target.view, &target.variant) {
            (View::Normalized, None) => layout.normalized_is_raw(),
            (View::Deinterleaved, None) => layout.deinterleaved_is_raw(),
            (View::Raw, None) => true,
            _ => false,
        };
        if !whole_file {
            return None;
        }
        self.library.open_rom(&target.rom)
    }

    fn build(&self, target: &Target) -> Result<Arc<Image>, FsError> {
        let key = self.key_of(target);
        let failure = failure_key(target);
        let built = self
            .cache
            .get_or_build(&key, || self.materialize(target).map(|b| self.keep(b)));
        match built {
            Ok(image) => {
                // A failure of an earlier try (a file changing while it was
                // read) is over: the ROM's info/ report no longer lists it.
                if lock(&self.failures).remove(&failure).is_some() {
                    self.attributes_changed();
                }
                Ok(image)
            }
            Err(reason) => {
                log::warn!("{}: {reason}", target.rom.rel_path);
                lock(&self.failures).insert(failure, reason.clone());
                // The ROM's info/ report now lists the failure.
                self.attributes_changed();
                Err(FsError::Io(reason))
            }
        }
    }

    /// Builds the bytes of a virtual file from the backing files.
    fn materialize(&self, target: &Target) -> Result<Vec<u8>, String> {
        let rom = &target.rom;
        let raw = match self.library.read_rom(rom) {
            Ok(raw) => raw,
            // The report is where a user looks for why: it still says it.
            Err(error) if target.view == View::Info => {
                let mut text = format!("{}\n  cannot be read: {error}\n", rom.rel_path);
                text.push_str(&self.patches_text(rom));
                return Ok(text.into_bytes());
            }
            Err(error) => return Err(error.to_string()),
        };
        // The file as it is, even when it would not normalize.
        if target.view == View::Raw {
            return Ok(raw);
        }
        if target.view == View::FdsDisk {
            return fds_disk_of(raw);
        }
        let normalized = system::normalize(&raw, &rom.layout).map_err(|e| e.to_string())?;
        match (&target.view, &target.variant) {
            // An image that is the ROM's bytes, or a run of them, is made
            // from the buffer read rather than copied out of it: a 64 MiB
            // ROM then takes 64 MiB to serve, not twice that.
            (View::Normalized, _) => {
                if let Cow::Borrowed(part) = &normalized
                    && let Some(range) = range_within(&raw, part)
                {
                    drop(normalized);
                    return Ok(narrowed_to(raw, range));
                }
                Ok(normalized.into_owned())
            }
            (View::Deinterleaved, _) => {
                let restored =
                    system::restore(&normalized, &rom.layout).map_err(|e| e.to_string())?;
                if let Cow::Borrowed(part) = &restored
                    && let Some(range) = range_within(&raw, part)
                {
                    drop(restored);
                    drop(normalized);
                    return Ok(narrowed_to(raw, range));
                }
                Ok(restored.into_owned())
            }
            (View::Info, _) => {
                self.check_variant_checksums(rom);
                let digests = Digests::of(&normalized);
                Ok(self
                    .info_text(rom, &raw, &normalized, &digests)
                    .into_bytes())
            }
            (View::Patched, Some(variant)) => self.patched_image(target, &raw, variant),
            (View::Patched, None) => Err("no patch to apply".into()),
            (View::Raw, _) => Ok(raw),
            (View::FdsDisk, _) => fds_disk_of(raw),
        }
    }

    fn apply_variant(&self, rom: &Rom, raw: &[u8], variant: &Variant) -> Result<Vec<u8>, String> {
        let limits = self.library.limits();
        let mut files = Vec::new();
        for patch in &variant.patches {
            if let Some(error) = &patch.error {
                return Err(format!("{}: {error}", patch.rel_path));
            }
            let bytes = self
                .library
                .read_patch_bytes(patch)
                .map_err(|e| e.to_string())?;
            files.push((patch.rel_path.clone(), bytes));
        }
        let parsed = files
            .iter()
            .zip(&variant.patches)
            .map(|((name, bytes), patch)| {
                Patch::parse(patch.format, bytes, &limits)
                    .map(|p| (name.clone(), p))
                    .map_err(|e| format!("{name}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let opts = ApplyOptions {
            limits,
            ignore_checksums: false,
        };
        // A reverted variant (a NINJA2 patch whose target matched, a PPF 3.0
        // the ROM holds) undoes its patch.
        let run = if variant.reversed {
            apply::revert_stack
        } else {
            apply::apply_stack
        };
        run(&rom.rel_path, raw, Some(rom.layout.system), &parsed, &opts).map_err(|e| e.to_string())
    }

    /// A patched image, its internal checksum noted for `info/` and, with
    /// `set_fix_checksums`, recomputed.
    fn patched_image(
        &self,
        target: &Target,
        raw: &[u8],
        variant: &Variant,
    ) -> Result<Vec<u8>, String> {
        let rom = &target.rom;
        let mut image = self.apply_variant(rom, raw, variant)?;
        if checks_checksum(rom) {
            let system = rom.layout.system;
            let held = system::checksum_status(&image, system).map(|s| s.holds());
            lock(&self.checksums).insert(self.key_of(target), held);
            if self.fix_checksums.load(Ordering::Relaxed) {
                system::fix_checksum(&mut image, system);
            }
        }
        Ok(image)
    }

    /// Builds the patched images of `rom` whose internal checksum is not
    /// known yet, so its `info/` report can say it (a failure is noted
    /// for the report as when the file is read).
    fn check_variant_checksums(&self, rom: &Rom) {
        if !checks_checksum(rom) {
            return;
        }
        let Some(shown) = self.names(View::Patched, &rom.folder) else {
            return;
        };
        for (_, target) in shown.iter() {
            let unknown = !lock(&self.checksums).contains_key(&self.key_of(target));
            if target.rom.rel_path == rom.rel_path && unknown {
                let _ = self.build(target);
            }
        }
    }

    /// The `info/` line on a patched variant's internal checksum, of one
    /// width whatever it says: a report is sized before its images are
    /// built, and until then a holding checksum stands in.
    fn checksum_line(&self, rom: &Rom, variant: &Variant) -> Option<String> {
        if !checks_checksum(rom) {
            return None;
        }
        let key = ImageKey {
            view: View::Patched,
            rom_path: rom.rel_path.clone(),
            rom: rom.id,
            patches: variant
                .patches
                .iter()
                .map(|p| (p.rel_path.clone(), p.id))
                .collect(),
            failures: 0,
        };
        let held = lock(&self.checksums)
            .get(&key)
            .copied()
            .unwrap_or(Some(true));
        let words = match held {
            Some(true) => "yes, stored = computed",
            Some(false) => "no, stored != computed",
            None => "none (no header found)",
        };
        Some(if self.fix_checksums.load(Ordering::Relaxed) {
            let served = if held == Some(false) {
                "served fixed"
            } else {
                "served as is"
            };
            format!("    internal checksum as patched: {words}; {served}\n")
        } else {
            format!("    internal checksum: {words}\n")
        })
    }

    /// The patched image's size from patch metadata alone, where that is
    /// exact: patches without checksums apply to the deinterleaved image (a
    /// stack of them to each result in turn), and a checksum match says
    /// which layout a patch applies to.
    fn predict_patched_size(&self, rom: &Rom, variant: &Variant) -> Option<u64> {
        if variant
            .patches
            .iter()
            .all(|p| !p.verifies_source && p.error.is_none())
        {
            let mut size = rom.deinterleaved_len();
            for patch in &variant.patches {
                let bytes = self.library.read_patch_bytes(patch).ok()?;
                let parsed = Patch::parse(patch.format, &bytes, &self.library.limits()).ok()?;
                size = parsed.known_output_size(size)?;
            }
            return Some(size);
        }
        let [patch] = variant.patches.as_slice() else {
            return None;
        };
        let output = if variant.reversed {
            patch.source_size?
        } else {
            patch.target_size?
        };
        let plain = rom.layout.header.is_none() && rom.layout.normalized_is_slice();
        match variant.layout? {
            ImageLayout::Deinterleaved => Some(output),
            ImageLayout::Raw if plain => Some(output),
            // UNIF chunk sizes cannot change: building tells whether it fits.
            ImageLayout::Normalized if rom.layout.header != Some(HeaderKind::Unif) => {
                Some(rom.layout.restored_len(usize::try_from(output).ok()?) as u64)
            }
            _ => None,
        }
    }

    /// The `info/` report: what the ROM is, and its patches.
    fn info_text(&self, rom: &Rom, raw: &[u8], normalized: &[u8], digests: &Digests) -> String {
        let mut text =
            RomReport::with_digests(&rom.rel_path, raw, normalized, &rom.layout, digests).to_text();
        text.push_str(&self.dat_text(rom));
        text.push_str(&self.patches_text(rom));
        text
    }

    /// The end of the `info/` report: the ROM's patches, and the views of
    /// it that could not be read the last time they were asked for.
    fn patches_text(&self, rom: &Rom) -> String {
        let mut text = String::new();
        let rel_dir = rom.folder.as_str();
        let Some(dir) = self.library.dir(rel_dir) else {
            return text;
        };
        let pairings = self.library.pairings(rom, rel_dir, &dir);
        let variants = &pairings.variants;
        let shown = self.names(View::Patched, rel_dir).unwrap_or_default();
        let shown_as = |variant: &Variant| {
            shown
                .iter()
                .find(|(_, target)| {
                    target.rom.rel_path == rom.rel_path
                        && target.variant.as_ref().map(|v| &v.label) == Some(&variant.label)
                })
                .map(|(name, _)| join(View::Patched.dir_name(), &join(rel_dir, name)))
        };
        text.push_str("\npatches\n");
        if variants.is_empty() {
            text.push_str("  none pair with this ROM\n");
        }
        let failures = lock(&self.failures);
        for variant in variants {
            let names: Vec<&str> = variant
                .patches
                .iter()
                .map(|p| p.rel_path.as_str())
                .collect();
            text.push_str(&format!(
                "  [{}] {}: {}\n",
                variant.label,
                names.join(" + "),
                variant.reason
            ));
            if let Some(name) = shown_as(variant) {
                text.push_str(&format!("    shown as {name}\n"));
            }
            let failed = variant.patches.iter().any(|p| p.error.is_some())
                || failures.contains_key(&failure_key_of(rom, variant));
            if !failed && let Some(line) = self.checksum_line(rom, variant) {
                text.push_str(&line);
            }
            if let Some(error) = variant.patches.iter().find_map(|p| p.error.as_ref()) {
                text.push_str(&format!("    cannot be read: {error}\n"));
            } else if let Some(reason) =
                failures.get(&(rom.rel_path.clone(), View::Patched, variant.label.clone()))
            {
                text.push_str(&format!("    fails: {reason}\n"));
            }
        }
        let unusable: Vec<&Arc<PatchFile>> = dir
            .patches_named(&rom.stem)
            .filter(|p| p.error.is_some())
            .collect();
        for patch in unusable {
            if !variants
                .iter()
                .any(|v| v.patches.iter().any(|p| p.rel_path == patch.rel_path))
            {
                text.push_str(&format!(
                    "  {}: cannot be read: {}\n",
                    patch.rel_path,
                    patch.error.as_deref().unwrap_or("")
                ));
            }
        }
        for unfit in &pairings.unfit {
            text.push_str(&format!(
                "  {}: not applied: {}\n",
                unfit.patch.rel_path, unfit.why
            ));
        }
        let left_out = self.library.members_left_out_beside(rom);
        if !left_out.is_empty() {
            text.push_str("\nin its archive\n");
            for (member, why) in left_out {
                text.push_str(&format!(
                    "  {}: left out: {}\n",
                    crate::text::str_as_text(&member),
                    crate::text::str_as_text(&why)
                ));
            }
        }
        let mut unreadable: Vec<(View, &String)> = failures
            .iter()
            .filter(|((path, view, _), _)| *path == rom.rel_path && *view != View::Patched)
            .map(|((_, view, _), reason)| (*view, reason))
            .collect();
        if !unreadable.is_empty() {
            unreadable.sort_unstable();
            text.push_str("\nreading\n");
            for (view, reason) in unreadable {
                text.push_str(&format!("  {}/ fails: {reason}\n", view.dir_name()));
            }
        }
        text
    }
}

/// Where `part` lies in `whole`, when it is a run of its bytes.
fn range_within(whole: &[u8], part: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
}

/// The disk image of an FDS ROM whose bytes `raw` start with the fwNES
/// header (a DAT matched it so, and its size was given so).
fn fds_disk_of(raw: Vec<u8>) -> Result<Vec<u8>, String> {
    let cut = system::fds::fwnes_header_len(&raw);
    if cut == 0 {
        return Err(
            "has no fwNES header (FDS\\x1a) any more: it changed since it was listed".into(),
        );
    }
    let len = raw.len();
    Ok(narrowed_to(raw, cut..len))
}

/// `bytes` cut to `range`, in place.
fn narrowed_to(mut bytes: Vec<u8>, range: std::ops::Range<usize>) -> Vec<u8> {
    bytes.truncate(range.end);
    bytes.drain(..range.start);
    bytes
}

/// How many times an open builds again when a backing file changed while
/// it was read, before it gives up with `EIO`.
const OPEN_RETRIES: u32 = 3;

/// `stem.ext` into `name`, whose bytes it replaces. By hand, as `format!`
/// cost a 10,000-ROM folder's names 3 ms.
fn file_name_into(name: &mut String, stem: &str, ext: &str) {
    name.clear();
    name.push_str(stem);
    name.push('.');
    name.push_str(ext);
}

/// The stems under which `roms` of one folder are shown when each is named
/// `stem.ext` (`ext_of`): its own stem where that name is free, or where
/// its backing file has exactly that name; else the stem tagged with the
/// backing extension, `Game (smc)`, or where that is taken too, with the
/// backing file name, `Game (Game.smc)`. Names in `taken` (folders) are
/// never given.
fn shown_stems<'r>(
    roms: &'r [Arc<Rom>],
    ext_of: impl Fn(&Rom) -> &str,
    taken: &HashSet<String>,
) -> Vec<Cow<'r, str>> {
    // Usually no two ROMs want one name and none is taken: every stem
    // stays, found without making each name (extensions have no dot, so a
    // stem and extension pair is one name).
    let mut wanted: HashSet<(&str, &str)> = HashSet::with_capacity(roms.len());
    let mut name = String::new();
    let all_plain = roms.iter().all(|rom| {
        let ext = ext_of(rom);
        file_name_into(&mut name, &rom.stem, ext);
        !ext.contains('.') && wanted.insert((&rom.stem, ext)) && !taken.contains(name.as_str())
    });
    if all_plain {
        return roms
            .iter()
            .map(|rom| Cow::Borrowed(rom.stem.as_str()))
            .collect();
    }
    let plain: Vec<String> = roms
        .iter()
        .map(|rom| format!("{}.{}", rom.stem, ext_of(rom)))
        .collect();
    let mut wanted_by: HashMap<&str, usize> = HashMap::with_capacity(roms.len());
    for name in &plain {
        *wanted_by.entry(name).or_default() += 1;
    }
    let keeps_plain: Vec<bool> = roms
        .iter()
        .zip(&plain)
        .map(|(rom, name)| {
            !taken.contains(name) && (wanted_by[name.as_str()] == 1 || rom.file_name == *name)
        })
        .collect();
    drop(wanted_by);
    if keeps_plain.iter().all(|&keeps| keeps) {
        return roms
            .iter()
            .map(|rom| Cow::Borrowed(rom.stem.as_str()))
            .collect();
    }
    let mut used: HashSet<String> = taken.clone();
    used.extend(
        plain
            .into_iter()
            .zip(&keeps_plain)
            .filter_map(|(name, &keeps)| keeps.then_some(name)),
    );
    roms.iter()
        .zip(keeps_plain)
        .map(|(rom, keeps_plain)| {
            if keeps_plain {
                return Cow::Borrowed(rom.stem.as_str());
            }
            let ext = ext_of(rom);
            let (_, backing_ext) = crate::library::split_name(&rom.file_name);
            let mut tags = vec![rom.file_name.clone()];
            if !backing_ext.is_empty() {
                tags.insert(0, backing_ext.to_string());
            }
            let stem = tags
                .iter()
                .map(|tag| format!("{} ({tag})", rom.stem))
                .find(|stem| !used.contains(&format!("{stem}.{ext}")))
                .unwrap_or_else(|| format!("{} ({})", rom.stem, rom.file_name));
            used.insert(format!("{stem}.{ext}"));
            Cow::Owned(stem)
        })
        .collect()
}

/// `name`, or if it is taken, `name` with ` (2)`, ` (3)`... before its
/// extension; the name given is then taken.
fn numbered_if_taken(name: String, taken: &mut HashSet<String>) -> String {
    let mut shown = name.clone();
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) => (stem, format!(".{ext}")),
        None => (name.as_str(), String::new()),
    };
    let mut n = 2;
    while taken.contains(&shown) {
        shown = format!("{stem} ({n}){ext}");
        n += 1;
    }
    taken.insert(shown.clone());
    shown
}

type FailureKey = (String, View, String);

/// The failure key of `rom`'s patched variant `variant`.
fn failure_key_of(rom: &Rom, variant: &Variant) -> FailureKey {
    (rom.rel_path.clone(), View::Patched, variant.label.clone())
}

/// Whether `rom`'s patched images may have an internal checksum: its
/// system has one, or it is raw (a GBA image is, and its header says).
fn checks_checksum(rom: &Rom) -> bool {
    system::has_checksum(rom.layout.system) || rom.layout.system == system::SystemType::Raw
}

fn failure_key(target: &Target) -> FailureKey {
    let label = target.variant.as_ref().map(|v| v.label.clone());
    (
        target.rom.rel_path.clone(),
        target.view,
        label.unwrap_or_default(),
    )
}

/// The folders one passes through from folder `from` to folder `to` that
/// are not also on the way to `from` (all relative to the root): `a/b` to
/// `a/c/d` gives `a/c` and `a/c/d`.
fn folders_from(from: &str, to: &str) -> Vec<String> {
    let from: Vec<&str> = from.split('/').filter(|p| !p.is_empty()).collect();
    let to: Vec<&str> = to.split('/').filter(|p| !p.is_empty()).collect();
    let shared = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    (shared + 1..=to.len())
        .map(|end| to[..end].join("/"))
        .collect()
}

impl VirtualFs for NinjaFs {
    fn lookup(&self, parent: u64, name: &OsStr) -> Result<Attributes, FsError> {
        if let Some(answer) = self.verified_lookup(parent, name) {
            return answer;
        }
        let parent_path = self.path_of(parent)?;
        let name = name.to_str().ok_or(FsError::NotFound)?;
        let path = join(&parent_path, name);
        match self.resolve(&parent_path)? {
            Node::File(_) | Node::Note(_) => return Err(FsError::NotADirectory),
            Node::Root | Node::Dir { .. } => {}
        }
        let node = self.resolve_fresh(&path)?;
        let ino = self.ino_of(&path);
        self.attributes(ino, &node)
    }

    fn getattr(&self, ino: u64) -> Result<Attributes, FsError> {
        if let Some(answer) = self.verified_getattr(ino) {
            return answer;
        }
        let path = self.path_of(ino)?;
        let node = self.resolve_fresh(&path)?;
        self.attributes(ino, &node)
    }

    fn readdir(&self, ino: u64) -> Result<DirEntries, FsError> {
        if let Some(answer) = self.verified_readdir(ino) {
            return answer.map(DirEntries::from);
        }
        let path = self.path_of(ino)?;
        let (view, rel_dir) = match self.resolve(&path)? {
            Node::Root => {
                return View::ALL
                    .into_iter()
                    .map(|view| {
                        let child = view.dir_name().to_string();
                        let ino = self.ino_of(&child);
                        Ok(DirEntry {
                            name: child.into(),
                            attributes: self.attributes(
                                ino,
                                &Node::Dir {
                                    view,
                                    rel_dir: String::new(),
                                },
                            )?,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(DirEntries::from);
            }
            Node::Dir { view, rel_dir } => (view, rel_dir),
            Node::File(_) | Node::Note(_) => return Err(FsError::NotADirectory),
        };
        self.library.forget_dir_if_files_changed(&rel_dir);
        let dir = self.library.dir(&rel_dir).ok_or(FsError::NotFound)?;
        let names = self.names(view, &rel_dir).ok_or(FsError::NotFound)?;
        let mut entries = Vec::with_capacity(dir.subdirs.len() + names.len());
        for sub in &dir.subdirs {
            if !self.shows_folder(view, &join(&rel_dir, sub)) {
                continue;
            }
            let child = join(&path, sub);
            let ino = self.ino_of(&child);
            entries.push(DirEntry {
                name: sub.into(),
                attributes: self.attributes(
                    ino,
                    &Node::Dir {
                        view,
                        rel_dir: join(&rel_dir, sub),
                    },
                )?,
            });
        }
        if view == View::Info {
            for (name, note) in self.notes(&dir, &names) {
                let ino = self.ino_of(&join(&path, &name));
                entries.push(DirEntry {
                    attributes: self.note_attributes(ino, note),
                    name: name.into(),
                });
            }
        }
        Ok(DirEntries {
            head: entries,
            files: self.file_entries(view, &rel_dir, &path, names)?,
        })
    }

    fn open(&self, ino: u64) -> Result<Opened, FsError> {
        if let Some(answer) = self.verified_open(ino) {
            return answer;
        }
        let path = self.path_of(ino)?;
        let mut retries = 0;
        let (key, backing, contents, size) = loop {
            let target = match self.resolve_fresh(&path)? {
                Node::File(target) => target,
                Node::Note(note) => {
                    let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
                    let text = Arc::new(Image::from(note.text.clone().into_bytes()));
                    lock(&self.handles).insert(handle, OpenImage::Built(text));
                    return Ok(Opened {
                        handle,
                        keep_cache: false,
                        backing: None,
                    });
                }
                _ => return Err(FsError::IsADirectory),
            };
            let key = self.key_of(&target);
            // Built on the first read, if the kernel does not read the
            // backing file itself.
            if let Some(file) = self.backing_file_of(&target) {
                let size = target.rom.id.size;
                break (key, Some(file), OpenImage::Deferred(target), size);
            }
            match self.build(&target) {
                Ok(image) => {
                    let size = image.len() as u64;
                    // An image in a file can be read by the kernel itself.
                    let file = image.file().and_then(|file| file.try_clone().ok());
                    break (key, file, OpenImage::Built(image), size);
                }
                // A backing file changed while it was read: its folder is
                // read again and the new version built.
                Err(_) if retries < OPEN_RETRIES && !self.sources_unchanged(&target) => {
                    retries += 1;
                }
                Err(error) => return Err(error),
            }
        };
        self.record_size(key.clone(), size);
        let keep_cache = lock(&self.last_opened).insert(ino, key.clone()) == Some(key);
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(handle, contents);
        Ok(Opened {
            handle,
            keep_cache,
            backing,
        })
    }

    fn read(&self, handle: u64, offset: u64, size: u32) -> Result<Vec<u8>, FsError> {
        self.read_shared(handle, offset, size)
            .map(|bytes| bytes.to_vec())
    }

    fn read_shared(
        &self,
        handle: u64,
        offset: u64,
        size: u32,
    ) -> Result<crate::vfs::ReadBytes, FsError> {
        let contents = lock(&self.handles)
            .get(&handle)
            .cloned()
            .ok_or(FsError::BadHandle)?;
        let image = match contents {
            OpenImage::Built(image) => image,
            OpenImage::Deferred(target) => {
                let image = self.build(&target)?;
                if let Some(slot) = lock(&self.handles).get_mut(&handle) {
                    *slot = OpenImage::Built(image.clone());
                }
                image
            }
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(image.len());
        let end = start.saturating_add(size as usize).min(image.len());
        Ok(crate::vfs::ReadBytes::new(image, start..end))
    }

    fn release(&self, handle: u64) {
        lock(&self.handles).remove(&handle);
    }

    fn renumber(&self, ino: u64) {
        let Ok(path) = self.path_of(ino) else {
            return;
        };
        let mut inodes = lock(&self.inodes);
        if ino != ROOT_INO && inodes.by_path.get(path.as_str()) == Some(&ino) {
            inodes.by_path.remove(path.as_str());
            drop(inodes);
            self.attributes_changed();
        }
    }

    fn statfs(&self) -> FsStats {
        FsStats {
            files: lock(&self.inodes).paths.len() as u64,
            bytes: self.cache.bytes() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_borrowed_from_the_raw_bytes_is_cut_from_them() {
        let raw: Vec<u8> = (0..=255).collect();
        let range = range_within(&raw, &raw[16..200]).unwrap();
        assert_eq!(range, 16..200);
        let expected = raw[16..200].to_vec();
        assert_eq!(narrowed_to(raw.clone(), range), expected);
        assert_eq!(range_within(&raw, &raw[..]), Some(0..256));
        // Bytes of their own are not.
        let other = raw.clone();
        assert_eq!(range_within(&raw, &other), None);
    }
}
