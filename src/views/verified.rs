//! The `verified/` view: every ROM a loaded DAT knows, named as the DAT
//! names it (`verified/<DAT name>/<rom name from the DAT>`), serving the
//! image the DAT describes, with its patched variants beside it, and a
//! have/miss report per DAT (`verified/<DAT name>.txt`).
//!
//! The tree is made from the whole backing folder: a ROM is hashed only
//! when some DAT entry has the size of one of its images, once per file
//! version (the library and the header cache keep the digests).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{NinjaFs, OpenImage, Target, View};
use crate::apply::ImageLayout;
use crate::backing::Access;
use crate::cache::{Image, lock};
use crate::dat::{self, DatImage, DatSet, EntryRef, HashKind, Verdict};
use crate::library::{Library, Rom, join, parallel_map, split_name};
use crate::system::{self, SystemType};
use crate::vfs::{Attributes, DirEntry, FsError, NodeKind, Opened};

/// The view's folder at the mount's root.
pub const DIR_NAME: &str = "verified";

/// How long a tree is used before the backing folder is walked again.
const REFRESH: Duration = Duration::from_secs(1);

/// How often the first hashing says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

const HASH_THREADS: usize = 4;

/// One DAT's part of the view.
#[derive(Debug, Default)]
pub struct DatTree {
    /// Its folder (and `<folder>.txt`, its report).
    pub folder: String,
    /// Files by path inside the folder.
    pub files: BTreeMap<String, Target>,
    /// Every folder inside the folder, by path.
    pub dirs: BTreeSet<String>,
    pub report: Arc<Vec<u8>>,
}

/// The whole view.
#[derive(Debug, Default)]
pub struct Tree {
    pub dats: Vec<DatTree>,
}

/// What a path under `verified/` is.
pub enum Found<'a> {
    /// A folder: the DAT's position (none for `verified/` itself) and the
    /// path inside its folder.
    Dir(Option<usize>, String),
    Report(&'a DatTree),
    File(&'a Target),
}

impl Tree {
    /// What `rest` (the path after `verified/`) is.
    pub fn find(&self, rest: &str) -> Option<Found<'_>> {
        if rest.is_empty() {
            return Some(Found::Dir(None, String::new()));
        }
        let (top, inside) = rest.split_once('/').unwrap_or((rest, ""));
        if inside.is_empty()
            && let Some(dat) = self
                .dats
                .iter()
                .find(|d| top.strip_suffix(".txt") == Some(d.folder.as_str()))
        {
            return Some(Found::Report(dat));
        }
        let at = self.dats.iter().position(|d| d.folder == top)?;
        let dat = &self.dats[at];
        if inside.is_empty() || dat.dirs.contains(inside) {
            return Some(Found::Dir(Some(at), inside.to_string()));
        }
        dat.files.get(inside).map(Found::File)
    }

    /// The entries of a folder: (name, what it is), folders first.
    pub fn children(&self, dat: Option<usize>, inside: &str) -> Vec<(String, Found<'_>)> {
        let Some(at) = dat else {
            let mut out = Vec::new();
            for (at, dat) in self.dats.iter().enumerate() {
                out.push((dat.folder.clone(), Found::Dir(Some(at), String::new())));
                out.push((format!("{}.txt", dat.folder), Found::Report(dat)));
            }
            return out;
        };
        let Some(dat) = self.dats.get(at) else {
            return Vec::new();
        };
        let child_of = |path: &str| {
            let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
            (parent == inside).then(|| name.to_string())
        };
        let mut out: Vec<(String, Found<'_>)> = dat
            .dirs
            .iter()
            .filter_map(|dir| child_of(dir).map(|n| (n, Found::Dir(Some(at), dir.clone()))))
            .collect();
        out.extend(
            dat.files
                .iter()
                .filter_map(|(path, target)| child_of(path).map(|n| (n, Found::File(target)))),
        );
        out
    }
}

/// The DATs of a mount and the last tree made from them.
pub struct Verified {
    dats: Arc<DatSet>,
    tree: Mutex<Option<(Instant, Arc<Tree>)>>,
}

/// A ROM of the backing folder with what the DATs say of it.
struct Checked {
    rom: Arc<Rom>,
    verdict: Verdict,
}

impl Verified {
    pub fn new(dats: DatSet) -> Verified {
        Verified {
            dats: Arc::new(dats),
            tree: Mutex::new(None),
        }
    }

    /// What the DATs say of one ROM: hashed only if some entry has the
    /// size of one of its images.
    pub fn verdict(&self, library: &Library, rom: &Rom) -> Verdict {
        let mut sizes = vec![
            (ImageLayout::Raw.into(), rom.id.size),
            (ImageLayout::Normalized.into(), rom.normalized_len()),
            (ImageLayout::Deinterleaved.into(), rom.deinterleaved_len()),
        ];
        // Whether the file has a fwNES header is known once it is read:
        // its disk is then one size or the other.
        let fds_disks = self.dats.hashes_fds_disks() && rom.layout.system == SystemType::Fds;
        if fds_disks {
            let header = system::fds::FWNES_HEADER_LEN as u64;
            sizes.push((DatImage::FdsDisk { had_header: false }, rom.id.size));
            if let Some(disk) = rom.id.size.checked_sub(header) {
                sizes.push((DatImage::FdsDisk { had_header: true }, disk));
            }
        }
        if !self.dats.wants_any_size(&sizes) {
            return Verdict::default();
        }
        match library.dat_digests(rom, fds_disks) {
            Ok(images) => self.dats.verdict(&images),
            Err(error) => {
                log::warn!("{}: cannot hash for the DATs: {error}", rom.rel_path);
                Verdict::default()
            }
        }
    }

    /// The `DAT` section of a ROM's `info/` report.
    pub fn info_text(&self, library: &Library, rom: &Rom) -> String {
        self.dats.describe(&self.verdict(library, rom))
    }

    /// The view as of now (made again at most once a second).
    /// Makes the next [`Verified::tree`] walk the backing folder again.
    fn forget_tree(&self) {
        *lock(&self.tree) = None;
    }

    pub fn tree(&self, library: &Library) -> Arc<Tree> {
        if let Some((at, tree)) = lock(&self.tree).as_ref()
            && at.elapsed() < REFRESH
        {
            return tree.clone();
        }
        let tree = Arc::new(self.make_tree(library));
        *lock(&self.tree) = Some((Instant::now(), tree.clone()));
        tree
    }

    fn make_tree(&self, library: &Library) -> Tree {
        let mut roms = Vec::new();
        let mut pending = vec![String::new()];
        while let Some(rel_dir) = pending.pop() {
            let Some(contents) = library.dir(&rel_dir) else {
                continue;
            };
            roms.extend(contents.roms.iter().cloned());
            pending.extend(contents.subdirs.iter().map(|d| join(&rel_dir, d)));
        }
        roms.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
        let checked = self.check_all(library, roms);
        let mut taken = HashSet::new();
        let dats = (0..self.dats.dats.len())
            .map(|at| self.dat_tree(library, at, &checked, &mut taken))
            .collect();
        Tree { dats }
    }

    /// Every ROM's verdict, hashing on several threads, with progress in
    /// the log when it takes a while.
    fn check_all(&self, library: &Library, roms: Vec<Arc<Rom>>) -> Vec<Checked> {
        let started = Instant::now();
        let last_said = Mutex::new(Instant::now());
        let files_done = AtomicU64::new(0);
        let bytes_done = AtomicU64::new(0);
        let total = roms.len();
        let checked = parallel_map(&roms, HASH_THREADS, |rom| {
            let verdict = self.verdict(library, rom);
            let files = files_done.fetch_add(1, Ordering::Relaxed) + 1;
            let bytes = bytes_done.fetch_add(rom.id.size, Ordering::Relaxed) + rom.id.size;
            let mut said = lock(&last_said);
            if said.elapsed() >= PROGRESS_EVERY {
                *said = Instant::now();
                let seconds = started.elapsed().as_secs_f64().max(0.001);
                log::info!(
                    "verified/: {files} of {total} ROMs checked against the DATs, {} MiB read, {:.1} MiB/s",
                    bytes >> 20,
                    bytes as f64 / seconds / f64::from(1 << 20)
                );
            }
            verdict
        });
        roms.into_iter()
            .zip(checked)
            .map(|(rom, verdict)| Checked { rom, verdict })
            .collect()
    }

    fn dat_tree(
        &self,
        library: &Library,
        at: usize,
        checked: &[Checked],
        taken: &mut HashSet<String>,
    ) -> DatTree {
        let dat = &self.dats.dats[at];
        let folder = unique_folder(&dat::safe_dat_name(&dat.name), taken);
        let mut tree = DatTree {
            folder,
            ..DatTree::default()
        };
        let mut have: HashSet<u32> = HashSet::new();
        let mut several = Vec::new();
        let mut weak = Vec::new();
        let mut bad = Vec::new();
        let mut wanted: Vec<(String, Target)> = Vec::new();
        for item in checked {
            let mine: Vec<_> = item
                .verdict
                .matches
                .iter()
                .filter(|m| m.entry.dat as usize == at)
                .collect();
            let rom = &item.rom;
            if mine.len() > 1 {
                let names: Vec<String> = mine.iter().map(|m| self.rom_name(m.entry)).collect();
                several.push(format!("{}: {}", rom.rel_path, names.join(", ")));
            }
            for found in &mine {
                have.insert(found.entry.rom);
                let name = self.rom_name(found.entry);
                if found.by == HashKind::Crc32 {
                    weak.push(format!("{}: {name}", rom.rel_path));
                }
                let view = match found.image {
                    DatImage::FdsDisk { had_header: true } => View::FdsDisk,
                    DatImage::Layout(ImageLayout::Normalized) => View::Normalized,
                    DatImage::Layout(ImageLayout::Deinterleaved) => View::Deinterleaved,
                    // The raw file (an FDS disk without a header is one).
                    _ if rom.layout.deinterleaved_is_raw() => View::Deinterleaved,
                    _ if rom.layout.normalized_is_raw() => View::Normalized,
                    // Neither image the views make: the backing file itself.
                    _ => View::Raw,
                };
                let path = dat::safe_rom_path(&name);
                wanted.push((
                    path.clone(),
                    Target {
                        view,
                        rom: rom.clone(),
                        variant: None,
                    },
                ));
                let Some(contents) = library.dir(&rom.folder) else {
                    continue;
                };
                // The extension of the file name, not of a folder.
                let (folder, file) = match path.rsplit_once('/') {
                    Some((folder, file)) => (format!("{folder}/"), file),
                    None => (String::new(), path.as_str()),
                };
                let (stem, ext) = split_name(file);
                let stem = format!("{folder}{stem}");
                let ext = if ext.is_empty() {
                    rom.deinterleaved_ext.clone()
                } else {
                    ext.to_string()
                };
                for variant in library.variants(rom, &rom.folder, &contents) {
                    wanted.push((
                        format!("{stem} [{}].{ext}", variant.label),
                        Target {
                            view: View::Patched,
                            rom: rom.clone(),
                            variant: Some(variant),
                        },
                    ));
                }
            }
            for crc in item
                .verdict
                .crc_only
                .iter()
                .filter(|c| c.entry.dat as usize == at)
            {
                bad.push(format!(
                    "{}: {} (its CRC32 matches, its {} does not)",
                    rom.rel_path,
                    self.rom_name(crc.entry),
                    crc.disagrees
                ));
            }
        }
        // Folders first, so that no file takes a folder's name.
        for (path, _) in &wanted {
            let mut end = 0;
            while let Some(slash) = path[end..].find('/') {
                end += slash;
                tree.dirs.insert(path[..end].to_string());
                end += 1;
            }
        }
        let mut used: HashSet<String> = tree.dirs.iter().cloned().collect();
        for (path, target) in wanted {
            let path = numbered_if_taken(path, &mut used);
            tree.files.insert(path, target);
        }
        // The names of the missing read out in one pass over the DAT.
        let missing: Vec<String> = dat
            .roms()
            .enumerate()
            .filter(|(at, _)| !have.contains(&(*at as u32)))
            .map(|(_, rom)| crate::text::str_as_text(&rom.name))
            .collect();
        let mut text = format!(
            "{}{}\nfrom {}\n{}\nhave {} of {} ROMs\n",
            crate::text::str_as_text(&dat.name),
            dat.version
                .as_deref()
                .map(|v| format!(" (version {})", crate::text::str_as_text(v)))
                .unwrap_or_default(),
            crate::text::str_as_text(&dat.source),
            dat.skipper_note()
                .map(|note| format!("{note}\n"))
                .unwrap_or_default(),
            have.len(),
            dat.rom_count()
        );
        let mut section = |title: &str, lines: &[String]| {
            text.push_str(&format!("\n{title}: {}\n", lines.len()));
            for line in lines {
                text.push_str(&format!("  {}\n", crate::text::str_as_text(line)));
            }
        };
        section("missing", &missing);
        section("files matching more than one entry", &several);
        section("matched by CRC32 alone", &weak);
        section("bad or altered dumps", &bad);
        tree.report = Arc::new(text.into_bytes());
        tree
    }

    fn rom_name(&self, entry: EntryRef) -> String {
        self.dats
            .entry(entry)
            .map(|(_, rom)| rom.name)
            .unwrap_or_default()
    }
}

/// Whether `path` (from the mount's root) is in the view.
fn in_view(path: &str) -> bool {
    path == DIR_NAME
        || path
            .strip_prefix(DIR_NAME)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// What is at a path of the view, owned.
enum Node {
    Dir,
    Report(Arc<Vec<u8>>),
    File(Target),
}

/// The hooks of the view into the filesystem: each answers for paths
/// under `verified/` (and the root's listing) and says `None` elsewhere.
impl NinjaFs {
    /// Checks ROMs against `dats` and shows `verified/` and the `DAT`
    /// section of `info/` reports. Call once, before the mount; later
    /// calls change nothing.
    pub fn use_dats(&self, dats: DatSet) {
        let _ = self.verified.set(Verified::new(dats));
    }

    /// The `DAT` section of a ROM's `info/` report (empty without DATs).
    pub(super) fn dat_text(&self, rom: &Rom) -> String {
        self.verified
            .get()
            .map(|verified| verified.info_text(&self.library, rom))
            .unwrap_or_default()
    }

    fn verified_node(&self, verified: &Verified, path: &str) -> Result<Node, FsError> {
        let rest = path
            .strip_prefix(DIR_NAME)
            .unwrap_or("")
            .trim_start_matches('/');
        let find = |tree: &Tree| match tree.find(rest) {
            Some(Found::Dir(..)) => Ok(Node::Dir),
            Some(Found::Report(dat)) => Ok(Node::Report(dat.report.clone())),
            Some(Found::File(target)) => Ok(Node::File(target.clone())),
            None => Err(FsError::NotFound),
        };
        let node = find(&verified.tree(&self.library))?;
        // A backing file rewritten in place: its folder is read again.
        if let Node::File(target) = &node
            && !self.sources_unchanged(target)
        {
            self.library.forget_dir_of(target.rom.file_path());
            for patch in target.variant.iter().flat_map(|v| &v.patches) {
                self.library.forget_dir_of(patch.file_path());
            }
            verified.forget_tree();
            return find(&verified.tree(&self.library));
        }
        Ok(node)
    }

    fn verified_attributes(&self, ino: u64, node: &Node) -> Result<Attributes, FsError> {
        // Folders and reports are the backing root's: whoever may list
        // it may read what the DATs say of it.
        let (mtime, access) = match self.library.folder_id("") {
            Ok(id) => (id.mtime(), id.access),
            Err(_) => (self.mounted_at, Access::default()),
        };
        let (kind, size, access) = match node {
            Node::Dir => (NodeKind::Directory, 0, access.as_folder()),
            Node::Report(text) => (NodeKind::File, text.len() as u64, access.as_file()),
            Node::File(target) => return self.file_attributes(ino, target),
        };
        Ok(Attributes {
            ino,
            kind,
            size,
            mtime,
            uid: access.uid,
            gid: access.gid,
            perm: access.mode as u16,
        })
    }

    pub(super) fn verified_lookup(
        &self,
        parent: u64,
        name: &OsStr,
    ) -> Option<Result<Attributes, FsError>> {
        let verified = self.verified.get()?;
        let path = join(&self.path_of(parent).ok()?, name.to_str()?);
        if !in_view(&path) {
            return None;
        }
        let ino = self.ino_of(&path);
        Some(
            self.verified_node(verified, &path)
                .and_then(|node| self.verified_attributes(ino, &node)),
        )
    }

    pub(super) fn verified_getattr(&self, ino: u64) -> Option<Result<Attributes, FsError>> {
        let verified = self.verified.get()?;
        let path = self.path_of(ino).ok()?;
        if !in_view(&path) {
            return None;
        }
        Some(
            self.verified_node(verified, &path)
                .and_then(|node| self.verified_attributes(ino, &node)),
        )
    }

    pub(super) fn verified_readdir(&self, ino: u64) -> Option<Result<Vec<DirEntry>, FsError>> {
        let verified = self.verified.get()?;
        let path = self.path_of(ino).ok()?;
        if path.is_empty() {
            return Some(self.root_with_verified());
        }
        if !in_view(&path) {
            return None;
        }
        let rest = path[DIR_NAME.len()..].trim_start_matches('/').to_string();
        let tree = verified.tree(&self.library);
        let (dat, inside) = match tree.find(&rest) {
            Some(Found::Dir(dat, inside)) => (dat, inside),
            Some(_) => return Some(Err(FsError::NotADirectory)),
            None => return Some(Err(FsError::NotFound)),
        };
        let mut entries = Vec::new();
        for (name, found) in tree.children(dat, &inside) {
            let child = join(&path, &name);
            let ino = self.ino_of(&child);
            let node = match found {
                Found::Dir(..) => Node::Dir,
                Found::Report(dat) => Node::Report(dat.report.clone()),
                Found::File(target) => Node::File(target.clone()),
            };
            match self.verified_attributes(ino, &node) {
                Ok(attributes) => entries.push(DirEntry {
                    name: name.into(),
                    attributes,
                }),
                Err(error) => return Some(Err(error)),
            }
        }
        Some(Ok(entries))
    }

    /// The root's listing: the views, and `verified/`.
    fn root_with_verified(&self) -> Result<Vec<DirEntry>, FsError> {
        let mut entries = Vec::new();
        let root = self.attributes(super::ROOT_INO, &super::Node::Root)?;
        for name in View::ALL
            .iter()
            .map(|view| view.dir_name())
            .chain([DIR_NAME])
        {
            let ino = self.ino_of(name);
            entries.push(DirEntry {
                name: name.into(),
                attributes: Attributes { ino, ..root },
            });
        }
        Ok(entries)
    }

    pub(super) fn verified_open(&self, ino: u64) -> Option<Result<Opened, FsError>> {
        let verified = self.verified.get()?;
        let path = self.path_of(ino).ok()?;
        if !in_view(&path) {
            return None;
        }
        let node = match self.verified_node(verified, &path) {
            Ok(node) => node,
            Err(error) => return Some(Err(error)),
        };
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let (contents, backing, keep_cache) = match node {
            Node::Dir => return Some(Err(FsError::IsADirectory)),
            Node::Report(text) => (
                OpenImage::Built(Arc::new(Image::from(text.to_vec()))),
                None,
                false,
            ),
            Node::File(target) => {
                let key = self.key_of(&target);
                let (contents, backing, size) = match self.backing_file_of(&target) {
                    Some(file) => {
                        let size = target.rom.id.size;
                        (OpenImage::Deferred(target), Some(file), size)
                    }
                    None => match self.build(&target) {
                        Ok(image) => {
                            let size = image.len() as u64;
                            let file = image.file().and_then(|file| file.try_clone().ok());
                            (OpenImage::Built(image), file, size)
                        }
                        Err(error) => return Some(Err(error)),
                    },
                };
                self.record_size(key.clone(), size);
                let keep_cache = lock(&self.last_opened).insert(ino, key.clone()) == Some(key);
                (contents, backing, keep_cache)
            }
        };
        lock(&self.handles).insert(handle, contents);
        Some(Ok(Opened {
            handle,
            keep_cache,
            backing,
        }))
    }
}

/// `name`, or ` (2)`, ` (3)`... after it when it or its report's name is
/// taken; both are then taken.
fn unique_folder(name: &str, taken: &mut HashSet<String>) -> String {
    let mut folder = name.to_string();
    let mut n = 2;
    while taken.contains(&folder) || taken.contains(&format!("{folder}.txt")) {
        folder = format!("{name} ({n})");
        n += 1;
    }
    taken.insert(folder.clone());
    taken.insert(format!("{folder}.txt"));
    folder
}

/// `path`, or with ` (2)`, ` (3)`... before its file name's extension if
/// it is taken; the path given is then taken.
fn numbered_if_taken(path: String, taken: &mut HashSet<String>) -> String {
    let (dir, name) = match path.rsplit_once('/') {
        Some((dir, name)) => (format!("{dir}/"), name.to_string()),
        None => (String::new(), path.clone()),
    };
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem.to_string(), format!(".{ext}")),
        _ => (name.clone(), String::new()),
    };
    let mut shown = path;
    let mut n = 2;
    while taken.contains(&shown) {
        shown = format!("{dir}{stem} ({n}){ext}");
        n += 1;
    }
    taken.insert(shown.clone());
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_numbered_inside_their_folder() {
        let mut taken = HashSet::new();
        assert_eq!(numbered_if_taken("a.b/c".into(), &mut taken), "a.b/c");
        assert_eq!(numbered_if_taken("a.b/c".into(), &mut taken), "a.b/c (2)");
        assert_eq!(numbered_if_taken("x/G.sfc".into(), &mut taken), "x/G.sfc");
        assert_eq!(
            numbered_if_taken("x/G.sfc".into(), &mut taken),
            "x/G (2).sfc"
        );
        let mut taken = HashSet::new();
        assert_eq!(unique_folder("D", &mut taken), "D");
        assert_eq!(unique_folder("D.txt", &mut taken), "D.txt (2)");
        assert_eq!(unique_folder("D", &mut taken), "D (2)");
    }
}
