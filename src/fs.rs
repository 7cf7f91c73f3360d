//! The fuser adapter: translates FUSE requests into calls on a
//! [`VirtualFs`] and its answers into replies. Thin on purpose: it knows
//! nothing of ROMs, only inodes, attributes, folders and bytes.
//!
//! Everything that would write gets `EROFS`. Attributes and entries live in
//! the kernel for [`TTL`] so a backing file that changes is noticed quickly;
//! a file the core reports as changed on `open` has its cached attributes
//! dropped at once, so its new size is used for the read that follows.
//!
//! A file the core says is its backing file byte for byte is handed to the
//! kernel (FUSE passthrough, Linux 6.9+, root): reads then go straight to
//! the backing file, as fast as reading it directly, and build no image.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BackingId, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem,
    FopenFlags, Generation, INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, Notifier,
    OpenAccMode, OpenFlags, PollEvents, PollFlags, PollNotifier, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl,
    ReplyLseek, ReplyOpen, ReplyPoll, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};

use crate::cache::lock;
use crate::vfs::{Attributes, DirEntries, FsError, NodeKind, Opened, ROOT_INO, VirtualFs};

/// How long the kernel may trust an entry or attributes without asking
/// again. Short, so changed backing files show up; never zero, which would
/// make the kernel look up every entry again after each readdir.
pub const TTL: Duration = Duration::from_secs(1);

/// The largest read request we ask the kernel for (it also sets how many
/// pages a request may carry).
const MAX_REQUEST: u32 = 1 << 20;

/// Block size reported by `stat`: tools that size their reads by it (cp,
/// cat) then ask for large reads, which FUSE serves much faster.
const BLOCK_SIZE: u32 = 128 * 1024;

/// Maps a core error to the errno the caller sees.
pub fn errno(error: &FsError) -> Errno {
    match error {
        FsError::NotFound => Errno::ENOENT,
        FsError::NotADirectory => Errno::ENOTDIR,
        FsError::IsADirectory => Errno::EISDIR,
        FsError::ReadOnly => Errno::EROFS,
        FsError::BadHandle => Errno::EBADF,
        FsError::Io(_) => Errno::EIO,
    }
}

/// A snapshot of one folder's entries, taken at `opendir`, so a listing
/// read in several requests is consistent even if the folder changes.
struct DirSnapshot {
    ino: u64,
    entries: DirEntries,
}

/// The `fuser::Filesystem` over any [`VirtualFs`].
pub struct FuseAdapter<F: VirtualFs> {
    fs: F,
    /// Set once the session exists; used to drop the kernel's cached
    /// attributes of a file whose source changed.
    notifier: Arc<OnceLock<Notifier>>,
    dirs: Mutex<HashMap<u64, Arc<DirSnapshot>>>,
    next_dir_handle: AtomicU64,
    /// Parent of each folder seen, for `..` entries.
    parents: Mutex<HashMap<u64, u64>>,
    /// Whether the kernel agreed to read backing files directly (FUSE
    /// passthrough) and we may ask it to.
    passthrough: AtomicBool,
    io_modes: Mutex<IoModes>,
}

/// How the kernel reads an open file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IoMode {
    /// Through the kernel's page cache of the virtual file, filled by us.
    Cached,
    /// Straight from the backing file (FUSE passthrough).
    Passthrough,
}

/// One backing file lent to the kernel for an inode's passthrough opens.
struct Lent {
    id: BackingId,
    /// Device and inode of the backing file.
    file: (u64, u64),
    opens: usize,
}

/// The kernel's rules for an inode's open files, mirrored (breaking them
/// fails the open with EIO): while an inode has passthrough opens, every
/// open of it is a passthrough open of the same backing file; while it has
/// cached opens, none is a passthrough open.
#[derive(Default)]
struct IoModes {
    cached_opens: HashMap<u64, usize>,
    lent: HashMap<u64, Lent>,
    handles: HashMap<u64, (u64, IoMode)>,
}

impl IoModes {
    fn has_cached_opens(&self, ino: u64) -> bool {
        self.cached_opens.get(&ino).is_some_and(|&n| n > 0)
    }

    fn closed(&mut self, handle: u64) {
        let Some((ino, mode)) = self.handles.remove(&handle) else {
            return;
        };
        match mode {
            IoMode::Cached => {
                if let Some(n) = self.cached_opens.get_mut(&ino) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.cached_opens.remove(&ino);
                    }
                }
            }
            IoMode::Passthrough => {
                if let Some(lent) = self.lent.get_mut(&ino) {
                    lent.opens = lent.opens.saturating_sub(1);
                    if lent.opens == 0 {
                        // Dropping the id closes it; the kernel keeps the
                        // file for opens it still has.
                        self.lent.remove(&ino);
                    }
                }
            }
        }
    }
}

impl<F: VirtualFs> FuseAdapter<F> {
    /// An adapter over `fs`, whose nodes carry their own owners.
    pub fn new(fs: F) -> Self {
        FuseAdapter {
            fs,
            notifier: Arc::new(OnceLock::new()),
            dirs: Mutex::new(HashMap::new()),
            next_dir_handle: AtomicU64::new(1),
            parents: Mutex::new(HashMap::new()),
            passthrough: AtomicBool::new(false),
            io_modes: Mutex::new(IoModes::default()),
        }
    }

    /// The source of `ino` changed: drops the kernel's cached attributes
    /// (not the pages: an open without FOPEN_KEEP_CACHE does that) so the
    /// reads and `stat` that follow see the new size. Only spinlocks in the
    /// kernel, so safe to send while the open is pending.
    fn forget_attributes(&self, ino: u64) {
        if let Some(notifier) = self.notifier.get()
            && let Err(error) = notifier.inval_inode(INodeNo(ino), -1, 0)
        {
            log::debug!("invalidating inode {ino}: {error}");
        }
    }

    /// Replies to an open of inode `ino` for which the core gave `opened`,
    /// choosing how the kernel reads it.
    fn reply_open(&self, ino: u64, opened: Opened, reply: ReplyOpen) {
        let handle = opened.handle;
        if !opened.keep_cache {
            self.forget_attributes(ino);
        }
        let backing = opened.backing.as_ref().and_then(|file| {
            file.metadata()
                .ok()
                .map(|meta| (file, (meta.dev(), meta.ino())))
        });
        let mut modes = lock(&self.io_modes);
        if let Some(lent) = modes.lent.get_mut(&ino) {
            // The kernel sends every open of an inode that has passthrough
            // opens to the same backing file, or fails it.
            if backing.is_some_and(|(_, file)| file == lent.file) {
                lent.opens += 1;
                reply.opened_passthrough(FileHandle(handle), FopenFlags::empty(), &lent.id);
                modes.handles.insert(handle, (ino, IoMode::Passthrough));
                return;
            }
            // The source changed under a reader: the new bytes need a new
            // inode. ESTALE makes the kernel look the name up again.
            drop(modes);
            self.fs.release(handle);
            self.fs.renumber(ino);
            log::debug!("inode {ino}: source changed while open; renumbered");
            reply.error(Errno::ESTALE);
            return;
        }
        if let Some((file, identity)) = backing
            && self.passthrough.load(Ordering::Relaxed)
            // A cached open makes the kernel refuse passthrough ones.
            && !modes.has_cached_opens(ino)
        {
            match reply.open_backing(file) {
                Ok(id) => {
                    reply.opened_passthrough(FileHandle(handle), FopenFlags::empty(), &id);
                    modes.lent.insert(
                        ino,
                        Lent {
                            id,
                            file: identity,
                            opens: 1,
                        },
                    );
                    modes.handles.insert(handle, (ino, IoMode::Passthrough));
                    return;
                }
                Err(error) if error.raw_os_error() == Some(libc::EPERM) => {
                    log::info!(
                        "the kernel will not read backing files directly ({error}): \
                         ninja-fs serves every file itself"
                    );
                    self.passthrough.store(false, Ordering::Relaxed);
                }
                Err(error) => log::debug!("inode {ino}: no passthrough: {error}"),
            }
        }
        *modes.cached_opens.entry(ino).or_default() += 1;
        modes.handles.insert(handle, (ino, IoMode::Cached));
        drop(modes);
        let fopen = if opened.keep_cache {
            FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::empty()
        };
        reply.opened(FileHandle(handle), fopen);
    }

    /// Where the mount code puts the session's notifier once it exists.
    pub fn notifier_slot(&self) -> Arc<OnceLock<Notifier>> {
        Arc::clone(&self.notifier)
    }

    pub fn inner(&self) -> &F {
        &self.fs
    }

    fn attr(&self, a: &Attributes) -> FileAttr {
        let (kind, nlink) = match a.kind {
            NodeKind::Directory => (FileType::Directory, 2),
            NodeKind::File => (FileType::RegularFile, 1),
        };
        FileAttr {
            ino: INodeNo(a.ino),
            size: a.size,
            blocks: a.size.div_ceil(512),
            atime: a.mtime,
            mtime: a.mtime,
            ctime: a.mtime,
            crtime: a.mtime,
            kind,
            // The core never offers a write bit; masking keeps it so.
            perm: a.perm & 0o555,
            nlink,
            uid: a.uid,
            gid: a.gid,
            rdev: 0,
            blksize: BLOCK_SIZE,
            flags: 0,
        }
    }

    fn fail(&self, op: &str, ino: u64, error: &FsError) -> Errno {
        match error {
            FsError::Io(reason) => log::warn!("{op} (inode {ino}): {reason}"),
            other => log::debug!("{op} (inode {ino}): {other}"),
        }
        errno(error)
    }

    fn remember_parent(&self, parent: u64, child: &Attributes) {
        if child.kind == NodeKind::Directory
            && let Ok(mut parents) = self.parents.lock()
        {
            parents.insert(child.ino, parent);
        }
    }

    fn parent_of(&self, ino: u64) -> u64 {
        if ino == ROOT_INO {
            return ROOT_INO;
        }
        self.parents
            .lock()
            .ok()
            .and_then(|parents| parents.get(&ino).copied())
            .unwrap_or(ROOT_INO)
    }

    fn snapshot(&self, fh: FileHandle, ino: u64) -> Result<Arc<DirSnapshot>, FsError> {
        let found = self
            .dirs
            .lock()
            .ok()
            .and_then(|dirs| dirs.get(&fh.0).cloned());
        match found {
            Some(snapshot) if snapshot.ino == ino => Ok(snapshot),
            Some(_) => Err(FsError::BadHandle),
            // A readdir without opendir (not sent by Linux): list afresh.
            None => Ok(Arc::new(DirSnapshot {
                ino,
                entries: self.fs.readdir(ino)?,
            })),
        }
    }

    /// `.`, `..` and the folder's entries, as (inode, kind, name).
    fn listing<'a>(
        &self,
        snapshot: &'a DirSnapshot,
    ) -> impl Iterator<Item = (u64, NodeKind, &'a OsStr, Option<&'a Attributes>)> + 'a {
        let dot = (snapshot.ino, NodeKind::Directory, OsStr::new("."), None);
        let dotdot = (
            self.parent_of(snapshot.ino),
            NodeKind::Directory,
            OsStr::new(".."),
            None,
        );
        [dot, dotdot]
            .into_iter()
            .chain(snapshot.entries.iter().map(|e| {
                (
                    e.attributes.ino,
                    e.attributes.kind,
                    e.name.as_os_str(),
                    Some(&e.attributes),
                )
            }))
    }
}

fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::Directory => FileType::Directory,
        NodeKind::File => FileType::RegularFile,
    }
}

impl<F: VirtualFs> Filesystem for FuseAdapter<F> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let wanted = [
            // Every listing comes with attributes, not only its first
            // reply ("auto" mode): frontends and scanners list a folder
            // whole and then stat each file, which "auto" turned into a
            // LOOKUP round trip each (`find -size` of 10,000 files: 500 ms
            // against 35). A bare `ls -f` pays for it: 12 ms to 37.
            ("readdirplus", InitFlags::FUSE_DO_READDIRPLUS),
            ("parallel dirops", InitFlags::FUSE_PARALLEL_DIROPS),
            ("async read", InitFlags::FUSE_ASYNC_READ),
            ("auto invalidate data", InitFlags::FUSE_AUTO_INVAL_DATA),
            ("max pages", InitFlags::FUSE_MAX_PAGES),
        ];
        for (name, flag) in wanted {
            if config.add_capabilities(flag).is_err() {
                log::debug!("the kernel does not offer {name}");
            }
        }
        // max_write is what lets a request carry up to MAX_REQUEST bytes
        // (the kernel's max_pages); reads benefit, writes never happen.
        if let Err(nearest) = config.set_max_write(MAX_REQUEST) {
            let _ = config.set_max_write(nearest);
        }
        if let Err(nearest) = config.set_max_readahead(MAX_REQUEST) {
            let _ = config.set_max_readahead(nearest);
        }
        let _ = config.set_max_background(64);
        // Views that are a backing file byte for byte are read by the
        // kernel straight from it. Depth 1: backing files on a plain
        // filesystem, and the mount can still sit under an overlay.
        self.passthrough = AtomicBool::new(
            config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
                && config.set_max_stack_depth(1).is_ok(),
        );
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.fs.lookup(parent.0, name) {
            Ok(a) => {
                self.remember_parent(parent.0, &a);
                reply.entry(&TTL, &self.attr(&a), Generation(0));
            }
            Err(e) => reply.error(self.fail("lookup", parent.0, &e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino.0) {
            Ok(a) => reply.attr(&TTL, &self.attr(&a)),
            Err(e) => reply.error(self.fail("getattr", ino.0, &e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0 {
            reply.error(Errno::EROFS);
            return;
        }
        match self.fs.open(ino.0) {
            Ok(opened) => self.reply_open(ino.0, opened, reply),
            Err(e) => reply.error(self.fail("open", ino.0, &e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.fs.read_shared(fh.0, offset, size) {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(self.fail("read", ino.0, &e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.fs.release(fh.0);
        lock(&self.io_modes).closed(fh.0);
        reply.ok();
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing is ever written, so nothing to flush. ENOSYS tells the
        // kernel so once, and it stops sending a flush on every close.
        reply.error(Errno::ENOSYS);
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.readdir(ino.0) {
            Ok(entries) => {
                for entry in &entries {
                    self.remember_parent(ino.0, &entry.attributes);
                }
                let handle = self.next_dir_handle.fetch_add(1, Ordering::Relaxed);
                let snapshot = Arc::new(DirSnapshot {
                    ino: ino.0,
                    entries,
                });
                match self.dirs.lock() {
                    Ok(mut dirs) => {
                        dirs.insert(handle, snapshot);
                        reply.opened(FileHandle(handle), FopenFlags::empty());
                    }
                    Err(_) => reply.error(Errno::EIO),
                }
            }
            Err(e) => reply.error(self.fail("opendir", ino.0, &e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let snapshot = match self.snapshot(fh, ino.0) {
            Ok(snapshot) => snapshot,
            Err(e) => return reply.error(self.fail("readdir", ino.0, &e)),
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (index, (child, kind, name, _)) in self.listing(&snapshot).enumerate().skip(skip) {
            if reply.add(INodeNo(child), index as u64 + 1, file_type(kind), name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let snapshot = match self.snapshot(fh, ino.0) {
            Ok(snapshot) => snapshot,
            Err(e) => return reply.error(self.fail("readdirplus", ino.0, &e)),
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let folder = Attributes {
            ino: ino.0,
            kind: NodeKind::Directory,
            size: 0,
            mtime: SystemTime::UNIX_EPOCH,
            uid: 0,
            gid: 0,
            perm: 0,
        };
        for (index, (child, kind, name, attributes)) in
            self.listing(&snapshot).enumerate().skip(skip)
        {
            // The kernel makes no entries for `.` and `..`; their
            // attributes are never used.
            let attributes = attributes.copied().unwrap_or(Attributes {
                ino: child,
                kind,
                ..folder
            });
            let attr = self.attr(&attributes);
            if reply.add(
                INodeNo(child),
                index as u64 + 1,
                name,
                &TTL,
                &attr,
                Generation(0),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        if let Ok(mut dirs) = self.dirs.lock() {
            dirs.remove(&fh.0);
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let stats = self.fs.statfs();
        let blocks = stats.bytes.div_ceil(u64::from(BLOCK_SIZE));
        reply.statfs(blocks, 0, 0, stats.files, 0, BLOCK_SIZE, 255, BLOCK_SIZE);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if mask.contains(AccessFlags::W_OK) {
            return reply.error(Errno::EROFS);
        }
        match self.fs.getattr(ino.0) {
            Ok(a) if a.kind == NodeKind::File && mask.contains(AccessFlags::X_OK) => {
                reply.error(Errno::EACCES)
            }
            Ok(_) => reply.ok(),
            Err(e) => reply.error(self.fail("access", ino.0, &e)),
        }
    }

    // Quiet answers to what a read-only tree does not have (fuser's
    // defaults log a warning for each).

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn readlink(&self, _req: &Request, _ino: INodeNo, reply: ReplyData) {
        reply.error(Errno::EINVAL);
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: ReplyLseek,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: PollNotifier,
        _events: PollEvents,
        _flags: PollFlags,
        reply: ReplyPoll,
    ) {
        reply.error(Errno::ENOSYS);
    }

    // Every write-type operation: EROFS.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_errno() {
        assert_eq!(errno(&FsError::NotFound), Errno::ENOENT);
        assert_eq!(errno(&FsError::NotADirectory), Errno::ENOTDIR);
        assert_eq!(errno(&FsError::IsADirectory), Errno::EISDIR);
        assert_eq!(errno(&FsError::ReadOnly), Errno::EROFS);
        assert_eq!(errno(&FsError::BadHandle), Errno::EBADF);
        assert_eq!(errno(&FsError::Io("bad".into())), Errno::EIO);
    }
}
