//! Where the library's files come from, and the two facts every layer
//! above needs of each: which version of a file it is ([`FileId`]) and who
//! may read it ([`Access`]).
//!
//! Today there is one kind of backing, a folder ([`LocalFolder`]): every
//! file is opened beneath its root, so no link leads a read out of it, and
//! read whole under a read lease, so a writer never hands a reader half its
//! old bytes and half its new ones.

pub mod archive;
mod lease;
mod local;

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use local::{Listed, LocalFolder, ReadError, leads_outside};

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
    use super::Access;

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
