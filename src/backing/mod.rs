//! Where the library's files come from, and the two facts every layer
//! above needs of each: which version of a file it is ([`FileId`]) and who
//! may read it ([`Access`]).
//!
//! A backing is a tree of files that can be listed, identified and read
//! ([`Backing`]); nothing above this module knows which kind it is. The
//! folder on a disk ([`LocalFolder`]) opens every file beneath its root,
//! so no link leads a read out of it, and reads whole under a read lease,
//! so a writer never hands a reader half its old bytes and half its new
//! ones. Archives ([`archive`]) are read on top of either, through
//! [`ReadAt`].

pub mod archive;
mod lease;
mod local;
pub mod s3;

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustix::fs::FileType;
use serde::{Deserialize, Serialize};

pub use local::{LocalFolder, leads_outside};

/// A tree of files: folders to list, files to identify and read. Paths
/// are relative to the root, `/`-separated, empty for the root itself.
pub trait Backing: Send + Sync {
    /// The root as the user named it (a folder's path, or an `s3://` URL),
    /// for messages and to tell one backing's header cache from another's.
    fn root(&self) -> &Path;

    /// `rel` as the user would name it, for messages: reads go through the
    /// methods below.
    fn path_of(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root().to_path_buf()
        } else {
            self.root().join(rel)
        }
    }

    /// The folder `rel_dir`, open for listing: an error if it is none.
    fn open_folder(&self, rel_dir: &str) -> io::Result<Box<dyn Folder + '_>>;

    /// The identity of the file or folder at `rel`, and what kind it is,
    /// following links that stay inside.
    fn stat_with_type(&self, rel: &str) -> io::Result<(FileId, FileType)>;

    /// [`stat_with_type`](Backing::stat_with_type) without the kind.
    fn stat(&self, rel: &str) -> io::Result<FileId> {
        self.stat_with_type(rel).map(|(id, _)| id)
    }

    /// Says that `regions` of file `rel` of `size` bytes will be read soon,
    /// so the backing may start fetching them; no wait, no error.
    fn prefetch(&self, _rel: &str, _size: u64, _regions: &[(u64, u64)]) {}

    /// How many files a scan should read at once: reads of a disk queue in
    /// the kernel, requests to a store wait on the network.
    fn parallel_reads(&self) -> usize {
        8
    }

    /// The file `rel` as an open local file, for the kernel to read
    /// directly (FUSE passthrough); an error where the backing has none.
    fn open_file(&self, rel: &str) -> io::Result<File>;

    /// Runs `read` on the file `rel` (given a reader of it and the version
    /// it reads) while it is the version `expected` (any, for `None`), until
    /// a pass is known intact: `read` returns whether its result is to be
    /// trusted (a pass [`ReadPass::Again`] says whether it made what the
    /// first did). The version read. Use
    /// [`read_consistent`](trait.Backing.html#method.read_consistent).
    fn read_passes(
        &self,
        rel: &str,
        expected: Option<&FileId>,
        read: &mut PassReader<'_>,
    ) -> Result<FileId, ReadError>;
}

/// A [`Backing::read_passes`] callback: given a reader of the file, the
/// version it reads and which pass this is, whether what it made is to be
/// trusted.
pub type PassReader<'a> = dyn FnMut(&Arc<dyn ReadAt>, &FileId, ReadPass) -> io::Result<bool> + 'a;

/// Which read of one attempt a [`Backing::read_passes`] callback makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPass {
    /// The first read: keep what it makes.
    First,
    /// A second read to compare with the first (a writer may have been
    /// busy): say whether it made the same.
    Again,
}

impl dyn Backing + '_ {
    /// What `read` makes of the file `rel` (given a reader and its size),
    /// from bytes that are the version `expected` and that nobody changed
    /// while they were read. A file that is not that version gives
    /// [`ReadError::Changed`].
    pub fn read_consistent<T: PartialEq>(
        &self,
        rel: &str,
        expected: &FileId,
        mut read: impl FnMut(&dyn ReadAt, u64) -> io::Result<T>,
    ) -> Result<T, ReadError> {
        self.read_consistent_shared(rel, expected, |reader, size| read(reader.as_ref(), size))
    }

    /// As [`read_consistent`](Self::read_consistent), with the shared
    /// reader itself (an archive keeps it for its members).
    pub fn read_consistent_shared<T: PartialEq>(
        &self,
        rel: &str,
        expected: &FileId,
        read: impl FnMut(&Arc<dyn ReadAt>, u64) -> io::Result<T>,
    ) -> Result<T, ReadError> {
        self.read_version_shared(rel, Some(expected), read)
            .map(|(_, made)| made)
            .map_err(|failed| failed.error)
    }

    /// As [`read_consistent_shared`](Self::read_consistent_shared) of
    /// whatever version the file is when it is opened (`expected: None`),
    /// and which version that was: for a file not `stat`ed before. A
    /// failure says which version `read` failed on, if it got that far.
    pub fn read_version_shared<T: PartialEq>(
        &self,
        rel: &str,
        expected: Option<&FileId>,
        mut read: impl FnMut(&Arc<dyn ReadAt>, u64) -> io::Result<T>,
    ) -> Result<(FileId, T), Box<FailedRead>> {
        let mut kept: Option<T> = None;
        let mut reading: Option<FileId> = None;
        let version = self.read_passes(rel, expected, &mut |reader, version, pass| {
            reading = Some(*version);
            let made = read(reader, version.size)?;
            Ok(match pass {
                ReadPass::First => {
                    kept = Some(made);
                    true
                }
                ReadPass::Again => kept.as_ref() == Some(&made),
            })
        });
        let version = version.map_err(|error| {
            Box::new(FailedRead {
                version: reading,
                error,
            })
        })?;
        let made = kept.ok_or_else(|| {
            Box::new(FailedRead {
                version: Some(version),
                error: ReadError::Unsettled {
                    path: rel.to_string(),
                    attempts: 0,
                },
            })
        })?;
        Ok((version, made))
    }

    /// The whole file `rel`, exactly as the version `expected` holds it.
    pub fn read_whole(&self, rel: &str, expected: &FileId) -> Result<Vec<u8>, ReadError> {
        self.read_consistent(rel, expected, read_all)
    }
}

/// A folder of a backing, open: what it holds, as of when it was opened
/// (a local folder's later entries may show too).
pub trait Folder: Send + Sync {
    /// The folder's own identity: it moves when entries come and go.
    fn id(&self) -> io::Result<FileId>;

    /// Every entry but `.` and `..`.
    fn list(&self) -> io::Result<Vec<Listed>>;

    /// [`list`](Folder::list) in batches handed to `each` as they are
    /// read, so work on the first can start before the last is listed.
    fn list_in_batches(&self, each: &mut dyn FnMut(Vec<Listed>)) -> io::Result<()> {
        each(self.list()?);
        Ok(())
    }

    /// The identity of entry `name` itself, not what a link leads to.
    fn stat_entry(&self, name: &OsStr) -> io::Result<FileId>;

    /// The kind of entry `name`, where its listing did not say.
    fn entry_type(&self, name: &OsStr) -> io::Result<FileType>;

    /// [`Backing::prefetch`] of the regular file `name` of this folder,
    /// found by its name alone (no path walked, links not followed).
    fn prefetch_entry(&self, _name: &OsStr, _size: u64, _regions: &[(u64, u64)]) {}
}

/// A folder entry as listed, before any `stat`.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: OsString,
    /// An inode number, or any number that orders entries for reading.
    pub ino: u64,
    /// From the folder entry itself (`Unknown` where the filesystem does not
    /// say): a link is a link here, whatever it leads to.
    pub file_type: FileType,
}

/// Why a whole, consistent read of a file failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file is not (or no longer) the version the caller listed: list
    /// its folder again.
    #[error("{path} changed since it was listed")]
    Changed { path: String },
    #[error(
        "{path} kept changing while it was being read ({attempts} tries); \
         try again once nothing is writing to it"
    )]
    Unsettled { path: String, attempts: u32 },
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
}

/// A read that failed, and the version of the file it failed on, if it
/// got that far.
#[derive(Debug)]
pub struct FailedRead {
    pub version: Option<FileId>,
    pub error: ReadError,
}

/// Positional reads of one version of a file, from any number of threads
/// at once.
pub trait ReadAt: Send + Sync {
    /// Reads from `offset` into `buf`; fewer bytes only at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Fills `buf` from `offset`; an error if the file ends first.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(read) => {
                    buf = &mut buf[read..];
                    offset += read as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Fills each `(start, buffer)`: a store asks for them all at once.
    fn read_regions(&self, regions: &mut [(u64, &mut [u8])]) -> io::Result<()> {
        for (start, buf) in regions.iter_mut() {
            self.read_exact_at(buf, *start)?;
        }
        Ok(())
    }
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset).map_or(self.len(), |at| at.min(self.len()));
        let count = buf.len().min(self.len() - start);
        buf[..count].copy_from_slice(&self[start..start + count]);
        Ok(count)
    }
}

/// Exactly `size` bytes from the start of `file`; a file that has fewer
/// now is an error (it was cut short while being read).
pub fn read_all(file: &dyn ReadAt, size: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(size).map_err(io::Error::other)?;
    let mut bytes = vec![0u8; len];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

/// What makes a file the same file: if any of these change, it is read
/// again. Owner and mode are part of it, so a file whose permissions change
/// is shown with the new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    /// A rewrite that puts size and mtime back (`touch -d`) still moves
    /// the change time, which no one can set.
    pub ctime_ns: i128,
    pub access: Access,
    /// What else tells versions apart: 0 for a local file; for an object,
    /// a digest of its ETag (the store's own version tag).
    #[serde(default)]
    pub tag: u128,
}

impl FileId {
    pub fn of(meta: &Metadata) -> FileId {
        Self::from_parts(
            (meta.dev(), meta.ino(), meta.len()),
            (meta.mtime(), meta.mtime_nsec()),
            (meta.ctime(), meta.ctime_nsec()),
            Access::new(meta.uid(), meta.gid(), meta.mode()),
        )
    }

    pub fn of_stat(stat: &rustix::fs::Stat) -> FileId {
        Self::from_parts(
            (
                stat.st_dev,
                stat.st_ino,
                u64::try_from(stat.st_size).unwrap_or(u64::MAX),
            ),
            (stat.st_mtime, stat.st_mtime_nsec as i64),
            (stat.st_ctime, stat.st_ctime_nsec as i64),
            Access::new(stat.st_uid, stat.st_gid, stat.st_mode),
        )
    }

    /// From (device, inode, size) and the modification and change times
    /// as (seconds, nanoseconds).
    fn from_parts(
        (dev, ino, size): (u64, u64, u64),
        mtime: (i64, i64),
        ctime: (i64, i64),
        access: Access,
    ) -> FileId {
        let ns = |(secs, nanos): (i64, i64)| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        FileId {
            dev,
            ino,
            size,
            mtime_ns: ns(mtime),
            ctime_ns: ns(ctime),
            access,
            tag: 0,
        }
    }

    pub fn mtime(&self) -> SystemTime {
        let secs = self.mtime_ns.div_euclid(1_000_000_000);
        let nanos = self.mtime_ns.rem_euclid(1_000_000_000);
        match u64::try_from(secs) {
            Ok(secs) => SystemTime::UNIX_EPOCH + Duration::new(secs, nanos as u32),
            Err(_) => SystemTime::UNIX_EPOCH,
        }
    }
}

/// Who may read a file or folder: owner, group and permission bits, as
/// the kernel checks them (`default_permissions`) for the mount's files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Access {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits only (`0o7777` at most).
    pub mode: u32,
}

/// The bit of each class (owner, group, others) in a mode, from the top.
const CLASS_SHIFTS: [u32; 3] = [6, 3, 0];

/// Read and search (execute) bits of a class, at its lowest position.
const READ: u32 = 0o4;
const SEARCH: u32 = 0o1;

impl Access {
    pub fn new(uid: u32, gid: u32, mode: u32) -> Access {
        Access {
            uid,
            gid,
            mode: mode & 0o7777,
        }
    }

    /// A file made from this one: its read bits, and nothing else (the
    /// mount writes nothing and runs nothing).
    pub fn as_file(self) -> Access {
        Access {
            mode: self.mode & 0o444,
            ..self
        }
    }

    /// A folder mirroring this one: read and search bits, no write bits.
    pub fn as_folder(self) -> Access {
        Access {
            mode: self.mode & 0o555,
            ..self
        }
    }

    /// This file's access (owner and group kept), with the read bit of
    /// each class cleared unless every reader in that class can also read
    /// the file `other` (`folder`: search the folder `other`). Where the
    /// owners or groups differ, a reader's class for `other` is not always
    /// known (their other groups are not), and then every class they could
    /// be in must allow it.
    pub fn narrowed_by(self, other: Access, folder: bool) -> Access {
        let needed = if folder { SEARCH } else { READ };
        let allows = |shift: u32| (other.mode >> shift) & needed != 0;
        let [owner, group, others] = CLASS_SHIFTS.map(allows);
        let same_owner = other.uid == self.uid;
        let same_group = other.gid == self.gid;
        // Not `other`'s owner: in its group or not, and which is unknown
        // unless the groups are the same.
        let as_owner = if same_owner { owner } else { group && others };
        let as_group = (same_owner || owner) && group && (same_group || others);
        let as_others = (same_owner || owner) && if same_group { others } else { group && others };
        let mut mode = self.mode;
        for (allowed, shift) in [as_owner, as_group, as_others]
            .into_iter()
            .zip(CLASS_SHIFTS)
        {
            if !allowed {
                mode &= !(READ << shift);
            }
        }
        Access { mode, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::{Access, Backing, FileId, LocalFolder, ReadError};
    use std::io;

    /// A listing in batches hands on every entry once, `batch` at a time.
    #[test]
    fn a_listing_comes_in_batches_of_the_size_asked() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..10 {
            std::fs::write(dir.path().join(format!("f{i}")), b"").unwrap();
        }
        let fd = std::fs::File::open(dir.path()).unwrap();
        let mut sizes = Vec::new();
        let mut names = Vec::new();
        LocalFolder::list_in_batches(&fd, 3, &mut |batch| {
            sizes.push(batch.len());
            names.extend(batch.into_iter().map(|entry| entry.name));
        })
        .unwrap();
        names.sort();
        let expected: Vec<std::ffi::OsString> = (0..10).map(|i| format!("f{i}").into()).collect();
        assert_eq!((sizes, names), (vec![3, 3, 3, 1], expected));
    }

    /// A read of any version says which it read, the one a `stat` gives;
    /// a read of another version is refused before anything is read, and a
    /// read that fails says the version it failed on.
    #[test]
    fn a_read_says_which_version_it_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), b"first").unwrap();
        let folder = LocalFolder::new(dir.path()).unwrap();
        let backing: &dyn Backing = &folder;
        let stated = folder.stat("a.bin").unwrap();
        let (version, bytes) = backing
            .read_version_shared("a.bin", None, |reader, size| {
                let mut bytes = vec![0; size as usize];
                reader.read_exact_at(&mut bytes, 0)?;
                Ok(bytes)
            })
            .unwrap();
        assert_eq!((version, bytes.as_slice()), (stated, &b"first"[..]));

        let other = FileId {
            size: stated.size + 1,
            ..stated
        };
        let mut called = false;
        let refused = backing
            .read_version_shared("a.bin", Some(&other), |_, _| {
                called = true;
                Ok(())
            })
            .unwrap_err();
        assert!(!called);
        assert!(refused.version.is_none());
        assert!(matches!(refused.error, ReadError::Changed { .. }));

        let failed = backing
            .read_version_shared("a.bin", None, |_, _| -> io::Result<()> {
                Err(io::Error::other("damaged"))
            })
            .unwrap_err();
        assert_eq!(failed.version, Some(stated));
        assert!(failed.error.to_string().contains("damaged"));
    }

    const ALICE: u32 = 1000;
    const BOB: u32 = 1001;
    const USERS: u32 = 100;
    const STAFF: u32 = 50;

    fn file(uid: u32, gid: u32, mode: u32) -> Access {
        Access::new(uid, gid, mode).as_file()
    }

    #[test]
    fn files_and_folders_lose_write_bits() {
        assert_eq!(Access::new(1, 2, 0o100_764).as_file().mode, 0o444 & 0o764);
        assert_eq!(Access::new(1, 2, 0o40_775).as_folder().mode, 0o555);
        assert_eq!(Access::new(1, 2, 0o4_755).as_file().mode, 0o444);
    }

    #[test]
    fn same_owner_and_group_intersect() {
        let rom = file(ALICE, USERS, 0o644);
        for (patch, want) in [(0o644, 0o444), (0o640, 0o440), (0o600, 0o400), (0o000, 0)] {
            let got = rom.narrowed_by(file(ALICE, USERS, patch), false);
            assert_eq!(
                (got.uid, got.gid, got.mode),
                (ALICE, USERS, want),
                "{patch:o}"
            );
        }
    }

    #[test]
    fn another_owner_needs_group_and_others() {
        let rom = file(ALICE, USERS, 0o644);
        // Bob's private patch: Alice cannot read it, so nobody but Bob
        // (who is not the patched file's owner) could: nobody.
        assert_eq!(rom.narrowed_by(file(BOB, USERS, 0o600), false).mode, 0);
        // Bob's group may read it, others not: only the ROM's group
        // readers are surely in Bob's group (Alice may not be).
        assert_eq!(rom.narrowed_by(file(BOB, USERS, 0o640), false).mode, 0o040);
        assert_eq!(rom.narrowed_by(file(BOB, USERS, 0o644), false).mode, 0o444);
        // A group that is not the ROM's: every class needs both bits.
        assert_eq!(rom.narrowed_by(file(BOB, STAFF, 0o640), false).mode, 0);
        assert_eq!(rom.narrowed_by(file(BOB, STAFF, 0o644), false).mode, 0o444);
        // Everyone but Bob may read it: Alice may; a group reader or
        // another user of the ROM might be Bob.
        assert_eq!(rom.narrowed_by(file(BOB, USERS, 0o044), false).mode, 0o400);
    }

    #[test]
    fn folders_are_searched() {
        let patch = file(ALICE, USERS, 0o644);
        let folder = Access::new(ALICE, USERS, 0o711);
        assert_eq!(patch.narrowed_by(folder, true).mode, 0o444);
        let private = Access::new(ALICE, USERS, 0o700);
        assert_eq!(patch.narrowed_by(private, true).mode, 0o400);
    }
}
