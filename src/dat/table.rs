//! The sizes and hashes of a DAT's entries, in parallel arrays: 45 bytes
//! an entry when it carries all three hashes (40 of them the hashes), and
//! 4 more for its place in the index by size and CRC32.

use crate::digest::Digests;

use super::column::Column;

use super::HashKind;

const HAS_CRC32: u8 = 1;
const HAS_MD5: u8 = 2;
const HAS_SHA1: u8 = 4;

/// A size that does not fit in 32 bits is kept apart (Redump's DVD
/// images; almost no cartridge entry).
const SIZE_APART: u32 = u32::MAX;

/// One entry's size and hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashes {
    pub size: u64,
    pub crc32: Option<u32>,
    pub md5: Option<[u8; 16]>,
    pub sha1: Option<[u8; 20]>,
}

impl Hashes {
    /// The strongest hash the entry carries.
    pub fn strongest(&self) -> Option<HashKind> {
        if self.sha1.is_some() {
            Some(HashKind::Sha1)
        } else if self.md5.is_some() {
            Some(HashKind::Md5)
        } else if self.crc32.is_some() {
            Some(HashKind::Crc32)
        } else {
            None
        }
    }

    /// Whether `digests` agree with the entry's hash of `kind` (false if
    /// it has none).
    pub fn agrees(&self, kind: HashKind, digests: &Digests) -> bool {
        match kind {
            HashKind::Sha1 => self.sha1 == Some(digests.sha1),
            HashKind::Md5 => self.md5 == Some(digests.md5),
            HashKind::Crc32 => self.crc32 == Some(digests.crc32),
        }
    }
}

/// Every entry's size and hashes, by entry number. A hash no entry has
/// so far takes no room: its array is filled from the first entry that
/// has one.
#[derive(Debug, Clone, Default)]
pub struct HashTable {
    sizes: Column<u32>,
    /// (entry, size) of the sizes of `SIZE_APART`, by entry.
    large_sizes: Vec<(u32, u64)>,
    present: Column<u8>,
    crc32: Column<u32>,
    md5: Column<[u8; 16]>,
    sha1: Column<[u8; 20]>,
    /// The entries sorted by (size, CRC32), those without a CRC32 first
    /// in each size; made by `index`, searched by bisection.
    by_size_crc: Vec<u32>,
}

/// Appends `value` to `column`, which holds nothing until some entry has
/// a value; `len` is the number of entries before this one.
fn push_column<T: Copy + Default>(column: &mut Column<T>, len: usize, value: Option<T>) {
    if value.is_none() && column.is_empty() {
        return;
    }
    while column.len() < len {
        column.push(T::default());
    }
    column.push(value.unwrap_or_default());
}

impl HashTable {
    pub fn entry_count(&self) -> usize {
        self.sizes.len()
    }

    pub fn push(&mut self, hashes: &Hashes) {
        let len = self.sizes.len();
        match u32::try_from(hashes.size) {
            Ok(size) if size != SIZE_APART => self.sizes.push(size),
            _ => {
                self.large_sizes.push((len as u32, hashes.size));
                self.sizes.push(SIZE_APART);
            }
        }
        let flag = |present: bool, bit: u8| if present { bit } else { 0 };
        self.present.push(
            flag(hashes.crc32.is_some(), HAS_CRC32)
                | flag(hashes.md5.is_some(), HAS_MD5)
                | flag(hashes.sha1.is_some(), HAS_SHA1),
        );
        push_column(&mut self.crc32, len, hashes.crc32);
        push_column(&mut self.md5, len, hashes.md5);
        push_column(&mut self.sha1, len, hashes.sha1);
    }

    pub fn size(&self, at: u32) -> Option<u64> {
        let size = self.sizes.get(at as usize)?;
        if size != SIZE_APART {
            return Some(u64::from(size));
        }
        let found = self
            .large_sizes
            .binary_search_by_key(&at, |&(entry, _)| entry);
        found.ok().map(|slot| self.large_sizes[slot].1)
    }

    fn crc32_of(&self, at: u32) -> Option<u32> {
        let present = self.present.get(at as usize)?;
        (present & HAS_CRC32 != 0)
            .then(|| self.crc32.get(at as usize))
            .flatten()
    }

    pub fn get(&self, at: u32) -> Option<Hashes> {
        let present = self.present.get(at as usize)?;
        let column = |bit: u8| present & bit != 0;
        Some(Hashes {
            size: self.size(at)?,
            crc32: self.crc32_of(at),
            md5: column(HAS_MD5).then(|| self.md5.get(at as usize)).flatten(),
            sha1: column(HAS_SHA1)
                .then(|| self.sha1.get(at as usize))
                .flatten(),
        })
    }

    fn key(&self, at: u32) -> (u64, Option<u32>) {
        (self.size(at).unwrap_or(0), self.crc32_of(at))
    }

    /// Sorts the index (after the last entry is added) and gives back the
    /// room the arrays kept to grow.
    pub fn index(&mut self) {
        let mut order: Vec<u32> = (0..self.sizes.len() as u32).collect();
        // Entries of one key stay in DAT order; an unstable sort needs no
        // second list while it sorts, where a stable one would.
        order.sort_unstable_by_key(|&at| (self.key(at), at));
        self.by_size_crc = order;
        self.sizes.shrink_to_fit();
        self.large_sizes.shrink_to_fit();
        self.present.shrink_to_fit();
        self.crc32.shrink_to_fit();
        self.md5.shrink_to_fit();
        self.sha1.shrink_to_fit();
    }

    pub fn is_indexed(&self) -> bool {
        self.by_size_crc.len() == self.sizes.len()
    }

    /// The entries of this size and CRC32 (`None`: those without one), in
    /// DAT order.
    pub fn entries_with(&self, size: u64, crc32: Option<u32>) -> impl Iterator<Item = u32> + '_ {
        let key = (size, crc32);
        let start = self.by_size_crc.partition_point(|&at| self.key(at) < key);
        self.by_size_crc[start..]
            .iter()
            .copied()
            .take_while(move |&at| self.key(at) == key)
    }

    /// Whether some entry has this size.
    pub fn has_size(&self, size: u64) -> bool {
        let at = self
            .by_size_crc
            .partition_point(|&at| self.size(at).unwrap_or(0) < size);
        self.by_size_crc
            .get(at)
            .is_some_and(|&at| self.size(at) == Some(size))
    }

    /// The bytes it holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.sizes.heap_bytes()
            + self.large_sizes.capacity() * 16
            + self.present.heap_bytes()
            + self.crc32.heap_bytes()
            + self.md5.heap_bytes()
            + self.sha1.heap_bytes()
            + self.by_size_crc.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hashes_strategy() -> impl Strategy<Value = Hashes> {
        (
            prop_oneof![0u64..64, Just(u64::from(u32::MAX)), any::<u64>()],
            proptest::option::of(0u32..4),
            proptest::option::of(any::<[u8; 16]>()),
            proptest::option::of(any::<[u8; 20]>()),
        )
            .prop_map(|(size, crc32, md5, sha1)| Hashes {
                size,
                crc32,
                md5,
                sha1,
            })
    }

    #[test]
    fn columns_take_no_room_until_used() {
        let mut table = HashTable::default();
        for size in 0..10 {
            table.push(&Hashes {
                size,
                crc32: Some(size as u32),
                md5: None,
                sha1: None,
            });
        }
        table.index();
        // Sizes, presence bits, CRC32s and the index; a chunk slot (a
        // `Vec`) for each of the first three.
        assert_eq!(table.heap_bytes(), 10 * (4 + 1 + 4 + 4) + 3 * 24);
    }

    proptest! {
        #[test]
        fn entries_read_back_and_are_found(
            entries in proptest::collection::vec(hashes_strategy(), 0..60),
        ) {
            let mut table = HashTable::default();
            for hashes in &entries {
                table.push(hashes);
            }
            table.index();
            for (at, hashes) in entries.iter().enumerate() {
                prop_assert_eq!(table.get(at as u32), Some(*hashes));
                prop_assert!(table.has_size(hashes.size));
                let found: Vec<u32> = table.entries_with(hashes.size, hashes.crc32).collect();
                let want: Vec<u32> = (0..entries.len() as u32)
                    .filter(|&n| {
                        let other = &entries[n as usize];
                        (other.size, other.crc32) == (hashes.size, hashes.crc32)
                    })
                    .collect();
                prop_assert_eq!(found, want);
            }
            prop_assert_eq!(table.get(entries.len() as u32), None);
        }
    }
}
