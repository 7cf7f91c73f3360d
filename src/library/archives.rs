//! Archives in the backing folder, as the views show them: one holding a
//! single ROM (and maybe patches, readmes) shows its ROM in place, as if it
//! lay loose beside the archive; one holding several ROMs, or folders, is a
//! folder named after the archive, mirroring the archive's own folders.
//! Listing reads the archive's directory and, of each ROM, only the bytes
//! detection needs.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::hints::{self, SourceDigest};
use super::{
    Detected, DirContents, FileId, Found, Library, PatchFile, Rom, SCANS, Source, detection_len,
    join, named_like_rom, rom_from_detected, split_name,
};
use crate::backing::archive::{self, Archive, ArchiveError, ArchiveKind};
use crate::backing::{Access, FailedRead, Folder, ReadAt, ReadError};
use crate::cache::lock;
use crate::patch::any::PatchFormat;
use crate::system;
use crate::text;

/// The bytes of a member that settle detection when its name says a system
/// that keeps its headers at the start (see [`system::detect_from_start`]).
const START_LEN: u64 = system::START_DETECTION_LEN as u64;

/// Members no longer than this are laid out for detection in a buffer that
/// each thread keeps: a fresh buffer as long as a small member is cleared
/// whole (the allocator zeroes memory it hands out again), which cost a
/// listing of thousands of small zipped ROMs more than inflating them.
/// Larger members get a fresh buffer, whose untouched pages cost nothing.
const KEPT_HEAD_MAX: usize = 256 << 10;

thread_local! {
    /// See [`KEPT_HEAD_MAX`]: the buffer, zero past the length of the
    /// prefix written last.
    static KEPT_HEAD: RefCell<(Vec<u8>, usize)> = const { RefCell::new((Vec::new(), 0)) };
}

/// `detect` run on a member's first bytes `prefix` in a buffer as long as
/// the member (`size` bytes), the rest zero, as detection expects.
fn with_head<R>(prefix: &[u8], size: u64, detect: impl FnOnce(&[u8]) -> R) -> R {
    let len = usize::try_from(size).unwrap_or(0);
    if prefix.len() >= len {
        return detect(&prefix[..len]);
    }
    if len > KEPT_HEAD_MAX {
        let mut head = vec![0u8; len];
        head[..prefix.len()].copy_from_slice(prefix);
        return detect(&head);
    }
    KEPT_HEAD.with_borrow_mut(|(buffer, written)| {
        if buffer.len() < len {
            buffer.resize(len, 0);
        }
        // What an earlier, longer prefix left past this one.
        let left_over = (*written).min(buffer.len());
        if left_over > prefix.len() {
            buffer[prefix.len()..left_over].fill(0);
        }
        buffer[..prefix.len()].copy_from_slice(prefix);
        *written = prefix.len();
        detect(&buffer[..len])
    })
}

/// The most detection bytes of a solid archive's members held at once.
const PREFIXES_AT_ONCE: u64 = 256 << 20;

/// What the scan of an archive made of it, kept by the header cache so a
/// later mount lists the archive without reading it. The ROMs and patches
/// are the live ones, so what is learned of them later (report lengths,
/// digests) is kept too.
#[derive(Debug, Default)]
pub(crate) struct ArchiveMembers {
    /// See [`ArchiveListing::in_place`].
    pub(crate) in_place: bool,
    /// Each member that is something to the views, by name, in archive
    /// order.
    pub(crate) members: Vec<(String, MemberClass)>,
    /// Why the archive cannot be shown at all (damaged, or a format this
    /// tool does not read): the same for as long as the file is.
    pub(crate) problem: Option<String>,
}

impl ArchiveMembers {
    /// The ROM of an archive that holds one ROM at its top and nothing
    /// else the views show or the log reports: shown in place of the
    /// archive, with no note and no folder.
    pub(crate) fn lone_rom_in_place(&self) -> Option<&Arc<Rom>> {
        match (self.in_place, &self.problem, self.members.as_slice()) {
            (true, None, [(name, MemberClass::Rom(rom))]) if !name.contains('/') => Some(rom),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) enum MemberClass {
    Rom(Arc<Rom>),
    Patch(Arc<PatchFile>),
    /// A readme, and the one source ROM it names, if it names one.
    Note(Option<SourceDigest>),
    /// Left out, and why.
    LeftOut(String),
}

/// An archive of a folder's first scan, as a reader thread left it.
pub(crate) enum NewArchive {
    /// Read as the version given.
    Read(FileId, Vec<ReadMember>),
    /// Damaged, or of a kind this tool does not read.
    Unreadable(FileId, Arc<ArchiveMembers>),
    /// `stat`ed and scanned as any other.
    Scanned(FileId, ScannedArchive),
}

/// What a folder's scan made of an archive.
pub(crate) enum ScannedArchive {
    /// It holds one ROM and nothing else, shown in its place.
    LoneRom(Arc<ArchiveMembers>),
    Listing(Arc<ArchiveListing>),
}

/// Where a member's ROM or patch is, as the views name it.
pub(crate) struct MemberPlace {
    /// `archive//member`.
    pub(crate) rel_path: String,
    /// Its name in its folder of the views.
    pub(crate) file_name: String,
    /// The folder of the views that shows it.
    pub(crate) folder: String,
}

/// The place of member `member` of the archive at `archive_rel`: a ROM
/// shown in place is named after the archive (so its info/ report is too,
/// as a loose file's after the file); everything else by its own name.
pub(crate) fn member_place(
    archive_rel: &str,
    in_place: bool,
    member: &str,
    rom: bool,
) -> MemberPlace {
    let (archive_dir, archive_name) = archive_rel.rsplit_once('/').unwrap_or(("", archive_rel));
    let (folder, file_name) = if in_place {
        let name = if rom { archive_name } else { base_name(member) };
        (archive_dir.to_string(), name.to_string())
    } else {
        let folder = join(
            &join(archive_dir, split_name(archive_name).0),
            folder_of(member),
        );
        (folder, base_name(member).to_string())
    };
    MemberPlace {
        rel_path: format!("{archive_rel}//{member}"),
        file_name,
        folder,
    }
}

/// The `info/` report of an archive that shows no ROM in place of itself:
/// one that cannot be read, holds only patches, or shows as a folder. It
/// says what became of each member that is something to the views.
#[derive(Debug)]
pub struct ArchiveNote {
    /// The archive's path, relative to the backing folder.
    pub rel_path: String,
    /// Its name in its folder.
    pub name: String,
    pub id: FileId,
    pub text: String,
}

/// What an archive holds, as the views show it.
#[derive(Debug, Default)]
pub(crate) struct ArchiveListing {
    /// Shown in place of the archive: at most one ROM, and no folders. Its
    /// ROM and patches join the archive's folder. Else a folder.
    pub(crate) in_place: bool,
    /// The archive's folders by inner path (`""` for its top).
    pub(crate) folders: HashMap<String, ArchiveFolder>,
    /// Why the archive cannot be shown at all.
    pub(crate) problem: Option<String>,
    /// Members left out, with why, for the log.
    pub(crate) left_out: Vec<(String, String)>,
    /// What the listing was made from, for the header cache; `None` when
    /// reading failed in a way that may not happen again.
    pub(crate) members: Option<Arc<ArchiveMembers>>,
}

#[derive(Debug, Default)]
pub(crate) struct ArchiveFolder {
    pub(crate) subdirs: BTreeSet<String>,
    pub(crate) roms: Vec<Arc<Rom>>,
    pub(crate) patches: Vec<Arc<PatchFile>>,
}

/// One member as read while listing: its name, and for a ROM or patch
/// candidate the bytes classification needs.
#[derive(Debug, PartialEq)]
pub(crate) struct ReadMember {
    name: String,
    read: Result<Candidate, String>,
}

#[derive(Debug, PartialEq)]
enum Candidate {
    /// A ROM, as detection saw it.
    Rom(Detected),
    /// The whole patch.
    Patch(Vec<u8>),
    /// A readme, and the one source ROM it names, if it names one.
    Note(Option<SourceDigest>),
    /// Neither, by its name.
    Other,
}

/// The archive read by `reader` (`size` bytes, named `file_name`), its
/// directory read.
fn open_archive(reader: &Arc<dyn ReadAt>, size: u64, file_name: &str) -> io::Result<Archive> {
    Archive::open_shared(Arc::clone(reader), size, file_name).map_err(io::Error::other)
}

/// The listing of an archive that cannot be read now, for a reason that
/// may pass (`problem`): not kept, so the next scan tries again.
fn unread_listing(problem: String) -> Arc<ArchiveListing> {
    Arc::new(ArchiveListing {
        problem: Some(problem),
        ..ArchiveListing::default()
    })
}

/// The members of an archive that cannot be read, for as long as it is
/// unchanged (see [`lasting_failure`]).
fn unreadable(error: &ReadError) -> Arc<ArchiveMembers> {
    Arc::new(ArchiveMembers {
        problem: Some(archive_problem(error)),
        ..ArchiveMembers::default()
    })
}

/// Whether a failed read of an archive fails the same way for as long as
/// the file is unchanged: the archive's damage or format, not the disk's
/// errors or a file being rewritten.
fn lasting_failure(error: &ReadError) -> bool {
    match error {
        ReadError::Io { source, .. } => source
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<ArchiveError>())
            .is_some_and(|error| !matches!(error, ArchiveError::Read(_))),
        ReadError::Changed { .. } | ReadError::Unsettled { .. } => false,
    }
}

/// Folder access for an archive shown as a folder: whoever may read the
/// archive may list it.
pub(crate) fn as_folder(access: Access) -> Access {
    let read = access.mode & 0o444;
    Access {
        mode: read | (read >> 2),
        ..access
    }
}

impl Library {
    /// What the archive at `rel_path` (the version `id`) holds, read once
    /// per version (and, with the header cache, once for every mount).
    pub(crate) fn archive_listing(&self, rel_path: &str, id: FileId) -> Arc<ArchiveListing> {
        if let Some(listing) = self.kept_listing(rel_path, id) {
            return listing;
        }
        match self.archive_members(rel_path, id) {
            Ok(members) => self.keep_listing(rel_path, id, members),
            Err(problem) => unread_listing(problem),
        }
    }

    /// What a folder's scan makes of the archive at `rel_path` (the
    /// version `id`). With a header cache to ask again, one holding a lone
    /// ROM gives it as it is: no listing is worked out and kept for it
    /// (ten thousand zipped ROMs cost as much in those as in reading).
    pub(crate) fn scanned_archive(&self, rel_path: &str, id: FileId) -> ScannedArchive {
        if let Some(listing) = self.kept_listing(rel_path, id) {
            return ScannedArchive::Listing(listing);
        }
        match self.archive_members(rel_path, id) {
            Ok(members) => self.scanned_from(rel_path, id, members),
            Err(problem) => ScannedArchive::Listing(unread_listing(problem)),
        }
    }

    /// The listing kept for the archive at `rel_path`, if it was made of
    /// the version `id`.
    fn kept_listing(&self, rel_path: &str, id: FileId) -> Option<Arc<ArchiveListing>> {
        match lock(&self.archives).get(rel_path) {
            Some((known, listing)) if *known == id => Some(listing.clone()),
            _ => None,
        }
    }

    /// The first half of [`scanned_archive`](Self::scanned_archive) of the
    /// archive `name` of the open folder `dir` (at `rel_path`), in the
    /// folder's first scan, for a reader thread: not `stat`ed, its read
    /// tells its version. `None`: it is gone. [`Self::scanned_new_archive`]
    /// makes the rest on the scan's own thread: what outlives the scan is
    /// allocated there, not by readers queueing on the allocator's lock.
    pub(crate) fn read_new_archive(
        &self,
        rel_path: &str,
        dir: &dyn Folder,
        name: &str,
    ) -> Option<NewArchive> {
        self.header_reads.fetch_add(1, Ordering::Relaxed);
        let failed = match self.read_archive(rel_path, None) {
            Ok((id, members)) => return Some(NewArchive::Read(id, members)),
            Err(failed) => failed,
        };
        match failed.version {
            // Damaged, or a kind this tool does not read: so it stays.
            Some(id) if lasting_failure(&failed.error) => {
                Some(NewArchive::Unreadable(id, unreadable(&failed.error)))
            }
            // Unreadable now, or changing: the way for a `stat`ed archive
            // tries again.
            _ => {
                let id = dir.stat_entry(OsStr::new(name)).ok()?;
                Some(NewArchive::Scanned(id, self.scanned_archive(rel_path, id)))
            }
        }
    }

    /// The rest of [`Self::read_new_archive`].
    pub(crate) fn scanned_new_archive(
        &self,
        rel_path: &str,
        read: NewArchive,
    ) -> (FileId, ScannedArchive) {
        match read {
            NewArchive::Read(id, members) => {
                let members = Arc::new(self.classify_members(rel_path, id, members));
                (id, self.scanned_from(rel_path, id, members))
            }
            NewArchive::Unreadable(id, members) => (id, self.scanned_from(rel_path, id, members)),
            NewArchive::Scanned(id, scanned) => (id, scanned),
        }
    }

    /// What a scan makes of `members` of the archive at `rel_path` (the
    /// version `id`): see [`scanned_archive`](Self::scanned_archive).
    fn scanned_from(
        &self,
        rel_path: &str,
        id: FileId,
        members: Arc<ArchiveMembers>,
    ) -> ScannedArchive {
        if self.header_cache.get().is_some() && members.lone_rom_in_place().is_some() {
            ScannedArchive::LoneRom(members)
        } else {
            ScannedArchive::Listing(self.keep_listing(rel_path, id, members))
        }
    }

    /// The listing made of `members` of the archive at `rel_path` (the
    /// version `id`), kept for the next scan.
    fn keep_listing(
        &self,
        rel_path: &str,
        id: FileId,
        members: Arc<ArchiveMembers>,
    ) -> Arc<ArchiveListing> {
        let listing = Arc::new(self.shape(members));
        lock(&self.archives).insert(rel_path.to_string(), (id, listing.clone()));
        listing
    }

    /// The members of the archive at `rel_path` (the version `id`): from
    /// the header cache, else read. `Err` says why it cannot be read now,
    /// for a reason that may pass (the disk, or a writer): it is tried
    /// again at the next scan.
    fn archive_members(&self, rel_path: &str, id: FileId) -> Result<Arc<ArchiveMembers>, String> {
        let (rel_dir, name) = rel_path.rsplit_once('/').unwrap_or(("", rel_path));
        let stored = self
            .header_cache
            .get()
            .and_then(|cache| cache.get_archive(rel_dir, name, id));
        if let Some(members) = stored {
            return Ok(members);
        }
        self.header_reads.fetch_add(1, Ordering::Relaxed);
        match self.read_archive(rel_path, Some(&id)) {
            Ok((_, members)) => Ok(Arc::new(self.classify_members(rel_path, id, members))),
            Err(failed) if lasting_failure(&failed.error) => Ok(unreadable(&failed.error)),
            Err(failed) => Err(failed.error.to_string()),
        }
    }

    /// The members of the archive at `rel_path`, with what classification
    /// needs of each ROM or patch, all from one version of the archive.
    /// `expected` is the version to read; `None` reads whatever version is
    /// there, and says which it was.
    fn read_archive(
        &self,
        rel_path: &str,
        expected: Option<&FileId>,
    ) -> Result<(FileId, Vec<ReadMember>), Box<FailedRead>> {
        let file_name = rel_path.rsplit('/').next().unwrap_or(rel_path);
        let max = self.limits.max_image_size;
        self.backing
            .read_version_shared(rel_path, expected, |reader, size| {
            let archive = open_archive(reader, size, file_name)?;
            // A solid 7z block is decompressed from its start for each
            // member asked: stream it once for all, where their detection
            // bytes fit in memory together.
            let together: u64 = archive
                .members()
                .iter()
                .map(|m| detection_len(m.size))
                .sum();
            let mut prefixes = (archive.kind() == ArchiveKind::SevenZip
                && together <= PREFIXES_AT_ONCE)
                .then(|| archive.read_unverified_prefixes(&|m| detection_len(m.size)))
                .map(Vec::into_iter);
            let members = archive
                .members()
                .iter()
                .enumerate()
                .map(|(index, member)| {
                    let prefix = prefixes.as_mut().and_then(Iterator::next);
                    let base = member.name.rsplit('/').next().unwrap_or(&member.name);
                    let read = if let Some(problem) = &member.problem {
                        Err(problem.clone())
                    } else if PatchFormat::from_extension(base).is_some() {
                        archive
                            .read_member(index, max)
                            .map(Candidate::Patch)
                            .map_err(|e| e.to_string())
                    } else if hints::is_note(base) {
                        archive
                            .read_prefix(index, hints::NOTE_BYTES)
                            .map(|text| Candidate::Note(hints::source_in_note(&text)))
                            .map_err(|e| e.to_string())
                    } else if !named_like_rom(base) {
                        // Named like nothing: a ROM if its content says so,
                        // as a loose file's does; else (or unreadable)
                        // nothing to the views.
                        let sniffed = (member.size > 0 && member.size <= max)
                            .then(|| {
                                self.detect_member(&archive, index, base, member.size, prefix)
                                    .ok()
                                    .flatten()
                            })
                            .flatten();
                        Ok(sniffed.map_or(Candidate::Other, Candidate::Rom))
                    } else if member.size > max {
                        Err(format!(
                            "larger ({} bytes) than the largest image the mount builds ({max} bytes)",
                            member.size
                        ))
                    } else {
                        self.detect_member(&archive, index, base, member.size, prefix)
                            .map(|rom| rom.map_or(Candidate::Other, Candidate::Rom))
                            .map_err(|e| e.to_string())
                    };
                    ReadMember {
                        name: member.name.clone(),
                        read,
                    }
                })
                .collect();
            Ok(members)
        })
    }

    /// What detection makes of member `index` (named `name`, `size`
    /// bytes), from what it reads of a loose file (see
    /// [`super::detection_head`]): the first KiB where that settles it,
    /// else its first [`detection_len`] bytes (UNIF files
    /// whole). `prefix` is the latter when a solid block's stream has it
    /// already. `None`: no ROM by its name or its content.
    fn detect_member(
        &self,
        archive: &Archive,
        index: usize,
        name: &str,
        size: u64,
        prefix: Option<Result<Vec<u8>, archive::ArchiveError>>,
    ) -> Result<Option<Detected>, archive::ArchiveError> {
        let prefix = match prefix {
            Some(prefix) => prefix?,
            None => {
                if system::may_detect_from_start(name) {
                    let start = archive.read_unverified_prefix(index, START_LEN.min(size))?;
                    let settled = with_head(&start, size, |head| {
                        system::detect_from_start(name, head).map(|_| Detected::of(name, head))
                    });
                    if let Some(detected) = settled {
                        return Ok(detected);
                    }
                }
                archive.read_unverified_prefix(index, detection_len(size))?
            }
        };
        if prefix.starts_with(b"UNIF") {
            let whole = archive.read_member(index, self.limits.max_image_size)?;
            return Ok(Detected::of(name, &whole));
        }
        Ok(with_head(&prefix, size, |head| Detected::of(name, head)))
    }

    /// What each member read from the archive at `rel_path` is.
    fn classify_members(
        &self,
        rel_path: &str,
        id: FileId,
        members: Vec<ReadMember>,
    ) -> ArchiveMembers {
        // In place: at most one ROM and no folders, which the names tell.
        let candidates = members.iter().filter_map(|m| match &m.read {
            Ok(Candidate::Rom(_)) => Some((&m.name, true)),
            Ok(Candidate::Patch(_)) => Some((&m.name, false)),
            _ => None,
        });
        let (rom_count, foldered) = candidates.fold((0, false), |(roms, foldered), (name, rom)| {
            (roms + usize::from(rom), foldered || name.contains('/'))
        });
        let in_place = rom_count <= 1 && !foldered;
        let mut classes = Vec::new();
        for member in members {
            let source = Source::Member {
                archive: rel_path.to_string(),
                member: member.name.clone(),
            };
            let class = match member.read {
                Err(why) => MemberClass::LeftOut(why),
                Ok(Candidate::Other | Candidate::Note(None)) => continue,
                Ok(Candidate::Note(Some(source))) => MemberClass::Note(Some(source)),
                Ok(Candidate::Patch(bytes)) => {
                    let place = member_place(rel_path, in_place, &member.name, false);
                    let found = Found {
                        name: place.file_name,
                        id,
                        linked: false,
                    };
                    let bytes: Result<Vec<u8>, String> = Ok(bytes);
                    let patch = self.patch_from_bytes(
                        &place.rel_path,
                        &place.folder,
                        &found,
                        source,
                        bytes,
                    );
                    MemberClass::Patch(Arc::new(patch))
                }
                Ok(Candidate::Rom(detected)) => {
                    let place = member_place(rel_path, in_place, &member.name, true);
                    MemberClass::Rom(Arc::new(rom_from_detected(
                        place.rel_path,
                        place.folder,
                        place.file_name,
                        id,
                        base_name(&member.name),
                        source,
                        detected,
                    )))
                }
            };
            classes.push((member.name, class));
        }
        ArchiveMembers {
            in_place,
            members: classes,
            problem: None,
        }
    }

    /// The views' shape of the archive at `rel_path` from its members.
    fn shape(&self, members: Arc<ArchiveMembers>) -> ArchiveListing {
        let mut folders: HashMap<String, ArchiveFolder> = HashMap::new();
        let mut left_out = Vec::new();
        // What the readmes of each of the archive's folders name.
        let mut named: HashMap<&str, Vec<(SourceDigest, &str)>> = HashMap::new();
        for (name, class) in &members.members {
            match class {
                MemberClass::LeftOut(why) => left_out.push((name.clone(), why.clone())),
                MemberClass::Note(None) => {}
                MemberClass::Note(Some(source)) => {
                    let sources = named.entry(folder_of(name)).or_default();
                    if !sources.iter().any(|(seen, _)| seen == source) {
                        sources.push((*source, base_name(name)));
                    }
                }
                MemberClass::Rom(rom) => folders
                    .entry(folder_of(name).to_string())
                    .or_default()
                    .roms
                    .push(rom.clone()),
                MemberClass::Patch(patch) => folders
                    .entry(folder_of(name).to_string())
                    .or_default()
                    .patches
                    .push(patch.clone()),
            }
        }
        if members.problem.is_none() {
            folders.entry(String::new()).or_default();
        }
        for (name, class) in &members.members {
            // A readme beside the patch in the archive that names one ROM.
            if let MemberClass::Patch(patch) = class
                && let Some([(source, note)]) = named.get(folder_of(name)).map(Vec::as_slice)
            {
                let rule = format!("the readme {note} in its archive names a source with {source}");
                lock(&self.archived_hints).insert(patch.rel_path.clone(), (*source, rule));
            }
        }
        // Every folder of a member path is listed by its parent.
        let paths: Vec<String> = folders.keys().cloned().collect();
        for path in paths {
            let mut path = path.as_str();
            while let Some((parent, child)) = path
                .rsplit_once('/')
                .or_else(|| (!path.is_empty()).then_some(("", path)))
            {
                folders
                    .entry(parent.to_string())
                    .or_default()
                    .subdirs
                    .insert(child.to_string());
                path = parent;
            }
        }
        for folder in folders.values_mut() {
            folder.roms.sort_by(|a, b| a.file_name.cmp(&b.file_name));
            folder.patches.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        }
        ArchiveListing {
            in_place: members.in_place,
            folders,
            problem: members.problem.clone(),
            left_out,
            members: Some(members),
        }
    }

    /// The members left out of the archive that shows `rom` in place of
    /// itself, with why (an archive shown as a folder says so in its own
    /// `info/` report); none for a loose ROM.
    pub fn members_left_out_beside(&self, rom: &Rom) -> Vec<(String, String)> {
        let Source::Member { archive, .. } = &rom.source else {
            return Vec::new();
        };
        let listing = self.archive_listing(archive, rom.id);
        if listing.in_place {
            listing.left_out.clone()
        } else {
            Vec::new()
        }
    }

    /// The bytes of `member` of the archive at `archive_rel` (the version
    /// `id`), checked against the CRC32 the archive stores.
    pub(crate) fn read_member(
        &self,
        archive_rel: &str,
        id: &FileId,
        member: &str,
    ) -> Result<Vec<u8>, ReadError> {
        let file_name = archive_rel.rsplit('/').next().unwrap_or(archive_rel);
        let max = self.limits.max_image_size;
        self.backing
            .read_consistent_shared(archive_rel, id, |reader, size| {
                let archive = open_archive(reader, size, file_name)?;
                let index = archive
                    .members()
                    .iter()
                    .position(|m| m.name == member)
                    .ok_or_else(|| io::Error::other(format!("{member} is not in the archive")))?;
                archive.read_member(index, max).map_err(io::Error::other)
            })
    }

    /// The folder `rel_dir` that lies inside an archive shown as a folder,
    /// made from the archive's listing.
    pub(crate) fn archive_dir(&self, rel_dir: &str) -> Option<Arc<DirContents>> {
        let parts: Vec<&str> = rel_dir.split('/').collect();
        // The nearest folder above that is a real one holds the archive.
        for at in (0..parts.len()).rev() {
            let parent = parts[..at].join("/");
            if self.backing.open_folder(&parent).is_err() {
                continue;
            }
            let contents = self.dir(&parent)?;
            let archive_rel = contents.archive_folders.get(parts[at])?.clone();
            let id = self.backing.stat(&archive_rel).ok()?;
            if let Some(cached) = lock(&self.dirs).get(rel_dir)
                && cached.id == id
            {
                return Some(cached.contents.clone());
            }
            let listing = self.archive_listing(&archive_rel, id);
            let folder = listing.folders.get(&parts[at + 1..].join("/"))?;
            let contents = Arc::new(DirContents {
                generation: SCANS.fetch_add(1, Ordering::Relaxed),
                subdirs: folder.subdirs.iter().cloned().collect(),
                roms: folder.roms.clone(),
                patches: folder.patches.clone(),
                access: as_folder(id.access),
                archive: Some((archive_rel, id)),
                ..DirContents::default()
            });
            lock(&self.dirs).insert(
                rel_dir.to_string(),
                super::DirEntryCache {
                    id,
                    contents: contents.clone(),
                    scanned: std::time::Instant::now(),
                },
            );
            return Some(contents);
        }
        None
    }

    /// Adds what the archive `name` of folder `rel_dir` shows to that
    /// folder's `contents`: its ROM and patches in place, or a folder.
    pub(crate) fn add_archive(
        &self,
        rel_dir: &str,
        found: &Found,
        listing: &ArchiveListing,
        contents: &mut DirContents,
    ) {
        // Made only when needed: most archives add one ROM and no note.
        let rel_path = || join(rel_dir, &found.name);
        let path = || self.path_of(&rel_path());
        let mut note = |shown: String| {
            let rel_path = rel_path();
            contents.archive_notes.push(Arc::new(ArchiveNote {
                text: note_text(&rel_path, &shown, listing),
                rel_path,
                name: found.name.clone(),
                id: found.id,
            }));
        };
        if let Some(problem) = &listing.problem {
            log::info!("{}: left out: {problem}", path().display());
            note("nothing".into());
            return;
        }
        for (member, why) in &listing.left_out {
            log::info!("{}: member {member} left out: {why}", path().display());
        }
        if listing.in_place {
            let top = listing.folders.get("");
            if top.is_none_or(|top| top.roms.is_empty()) {
                note(if top.is_some_and(|top| !top.patches.is_empty()) {
                    "its patches, which pair as loose ones do".into()
                } else {
                    "nothing".into()
                });
            }
            if let Some(top) = top {
                contents.roms.extend(top.roms.iter().cloned());
                contents.patches.extend(top.patches.iter().cloned());
            }
            return;
        }
        let (stem, _) = split_name(&found.name);
        if contents.subdirs.iter().any(|d| d == stem) || contents.archive_folders.contains_key(stem)
        {
            let why = format!("nothing: a folder named {stem} is there already");
            log::info!("{}: left out: {}", path().display(), &why[9..]);
            note(why);
            return;
        }
        note(format!("the folder {}/", join(rel_dir, stem)));
        contents.subdirs.push(stem.to_string());
        contents
            .archive_folders
            .insert(stem.to_string(), rel_path());
    }
}

pub(crate) fn base_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// The folder a member lies in inside its archive (`""` at its top).
fn folder_of(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The report of the archive at `rel_path`, shown as `shown`.
fn note_text(rel_path: &str, shown: &str, listing: &ArchiveListing) -> String {
    let mut text = format!("{}\n", text::str_as_text(rel_path));
    text.push_str(&format!("  shown as      {shown}\n"));
    if let Some(problem) = &listing.problem {
        text.push_str(&format!(
            "  cannot be read: {}\n",
            text::str_as_text(problem)
        ));
        return text;
    }
    let mut shown_members = Vec::new();
    for folder in listing.folders.values() {
        shown_members.extend(folder.roms.iter().map(|rom| ("ROM", &rom.rel_path)));
        shown_members.extend(folder.patches.iter().map(|p| ("patch", &p.rel_path)));
    }
    shown_members.sort_by(|a, b| a.1.cmp(b.1));
    text.push_str("\nmembers\n");
    if shown_members.is_empty() && listing.left_out.is_empty() {
        text.push_str("  no ROM or patch\n");
    }
    for (kind, member_path) in shown_members {
        let member = member_path
            .split_once("//")
            .map_or(member_path.as_str(), |(_, m)| m);
        text.push_str(&format!("  {}: {kind}\n", text::str_as_text(member)));
    }
    for (member, why) in &listing.left_out {
        text.push_str(&format!(
            "  {}: left out: {}\n",
            text::str_as_text(member),
            text::str_as_text(why)
        ));
    }
    text
}

/// The words for an archive that cannot be read: the archive layer's own,
/// without the path the backing puts first.
fn archive_problem(error: &ReadError) -> String {
    match error {
        ReadError::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// Whether a file of the backing folder is an archive, by its name.
pub(crate) fn is_archive(name: &str) -> bool {
    archive::is_archive_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Heads laid out one after another on one thread (the kept buffer
        /// reused): each is its prefix, then zeros, as long as its member.
        #[test]
        fn a_head_is_its_prefix_then_zeros(
            members in prop::collection::vec(
                (prop::collection::vec(1u8..=255, 0..3000), 0u64..4000),
                1..12,
            ),
        ) {
            for (prefix, size) in members {
                let prefix = &prefix[..prefix.len().min(size as usize)];
                let mut expected = prefix.to_vec();
                expected.resize(size as usize, 0);
                let head = with_head(prefix, size, <[u8]>::to_vec);
                prop_assert_eq!(head, expected);
            }
        }
    }

    #[test]
    fn a_head_longer_than_the_kept_buffer_takes_a_fresh_one() {
        let size = KEPT_HEAD_MAX as u64 + 1;
        let head = with_head(&[7; 10], size, |head| {
            (
                head.len(),
                head[..10].to_vec(),
                head[10..].iter().all(|&b| b == 0),
            )
        });
        assert_eq!(head, (KEPT_HEAD_MAX + 1, vec![7; 10], true));
    }
}
