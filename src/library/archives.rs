//! Archives in the backing folder, as the views show them: one holding a
//! single ROM (and maybe patches, readmes) shows its ROM in place, as if it
//! lay loose beside the archive; one holding several ROMs, or folders, is a
//! folder named after the archive, mirroring the archive's own folders.
//! Listing reads the archive's directory and, of each ROM, only the bytes
//! detection needs.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::hints::{self, SourceDigest};
use super::{
    Classified, DirContents, FileId, Found, Library, PatchFile, RAW_ROM_EXTENSIONS, Rom, SCANS,
    Source, join, split_name,
};
use crate::backing::archive::{self, Archive, ArchiveKind};
use crate::backing::{Access, ReadError};
use crate::cache::lock;
use crate::patch::any::PatchFormat;
use crate::system;

/// The bytes of a member detection reads: up to the end of the last
/// detection region (the ExHiROM header, past 4 MiB).
const DETECTION_LEN: u64 = 0x41_0200;

/// The most detection bytes of a solid archive's members held at once.
const PREFIXES_AT_ONCE: u64 = 256 << 20;

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
struct ReadMember {
    name: String,
    read: Result<Candidate, String>,
}

#[derive(Debug, PartialEq)]
enum Candidate {
    /// Detection regions, in a buffer as long as the member.
    Rom(Vec<u8>),
    /// The whole patch.
    Patch(Vec<u8>),
    /// A readme, and the one source ROM it names, if it names one.
    Note(Option<SourceDigest>),
    /// Neither, by its name.
    Other,
}

/// The archive `file` (named `file_name`), its directory read.
fn open_archive(file: &File, file_name: &str) -> io::Result<Archive> {
    let mut magic = [0u8; 8];
    let read = std::os::unix::fs::FileExt::read_at(file, &mut magic, 0)?;
    let kind = archive::kind_of(&magic[..read])
        .ok_or_else(|| io::Error::other("not an archive this tool can read"))?;
    Archive::open(file.try_clone()?, file_name, kind).map_err(io::Error::other)
}

/// Whether a member named `name` (its last component) may be a ROM.
fn rom_named(name: &str) -> bool {
    let (_, ext) = split_name(name);
    system::system_for_extension(name).is_some()
        || RAW_ROM_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str())
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
    /// per version.
    pub(crate) fn archive_listing(&self, rel_path: &str, id: FileId) -> Arc<ArchiveListing> {
        if let Some((known, listing)) = lock(&self.archives).get(rel_path)
            && *known == id
        {
            return listing.clone();
        }
        self.header_reads.fetch_add(1, Ordering::Relaxed);
        let listing = Arc::new(match self.read_archive(rel_path, &id) {
            Ok(members) => self.list_members(rel_path, id, members),
            Err(error) => ArchiveListing {
                problem: Some(error.to_string()),
                ..ArchiveListing::default()
            },
        });
        // A read that failed (the archive changing) is tried again.
        if listing.problem.is_none() {
            lock(&self.archives).insert(rel_path.to_string(), (id, listing.clone()));
        }
        listing
    }

    /// The members of the archive at `rel_path`, with what classification
    /// needs of each ROM or patch, all from one version of the archive.
    fn read_archive(&self, rel_path: &str, id: &FileId) -> Result<Vec<ReadMember>, ReadError> {
        let file_name = rel_path.rsplit('/').next().unwrap_or(rel_path);
        let max = self.limits.max_image_size;
        self.backing.read_consistent(rel_path, id, |file, _| {
            let archive = open_archive(file, file_name)?;
            // A solid 7z block is decompressed from its start for each
            // member asked: stream it once for all, where their detection
            // bytes fit in memory together.
            let together: u64 = archive
                .members()
                .iter()
                .map(|m| m.size.min(DETECTION_LEN))
                .sum();
            let mut prefixes = (archive.kind() == ArchiveKind::SevenZip
                && together <= PREFIXES_AT_ONCE)
                .then(|| archive.read_prefixes(DETECTION_LEN))
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
                    } else if !rom_named(base) {
                        Ok(Candidate::Other)
                    } else if member.size > max {
                        Err(format!(
                            "larger ({} bytes) than the largest image the mount builds ({max} bytes)",
                            member.size
                        ))
                    } else {
                        self.member_head(&archive, index, member.size, prefix)
                            .map(Candidate::Rom)
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

    /// The detection regions of member `index` of `size` bytes, as
    /// [`super::detection_regions`] gives a loose file's: the first bytes,
    /// in a buffer as long as the member (UNIF files whole).
    fn member_head(
        &self,
        archive: &Archive,
        index: usize,
        size: u64,
        prefix: Option<Result<Vec<u8>, archive::ArchiveError>>,
    ) -> Result<Vec<u8>, archive::ArchiveError> {
        let prefix = match prefix {
            Some(prefix) => prefix?,
            None => archive.read_prefix(index, DETECTION_LEN.min(size))?,
        };
        if prefix.starts_with(b"UNIF") {
            return archive.read_member(index, self.limits.max_image_size);
        }
        let mut head = vec![0u8; usize::try_from(size).unwrap_or(0)];
        let len = prefix.len().min(head.len());
        head[..len].copy_from_slice(&prefix[..len]);
        Ok(head)
    }

    /// The views' shape of an archive from its members.
    fn list_members(&self, rel_path: &str, id: FileId, members: Vec<ReadMember>) -> ArchiveListing {
        let (archive_dir, archive_name) = rel_path.rsplit_once('/').unwrap_or(("", rel_path));
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
        let mut roms = Vec::new();
        let mut patches = Vec::new();
        let mut left_out = Vec::new();
        // What the readmes of each of the archive's folders name.
        let mut named: HashMap<String, Vec<(SourceDigest, String)>> = HashMap::new();
        for member in members {
            let source = Source::Member {
                archive: rel_path.to_string(),
                member: member.name.clone(),
            };
            let member_path = format!("{rel_path}//{}", member.name);
            // The folder of the views that shows it.
            let folder = if in_place {
                archive_dir.to_string()
            } else {
                let inner = member.name.rsplit_once('/').map_or("", |(dir, _)| dir);
                join(&join(archive_dir, split_name(archive_name).0), inner)
            };
            match member.read {
                Err(why) => left_out.push((member.name, why)),
                Ok(Candidate::Other | Candidate::Note(None)) => {}
                Ok(Candidate::Note(Some(source))) => {
                    let inner = member.name.rsplit_once('/').map_or("", |(dir, _)| dir);
                    let sources = named.entry(inner.to_string()).or_default();
                    if !sources.iter().any(|(seen, _)| *seen == source) {
                        sources.push((source, base_name(&member.name).to_string()));
                    }
                }
                Ok(Candidate::Patch(bytes)) => {
                    let found = Found {
                        name: base_name(&member.name).to_string(),
                        id,
                        linked: false,
                    };
                    let bytes: Result<Vec<u8>, String> = Ok(bytes);
                    let patch = self.patch_from_bytes(&member_path, &folder, &found, source, bytes);
                    patches.push((member.name, Arc::new(patch)));
                }
                Ok(Candidate::Rom(head)) => {
                    // Shown in place of the archive, its info/ report is
                    // named after the archive, as a loose file's after it.
                    let found = Found {
                        name: if in_place {
                            archive_name.to_string()
                        } else {
                            base_name(&member.name).to_string()
                        },
                        id,
                        linked: false,
                    };
                    let name = base_name(&member.name);
                    match self.rom_from_head(&member_path, &folder, &found, name, source, &head) {
                        Classified::Rom(rom) => roms.push((member.name, rom)),
                        _ => left_out.push((member.name, "not a ROM".into())),
                    }
                }
            }
        }
        let mut folders: HashMap<String, ArchiveFolder> = HashMap::new();
        folders.entry(String::new()).or_default();
        let folder_of = |name: &str| name.rsplit_once('/').map_or("", |(dir, _)| dir).to_string();
        for (name, rom) in roms {
            folders.entry(folder_of(&name)).or_default().roms.push(rom);
        }
        for (name, patch) in patches {
            // A readme beside the patch in the archive that names one ROM.
            if let Some([(source, note)]) = named.get(&folder_of(&name)).map(Vec::as_slice) {
                let rule = format!("the readme {note} in its archive names a source with {source}");
                lock(&self.archived_hints).insert(patch.rel_path.clone(), (*source, rule));
            }
            folders
                .entry(folder_of(&name))
                .or_default()
                .patches
                .push(patch);
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
            in_place,
            folders,
            problem: None,
            left_out,
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
        self.backing.read_consistent(archive_rel, id, |file, _| {
            let archive = open_archive(file, file_name)?;
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
            if self.backing.open_dir(&parent).is_err() {
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
        let rel_path = join(rel_dir, &found.name);
        let path = self.path_of(&rel_path);
        if let Some(problem) = &listing.problem {
            log::info!("{}: left out: {problem}", path.display());
            return;
        }
        for (member, why) in &listing.left_out {
            log::info!("{}: member {member} left out: {why}", path.display());
        }
        if listing.in_place {
            if let Some(top) = listing.folders.get("") {
                contents.roms.extend(top.roms.iter().cloned());
                contents.patches.extend(top.patches.iter().cloned());
            }
            return;
        }
        let (stem, _) = split_name(&found.name);
        if contents.subdirs.iter().any(|d| d == stem) || contents.archive_folders.contains_key(stem)
        {
            log::info!(
                "{}: left out: a folder named {stem} is there already",
                path.display()
            );
            return;
        }
        contents.subdirs.push(stem.to_string());
        contents.archive_folders.insert(stem.to_string(), rel_path);
    }
}

fn base_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Whether a file of the backing folder is an archive, by its name.
pub(crate) fn is_archive(name: &str) -> bool {
    archive::is_archive_name(name)
}
