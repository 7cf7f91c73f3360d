//! A backing folder on a filesystem. Every open goes through `openat2` with
//! `RESOLVE_BENEATH` from the folder's root, so the kernel itself refuses
//! any path that would leave it, through `..` or through a link, even one
//! swapped in after the folder was listed. Links inside the folder work,
//! absolute ones too (they are rewritten to the same place, relative to
//! the root, before the kernel checks them again).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::lease::{self, Lease};
use super::{Backing, FileId, Folder, Listed, PassReader, ReadAt, ReadError, ReadPass};

/// Entries a listing hands on at a time (see [`Folder::list_in_batches`]).
const LIST_BATCH: usize = 256;

/// Links followed while resolving one path (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// Tries to read a file whole while nobody changes it, and the first pause
/// between tries (doubled each time): about 1.3 s in all before `EIO`.
const READ_ATTEMPTS: u32 = 8;
const FIRST_PAUSE: Duration = Duration::from_millis(10);

/// Without leases, a file modified this recently may still be in the middle
/// of a write: it is read twice, and used only if both reads agree.
const SETTLE: Duration = Duration::from_secs(1);

/// The error of a path that leads out of the backing folder.
#[derive(Debug, thiserror::Error)]
#[error("it leads outside the backing folder (a link to a place outside it, or `..`)")]
struct LeadsOutside;

/// Whether `error` says a path leads out of the backing folder.
pub fn leads_outside(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<LeadsOutside>())
}

fn outside() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, LeadsOutside)
}

pub struct LocalFolder {
    root: PathBuf,
    /// The root's absolute names (as given, and with every link resolved):
    /// an absolute link to a place under one of them stays inside.
    absolute_roots: Vec<PathBuf>,
    root_fd: OwnedFd,
}

impl LocalFolder {
    pub fn new(root: &Path) -> io::Result<LocalFolder> {
        let root_fd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut absolute_roots = vec![std::path::absolute(root)?];
        let canonical = std::fs::canonicalize(root)?;
        if !absolute_roots.contains(&canonical) {
            absolute_roots.push(canonical);
        }
        Ok(LocalFolder {
            root: root.to_path_buf(),
            absolute_roots,
            root_fd,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `rel` (relative, `/`-separated) for messages and for
    /// tools that need a path; reads go through the methods below.
    pub fn path_of(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// Opens `rel` with `flags`, refusing any way out of the folder.
    fn open_beneath(&self, rel: &str, flags: OFlags) -> io::Result<OwnedFd> {
        let rel = if rel.is_empty() { "." } else { rel };
        let open = |path: &OsStr| {
            let how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            loop {
                match rustix::fs::openat2(
                    &self.root_fd,
                    path,
                    flags | OFlags::CLOEXEC,
                    Mode::empty(),
                    how,
                ) {
                    // A rename anywhere in the system during the lookup:
                    // the kernel asks to try again.
                    Err(Errno::AGAIN) => continue,
                    other => return other,
                }
            }
        };
        match open(OsStr::new(rel)) {
            Ok(fd) => Ok(fd),
            // An absolute link (or `..` past the root) on the way: where it
            // names a place inside, open that instead; the kernel checks the
            // new path as strictly.
            Err(Errno::XDEV) => {
                let inside = self.without_absolute_links(rel)?;
                open(&inside).map_err(|error| match error {
                    Errno::XDEV => outside(),
                    other => other.into(),
                })
            }
            Err(Errno::NOSYS) => Err(io::Error::other(
                "this kernel cannot open files beneath a folder (openat2 needs Linux 5.6 or later)",
            )),
            Err(other) => Err(other.into()),
        }
    }

    /// `rel` with every link on its way replaced by where it leads, as a
    /// path relative to the root; an error if any leads outside. Only link
    /// texts are read (with `readlinkat`), nothing is opened.
    fn without_absolute_links(&self, rel: &str) -> io::Result<OsString> {
        let mut resolved: Vec<OsString> = Vec::new();
        let mut pending: Vec<OsString> = Path::new(rel)
            .components()
            .rev()
            .map(|c| c.as_os_str().to_os_string())
            .collect();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            match part.as_bytes() {
                b"." | b"" => continue,
                b".." => {
                    resolved.pop().ok_or_else(outside)?;
                    continue;
                }
                _ => {}
            }
            resolved.push(part);
            let candidate = join_os(&resolved);
            let target = match rustix::fs::readlinkat(&self.root_fd, &candidate, Vec::new()) {
                Ok(target) => PathBuf::from(OsString::from_vec(target.into_bytes())),
                // Not a link: a folder (or the file itself, last).
                Err(Errno::INVAL) => continue,
                Err(other) => return Err(other.into()),
            };
            resolved.pop();
            links += 1;
            if links > MAX_LINKS {
                return Err(Errno::LOOP.into());
            }
            let relative = if target.is_absolute() {
                resolved.clear();
                self.absolute_roots
                    .iter()
                    .find_map(|root| target.strip_prefix(root).ok())
                    .ok_or_else(outside)?
                    .to_path_buf()
            } else {
                target
            };
            pending.extend(
                relative
                    .components()
                    .rev()
                    .filter(|c| !matches!(c, Component::RootDir))
                    .map(|c| c.as_os_str().to_os_string()),
            );
        }
        Ok(join_os(&resolved))
    }

    /// The identity of the file or folder at `rel`, following links that
    /// stay inside.
    pub fn stat(&self, rel: &str) -> io::Result<FileId> {
        self.stat_with_type(rel).map(|(id, _)| id)
    }

    /// [`stat`](Self::stat), and what kind of file it found.
    pub fn stat_with_type(&self, rel: &str) -> io::Result<(FileId, FileType)> {
        let fd = self.open_beneath(rel, OFlags::PATH)?;
        let stat = rustix::fs::fstat(&fd)?;
        Ok((
            FileId::of_stat(&stat),
            FileType::from_raw_mode(stat.st_mode),
        ))
    }

    /// The folder `rel_dir`, open for listing.
    pub fn open_dir(&self, rel_dir: &str) -> io::Result<OwnedFd> {
        self.open_beneath(rel_dir, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// The identity of the folder `dir` (as [`open_dir`](Self::open_dir)
    /// gave it).
    pub fn stat_fd(dir: impl AsFd) -> io::Result<FileId> {
        Ok(FileId::of_stat(&rustix::fs::fstat(dir)?))
    }

    /// The entry `name` of the open folder `dir` itself, not what a link
    /// leads to.
    pub fn stat_entry(dir: impl AsFd, name: &OsStr) -> io::Result<FileId> {
        Ok(FileId::of_stat(&rustix::fs::statat(
            dir,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
        )?))
    }

    /// The file type of the entry `name` of `dir`, for filesystems whose
    /// listings do not say.
    pub fn entry_type(dir: impl AsFd, name: &OsStr) -> io::Result<FileType> {
        let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(FileType::from_raw_mode(stat.st_mode))
    }

    /// Every entry of the open folder `dir` but `.` and `..`.
    pub fn list(dir: impl AsFd) -> io::Result<Vec<Listed>> {
        let mut listed = Vec::new();
        Self::list_in_batches(dir, usize::MAX, &mut |batch| listed.extend(batch))?;
        Ok(listed)
    }

    /// [`list`](Self::list) handed to `each` `batch` entries at a time
    /// (the last batch maybe fewer, none for an empty folder).
    pub fn list_in_batches(
        dir: impl AsFd,
        batch: usize,
        each: &mut dyn FnMut(Vec<Listed>),
    ) -> io::Result<()> {
        let mut listed = Vec::new();
        for entry in rustix::fs::Dir::read_from(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            listed.push(Listed {
                name: OsString::from_vec(name.to_vec()),
                ino: entry.ino(),
                file_type: entry.file_type(),
            });
            if listed.len() >= batch {
                each(std::mem::take(&mut listed));
            }
        }
        if !listed.is_empty() {
            each(listed);
        }
        Ok(())
    }

    /// The regular file `rel`, open for reading. Opened without blocking,
    /// so a FIFO swapped in for a file cannot hang the caller.
    pub fn open_file(&self, rel: &str) -> io::Result<File> {
        self.open_file_with_id(rel).map(|(file, _)| file)
    }

    /// [`open_file`](Self::open_file), and the identity of what it opened
    /// (from the one `fstat` the type check makes anyway).
    fn open_file_with_id(&self, rel: &str) -> io::Result<(File, FileId)> {
        let fd = self.open_beneath(rel, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)?;
        let stat = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok((File::from(fd), FileId::of_stat(&stat)))
    }

    /// Asks the kernel to start reading `regions` of the file `rel` of
    /// `size` bytes (clipped to it) into the page cache, without waiting.
    pub fn prefetch(&self, rel: &str, size: u64, regions: &[(u64, u64)]) {
        if let Ok(file) = self.open_file(rel) {
            advise_will_need(&file, size, regions);
        }
    }

    /// [`prefetch`](Self::prefetch) of the entry `name` of the open folder
    /// `dir`, a regular file a moment ago: opened by its name alone (no
    /// path walked, links not followed), as a listing of thousands of
    /// files wants.
    pub fn prefetch_entry(dir: impl AsFd, name: &OsStr, size: u64, regions: &[(u64, u64)]) {
        let flags =
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if let Ok(file) = rustix::fs::openat(dir, name, flags, Mode::empty()) {
            advise_will_need(&file, size, regions);
        }
    }
}

impl Backing for LocalFolder {
    fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, rel: &str) -> PathBuf {
        LocalFolder::path_of(self, rel)
    }

    fn open_folder(&self, rel_dir: &str) -> io::Result<Box<dyn Folder + '_>> {
        Ok(Box::new(OpenFolder(self.open_dir(rel_dir)?)))
    }

    fn stat_with_type(&self, rel: &str) -> io::Result<(FileId, FileType)> {
        LocalFolder::stat_with_type(self, rel)
    }

    fn prefetch(&self, rel: &str, size: u64, regions: &[(u64, u64)]) {
        LocalFolder::prefetch(self, rel, size, regions);
    }

    fn open_file(&self, rel: &str) -> io::Result<File> {
        LocalFolder::open_file(self, rel)
    }

    /// Reads under a read lease where the filesystem has them; else
    /// between two identical identities, and for a file changed in the
    /// last second, only when two reads agree. Retries a few times, then
    /// says the file is unsettled.
    fn read_passes(
        &self,
        rel: &str,
        expected: Option<&FileId>,
        read: &mut PassReader<'_>,
    ) -> Result<FileId, ReadError> {
        let io_error = |source| ReadError::Io {
            path: rel.to_string(),
            source,
        };
        let changed = || ReadError::Changed {
            path: rel.to_string(),
        };
        let mut pause = FIRST_PAUSE;
        for attempt in 1..=READ_ATTEMPTS {
            let (file, before) = self.open_file_with_id(rel).map_err(io_error)?;
            let file = Arc::new(file);
            let reader: Arc<dyn ReadAt> = file.clone();
            if expected.is_some_and(|expected| before != *expected) {
                return Err(changed());
            }
            let mut once = || read(&reader, &before, ReadPass::First).map_err(io_error);
            let intact = match lease::take(&file) {
                Lease::Held(lease) => {
                    once()?;
                    if lease.unbroken() {
                        // Nobody had the file open for writing when the
                        // lease was taken, nor opened it so since: what was
                        // read is the version `before` names, with no need
                        // to ask again. The file is closed on return, which
                        // ends the lease, unless what was read kept a
                        // reader of it.
                        if Arc::strong_count(&file) == 2 {
                            lease.end_at_close();
                        }
                        return Ok(before);
                    }
                    false
                }
                Lease::Unavailable if !recently(before.mtime()) => once()?,
                // A writer, or a file that may be in the middle of a write:
                // read twice, and trust it only if both reads agree.
                Lease::WritersPresent | Lease::Unavailable => {
                    once()?;
                    read(&reader, &before, ReadPass::Again).map_err(io_error)?
                }
            };
            let after =
                FileId::of_stat(&rustix::fs::fstat(&*file).map_err(|e| io_error(e.into()))?);
            if after != before {
                return Err(changed());
            }
            if intact {
                return Ok(before);
            }
            if attempt < READ_ATTEMPTS {
                std::thread::sleep(pause);
                pause *= 2;
            }
        }
        Err(ReadError::Unsettled {
            path: rel.to_string(),
            attempts: READ_ATTEMPTS,
        })
    }
}

/// Asks the kernel to read `regions` of `file` (`size` bytes, clipped to
/// it) into the page cache, without waiting.
fn advise_will_need(file: impl AsFd, size: u64, regions: &[(u64, u64)]) {
    for &(start, end) in regions {
        let end = end.min(size);
        if start < end {
            let _ = rustix::fs::fadvise(
                &file,
                start,
                std::num::NonZeroU64::new(end - start),
                rustix::fs::Advice::WillNeed,
            );
        }
    }
}

/// A folder of a [`LocalFolder`], open.
struct OpenFolder(OwnedFd);

impl Folder for OpenFolder {
    fn id(&self) -> io::Result<FileId> {
        LocalFolder::stat_fd(&self.0)
    }

    fn list(&self) -> io::Result<Vec<Listed>> {
        LocalFolder::list(&self.0)
    }

    fn list_in_batches(&self, each: &mut dyn FnMut(Vec<Listed>)) -> io::Result<()> {
        LocalFolder::list_in_batches(&self.0, LIST_BATCH, each)
    }

    fn stat_entry(&self, name: &OsStr) -> io::Result<FileId> {
        LocalFolder::stat_entry(&self.0, name)
    }

    fn entry_type(&self, name: &OsStr) -> io::Result<FileType> {
        LocalFolder::entry_type(&self.0, name)
    }

    fn prefetch_entry(&self, name: &OsStr, size: u64, regions: &[(u64, u64)]) {
        LocalFolder::prefetch_entry(&self.0, name, size, regions);
    }
}

/// Whether `mtime` is within [`SETTLE`] of now, either way (clocks of
/// network storage drift).
fn recently(mtime: SystemTime) -> bool {
    let now = SystemTime::now();
    let apart = now
        .duration_since(mtime)
        .or_else(|_| mtime.duration_since(now))
        .unwrap_or(Duration::ZERO);
    apart < SETTLE
}

fn join_os(parts: &[OsString]) -> OsString {
    let mut path = OsString::new();
    for part in parts {
        if !path.is_empty() {
            path.push("/");
        }
        path.push(part);
    }
    path
}
