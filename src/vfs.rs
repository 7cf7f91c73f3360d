//! The contract between the filesystem's core (library scan, virtual tree,
//! cache: plain Rust) and the thin FUSE adapter in `fs.rs`. The adapter
//! knows nothing of ROMs; the core knows nothing of FUSE.

use std::ffi::OsString;
use std::time::SystemTime;

/// Inode number of the mount's root folder.
pub const ROOT_INO: u64 = 1;

/// Errors the core reports; the adapter maps each to an errno.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FsError {
    /// ENOENT
    #[error("no such file or folder")]
    NotFound,
    /// ENOTDIR
    #[error("not a folder")]
    NotADirectory,
    /// EISDIR
    #[error("is a folder")]
    IsADirectory,
    /// EROFS: the mount never writes.
    #[error("the mount is read-only")]
    ReadOnly,
    /// EBADF: a handle that was never opened or is already released.
    #[error("bad file handle")]
    BadHandle,
    /// EIO, with the reason (also logged and shown in `info/`).
    #[error("{0}")]
    Io(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Directory,
    File,
}

/// What `stat` shows of a node. `size` is exact: a full read returns that
/// many bytes. Owner, group and permission bits are those of what the node
/// is made from; the kernel checks them (`default_permissions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes {
    pub ino: u64,
    pub kind: NodeKind,
    pub size: u64,
    pub mtime: SystemTime,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (never a write bit).
    pub perm: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: OsString,
    pub attributes: Attributes,
}

/// A folder's entries: its few own (folders, notes) and then its files,
/// which stay shared with the filesystem's memo of the listing (a folder
/// of ten thousand is not copied for each `opendir`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirEntries {
    pub head: Vec<DirEntry>,
    pub files: std::sync::Arc<Vec<DirEntry>>,
}

impl DirEntries {
    pub fn iter(&self) -> impl Iterator<Item = &DirEntry> {
        self.head.iter().chain(self.files.iter())
    }

    pub fn len(&self) -> usize {
        self.head.len() + self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Vec<DirEntry>> for DirEntries {
    fn from(head: Vec<DirEntry>) -> Self {
        DirEntries {
            head,
            files: Default::default(),
        }
    }
}

impl std::ops::Index<usize> for DirEntries {
    type Output = DirEntry;
    fn index(&self, at: usize) -> &DirEntry {
        match at.checked_sub(self.head.len()) {
            None => &self.head[at],
            Some(at) => &self.files[at],
        }
    }
}

impl IntoIterator for DirEntries {
    type Item = DirEntry;
    type IntoIter = std::iter::Chain<std::vec::IntoIter<DirEntry>, std::vec::IntoIter<DirEntry>>;
    fn into_iter(self) -> Self::IntoIter {
        let files = std::sync::Arc::unwrap_or_clone(self.files);
        self.head.into_iter().chain(files)
    }
}

impl<'a> IntoIterator for &'a DirEntries {
    type Item = &'a DirEntry;
    type IntoIter =
        std::iter::Chain<std::slice::Iter<'a, DirEntry>, std::slice::Iter<'a, DirEntry>>;
    fn into_iter(self) -> Self::IntoIter {
        self.head.iter().chain(self.files.iter())
    }
}

/// An open file.
#[derive(Debug)]
pub struct Opened {
    pub handle: u64,
    /// True when the file's source has not changed since the kernel last
    /// cached it: the adapter replies with FOPEN_KEEP_CACHE. False makes the
    /// kernel drop its cached pages of the file.
    pub keep_cache: bool,
    /// A file, open, that is the virtual file byte for byte (the backing
    /// file itself, or a built image kept in a file): the adapter may let
    /// the kernel read it directly (FUSE passthrough). Reads on `handle`
    /// still work if it does not.
    pub backing: Option<std::fs::File>,
}

/// Bytes a read returns: a range of an image the core already holds, so
/// the adapter can reply from it without copying it first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBytes {
    image: std::sync::Arc<crate::cache::Image>,
    range: std::ops::Range<usize>,
}

impl ReadBytes {
    /// `range` of `image`, cut to the image's end.
    pub fn new(image: std::sync::Arc<crate::cache::Image>, range: std::ops::Range<usize>) -> Self {
        let end = range.end.min(image.len());
        let start = range.start.min(end);
        ReadBytes {
            image,
            range: start..end,
        }
    }
}

impl std::ops::Deref for ReadBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.image.get(self.range.clone()).unwrap_or_default()
    }
}

impl From<Vec<u8>> for ReadBytes {
    fn from(bytes: Vec<u8>) -> Self {
        let len = bytes.len();
        ReadBytes::new(std::sync::Arc::new(bytes.into()), 0..len)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub files: u64,
    pub bytes: u64,
}

/// The read-only filesystem as the adapter sees it. Every method may be
/// called from several threads at once.
pub trait VirtualFs: Send + Sync + 'static {
    fn lookup(&self, parent: u64, name: &std::ffi::OsStr) -> Result<Attributes, FsError>;
    fn getattr(&self, ino: u64) -> Result<Attributes, FsError>;
    /// Every entry of a folder (without `.` and `..`), with attributes for
    /// readdirplus.
    fn readdir(&self, ino: u64) -> Result<DirEntries, FsError>;
    fn open(&self, ino: u64) -> Result<Opened, FsError>;
    /// Up to `size` bytes at `offset`; fewer only at the end of the file.
    fn read(&self, handle: u64, offset: u64, size: u32) -> Result<Vec<u8>, FsError>;
    /// [`VirtualFs::read`] without the copy: what the adapter calls.
    fn read_shared(&self, handle: u64, offset: u64, size: u32) -> Result<ReadBytes, FsError> {
        self.read(handle, offset, size).map(ReadBytes::from)
    }
    fn release(&self, handle: u64);
    /// Gives the file at `ino` a new inode number from its next lookup on
    /// (the old number keeps working for whoever holds it). The adapter
    /// needs this when the kernel ties the old number to a backing file
    /// that no longer matches.
    fn renumber(&self, ino: u64);
    fn statfs(&self) -> FsStats;
}

/// A shared filesystem is a filesystem: the caller keeps a handle to
/// inspect it (cache use, statistics) while it is mounted.
impl<T: VirtualFs> VirtualFs for std::sync::Arc<T> {
    fn lookup(&self, parent: u64, name: &std::ffi::OsStr) -> Result<Attributes, FsError> {
        (**self).lookup(parent, name)
    }
    fn getattr(&self, ino: u64) -> Result<Attributes, FsError> {
        (**self).getattr(ino)
    }
    fn readdir(&self, ino: u64) -> Result<DirEntries, FsError> {
        (**self).readdir(ino)
    }
    fn open(&self, ino: u64) -> Result<Opened, FsError> {
        (**self).open(ino)
    }
    fn read(&self, handle: u64, offset: u64, size: u32) -> Result<Vec<u8>, FsError> {
        (**self).read(handle, offset, size)
    }
    fn read_shared(&self, handle: u64, offset: u64, size: u32) -> Result<ReadBytes, FsError> {
        (**self).read_shared(handle, offset, size)
    }
    fn release(&self, handle: u64) {
        (**self).release(handle)
    }
    fn renumber(&self, ino: u64) {
        (**self).renumber(ino)
    }
    fn statfs(&self) -> FsStats {
        (**self).statfs()
    }
}

#[cfg(test)]
mod tests {
    use super::ReadBytes;
    use std::sync::Arc;

    #[test]
    fn read_bytes_is_the_range_cut_to_the_image_end() {
        let image = Arc::new(crate::cache::Image::from((0u8..10).collect::<Vec<u8>>()));
        assert_eq!(&*ReadBytes::new(image.clone(), 2..5), &[2, 3, 4]);
        assert_eq!(&*ReadBytes::new(image.clone(), 8..20), &[8, 9]);
        assert!(ReadBytes::new(image.clone(), 12..20).is_empty());
        assert_eq!(&*ReadBytes::from(vec![7, 8]), &[7, 8]);
    }
}
