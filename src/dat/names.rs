//! The names of a DAT, kept compressed: a large DAT's game and rom names
//! are more bytes than its hashes (No-Intro-style names run to 40-90
//! bytes each), so holding each as a `String` would cost several times
//! what the hashes do.
//!
//! Strings are numbered in the order they are added and packed into
//! blocks of [`STRINGS_PER_BLOCK`], each compressed with zstd on its own:
//! string `n` is in block `n / STRINGS_PER_BLOCK`, so no string needs an
//! offset of its own, and reading one decompresses a block of a few KiB.
//! Neighbouring names share most of their words, which is what zstd
//! finds inside a block.

use std::fmt;

/// Strings per compressed block: larger blocks compress better and cost
/// more to read one name from (see BENCHMARKS.md §6b).
pub const STRINGS_PER_BLOCK: u32 = 128;

/// zstd's fastest level: the benchmark's names compress to the same
/// bytes at level 3 (its default), whose working tables take about 300 KiB
/// more while a DAT loads.
const LEVEL: i32 = 1;

/// Strings, numbered from 0, packed into compressed blocks.
#[derive(Default)]
pub struct NameArena {
    /// The sealed blocks, compressed, each allocated once at its size (a
    /// list of them all grows by moving only its small slots).
    blocks: Vec<Box<[u8]>>,
    /// The strings after the last sealed block, not compressed: each as
    /// its length (LEB128) and its bytes.
    open: Vec<u8>,
    count: u32,
    /// The uncompressed size of the largest block: what decompressing
    /// one may need.
    largest_block: u32,
    /// Kept while strings are added: making one costs more than a block.
    compressor: Option<Box<zstd::bulk::Compressor<'static>>>,
}

impl fmt::Debug for NameArena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NameArena")
            .field("count", &self.count)
            .field("blocks", &self.blocks.len())
            .finish()
    }
}

impl Clone for NameArena {
    fn clone(&self) -> NameArena {
        NameArena {
            blocks: self.blocks.clone(),
            open: self.open.clone(),
            count: self.count,
            largest_block: self.largest_block,
            compressor: None,
        }
    }
}

/// Why a string could not be kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArenaError {
    #[error("more names than a DAT may hold ({} or more)", u32::MAX)]
    TooMany,
    #[error("a name or a block of names is longer than 4 GiB")]
    TooLarge,
    #[error("cannot compress the names: {0}")]
    Compress(String),
}

impl NameArena {
    /// How many strings it holds.
    #[cfg(test)]
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Adds `text` as the next string.
    pub fn push(&mut self, text: &[u8]) -> Result<(), ArenaError> {
        let count = self.count.checked_add(1).ok_or(ArenaError::TooMany)?;
        if self.blocks.len() as u64 * u64::from(STRINGS_PER_BLOCK) > u64::from(self.count) {
            self.unseal_last()?;
        }
        let len = u32::try_from(text.len()).map_err(|_| ArenaError::TooLarge)?;
        push_length(&mut self.open, len);
        self.open.extend_from_slice(text);
        self.count = count;
        if self.count.is_multiple_of(STRINGS_PER_BLOCK) {
            self.seal()?;
        }
        Ok(())
    }

    /// Compresses the open strings into a block of their own.
    fn seal(&mut self) -> Result<(), ArenaError> {
        let compressor = match &mut self.compressor {
            Some(compressor) => compressor,
            None => self.compressor.insert(Box::new(
                zstd::bulk::Compressor::new(LEVEL)
                    .map_err(|error| ArenaError::Compress(error.to_string()))?,
            )),
        };
        let block = compressor
            .compress(&self.open)
            .map_err(|error| ArenaError::Compress(error.to_string()))?;
        let raw_len = u32::try_from(self.open.len()).map_err(|_| ArenaError::TooLarge)?;
        self.blocks.push(block.as_slice().into());
        self.largest_block = self.largest_block.max(raw_len);
        self.open.clear();
        Ok(())
    }

    /// Makes the last block, sealed by `finish` with fewer than
    /// [`STRINGS_PER_BLOCK`] strings, open again, so that block `n` still
    /// holds the strings from `n * STRINGS_PER_BLOCK`.
    fn unseal_last(&mut self) -> Result<(), ArenaError> {
        let last = self.blocks.len() - 1;
        let Some(block) = self.block(last as u32) else {
            return Err(ArenaError::Compress(
                "the last block cannot be read back".into(),
            ));
        };
        self.open = block.bytes;
        self.blocks.pop();
        Ok(())
    }

    /// Seals the last, partly filled block, gives back the room lists
    /// keep to grow, and drops the compressor: the arena is then read
    /// only (more strings may still be added).
    pub fn finish(&mut self) -> Result<(), ArenaError> {
        if !self.open.is_empty() {
            self.seal()?;
        }
        self.compressor = None;
        self.blocks.shrink_to_fit();
        self.open = Vec::new();
        Ok(())
    }

    /// The bytes it holds on the heap.
    pub fn heap_bytes(&self) -> usize {
        let blocks: usize = self.blocks.iter().map(|block| block.len()).sum();
        blocks + self.blocks.capacity() * size_of::<Box<[u8]>>() + self.open.capacity()
    }

    /// The strings of block `block`, uncompressed (the open strings for
    /// the block after the sealed ones).
    pub fn block(&self, block: u32) -> Option<Block> {
        let at = block as usize;
        if at == self.blocks.len() {
            return Some(Block {
                first: block.checked_mul(STRINGS_PER_BLOCK)?,
                bytes: self.open.clone(),
            });
        }
        let packed = self.blocks.get(at)?;
        match zstd::bulk::decompress(packed, self.largest_block as usize) {
            Ok(bytes) => Some(Block {
                first: block * STRINGS_PER_BLOCK,
                bytes,
            }),
            Err(error) => {
                // Only a bug or a failed allocation gets here: the block
                // was compressed by `seal`.
                log::error!("a block of DAT names cannot be decompressed: {error}");
                None
            }
        }
    }

    /// String `n`.
    pub fn get(&self, n: u32) -> Option<Vec<u8>> {
        if n >= self.count {
            return None;
        }
        self.block(n / STRINGS_PER_BLOCK)?
            .get(n)
            .map(<[u8]>::to_vec)
    }

    /// Every string in order, each block decompressed once.
    #[cfg(test)]
    pub fn iter(&self) -> Strings<'_> {
        Strings {
            arena: self,
            cursor: Cursor::default(),
            next: 0,
        }
    }
}

/// One block's strings, uncompressed.
pub struct Block {
    /// The number of its first string.
    first: u32,
    bytes: Vec<u8>,
}

impl Block {
    /// String `n`, if this block holds it.
    pub fn get(&self, n: u32) -> Option<&[u8]> {
        let mut skip = n.checked_sub(self.first)?;
        let mut rest = &self.bytes[..];
        loop {
            let (len, after) = read_length(rest)?;
            let text = after.get(..len as usize)?;
            if skip == 0 {
                return Some(text);
            }
            skip -= 1;
            rest = &after[len as usize..];
        }
    }
}

/// Reads strings one after another, keeping the block it is in.
#[derive(Default)]
pub struct Cursor {
    block: Option<Block>,
    /// Where the next string starts in the block, and its number.
    at: usize,
    next: u32,
}

impl Cursor {
    /// String `n` of `arena`: cheap when `n` follows the string read last.
    pub fn get<'a>(&'a mut self, arena: &NameArena, n: u32) -> Option<&'a [u8]> {
        if n >= arena.count {
            return None;
        }
        let block = n / STRINGS_PER_BLOCK;
        let in_block = self
            .block
            .as_ref()
            .is_some_and(|b| b.first / STRINGS_PER_BLOCK == block);
        if !in_block {
            self.block = Some(arena.block(block)?);
        }
        // A string before the one read last: from the block's start again.
        if !in_block || n < self.next {
            self.at = 0;
            self.next = block * STRINGS_PER_BLOCK;
        }
        let bytes = &self.block.as_ref()?.bytes;
        loop {
            let (len, after) = read_length(bytes.get(self.at..)?)?;
            let start = bytes.len() - after.len();
            let end = start.checked_add(len as usize)?;
            self.at = end;
            self.next += 1;
            if self.next - 1 == n {
                return bytes.get(start..end);
            }
        }
    }
}

/// Every string of an arena, in order.
#[cfg(test)]
pub struct Strings<'a> {
    arena: &'a NameArena,
    cursor: Cursor,
    next: u32,
}

#[cfg(test)]
impl Iterator for Strings<'_> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        let n = self.next;
        let text = self.cursor.get(self.arena, n)?.to_vec();
        self.next += 1;
        Some(text)
    }
}

/// `value` as LEB128: seven bits a byte, low first.
fn push_length(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A LEB128 length and what follows it.
fn read_length(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut value = 0u32;
    for (at, &byte) in bytes.iter().enumerate().take(5) {
        value |= u32::from(byte & 0x7f).checked_shl(7 * at as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, &bytes[at + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arena_of(strings: &[Vec<u8>]) -> NameArena {
        let mut arena = NameArena::default();
        for text in strings {
            arena.push(text).unwrap();
        }
        arena
    }

    #[test]
    fn lengths_round_trip() {
        for value in [0, 1, 0x7f, 0x80, 0x3fff, 0x4000, u32::MAX] {
            let mut bytes = Vec::new();
            push_length(&mut bytes, value);
            assert_eq!(read_length(&bytes), Some((value, &[][..])));
        }
        assert_eq!(read_length(&[0x80]), None);
        assert_eq!(read_length(&[0xff; 6]), None);
    }

    #[test]
    fn blocks_hold_128_strings_and_compress() {
        let names: Vec<Vec<u8>> = (0..1000)
            .map(|n| format!("Some Game {n} (USA, Europe) (Rev {}).sfc", n % 3).into_bytes())
            .collect();
        let mut arena = arena_of(&names);
        assert_eq!(arena.blocks.len(), 7);
        arena.finish().unwrap();
        assert_eq!(arena.blocks.len(), 8);
        assert_eq!(arena.len(), 1000);
        let text: usize = names.iter().map(Vec::len).sum();
        assert!(
            arena.heap_bytes() * 4 < text,
            "{} of {text}",
            arena.heap_bytes()
        );
        assert_eq!(arena.get(0).unwrap(), names[0]);
        assert_eq!(arena.get(999).unwrap(), names[999]);
        assert_eq!(arena.get(1000), None);
        assert_eq!(arena.iter().collect::<Vec<_>>(), names);
    }

    #[test]
    fn empty_strings_keep_their_numbers() {
        let mut strings = vec![Vec::new(); 300];
        strings[129] = b"x".to_vec();
        let mut arena = arena_of(&strings);
        arena.finish().unwrap();
        assert_eq!(arena.get(129).unwrap(), b"x");
        assert_eq!(arena.get(128).unwrap(), b"");
        assert_eq!(arena.get(299).unwrap(), b"");
        assert_eq!(arena.iter().count(), 300);
    }

    proptest! {
        #[test]
        fn strings_read_back_in_any_order(
            strings in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..200), 0..700),
            finish in any::<bool>(),
            probes in proptest::collection::vec(any::<u32>(), 0..40),
        ) {
            let mut arena = arena_of(&strings);
            if finish {
                arena.finish().unwrap();
            }
            prop_assert_eq!(arena.len() as usize, strings.len());
            prop_assert_eq!(&arena.iter().collect::<Vec<_>>(), &strings);
            let mut cursor = Cursor::default();
            for probe in probes {
                let n = probe % (strings.len() as u32 + 1);
                let want = strings.get(n as usize).map(Vec::as_slice);
                let got = arena.get(n);
                prop_assert_eq!(got.as_deref(), want);
                prop_assert_eq!(cursor.get(&arena, n), want);
            }
        }

        #[test]
        fn strings_added_after_finishing_read_back(
            first in proptest::collection::vec("[a-z ]{0,30}", 0..300),
            second in proptest::collection::vec("[a-z ]{0,30}", 0..300),
        ) {
            let mut arena = NameArena::default();
            for text in &first {
                arena.push(text.as_bytes()).unwrap();
            }
            arena.finish().unwrap();
            for text in &second {
                arena.push(text.as_bytes()).unwrap();
            }
            let all: Vec<Vec<u8>> =
                first.iter().chain(&second).map(|t| t.clone().into_bytes()).collect();
            prop_assert_eq!(arena.iter().collect::<Vec<_>>(), all);
        }
    }
}
