//! A plain VCDIFF encoder: the default code table, no secondary
//! compression, one window per `WINDOW_SIZE` bytes of target, each copying
//! from the whole source, with xdelta3's Adler-32 so `xdelta3 -d` verifies
//! every window. Matching is greedy over hashed 8-byte keys, against the
//! source and against the window's own earlier bytes.

use super::code_table::{AddressCache, CodeTable, EncodedAddress};
use super::{WINDOW_ADLER32, WINDOW_SOURCE, write_varint};
use crate::patch::PatchError;

/// Target bytes per window; xdelta3 decodes windows of up to 16 MiB.
const WINDOW_SIZE: usize = 4 << 20;
/// Bytes a match must share to be worth a COPY; also the hash key length.
const MIN_MATCH: usize = 8;
/// A run at least this long becomes a RUN instruction.
const MIN_RUN: usize = 8;
const MAX_SOURCE_TABLE_BITS: u32 = 24;
const TARGET_TABLE_BITS: u32 = 20;
const NO_POSITION: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Instruction {
    Add {
        start: usize,
        len: usize,
    },
    Run {
        byte: u8,
        len: usize,
    },
    /// `address` is in the window's address space (source, then window).
    Copy {
        address: u64,
        len: usize,
    },
}

fn hash_key(bytes: &[u8], bits: u32) -> usize {
    let mut key = [0u8; 8];
    key.copy_from_slice(bytes.get(..8).unwrap_or(&[0; 8]));
    let value = u64::from_le_bytes(key);
    (value.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Remembers one position per hash of the 8 bytes starting there.
struct HashIndex {
    slots: Vec<u32>,
    bits: u32,
}

impl HashIndex {
    fn new(bits: u32) -> Self {
        HashIndex {
            slots: vec![NO_POSITION; 1 << bits],
            bits,
        }
    }

    fn insert(&mut self, data: &[u8], position: usize) {
        if let Some(key) = data.get(position..position + MIN_MATCH) {
            let slot = hash_key(key, self.bits);
            if let Some(entry) = self.slots.get_mut(slot) {
                *entry = position as u32;
            }
        }
    }

    fn lookup(&self, key: &[u8]) -> Option<usize> {
        let position = *self.slots.get(hash_key(key, self.bits))?;
        (position != NO_POSITION).then_some(position as usize)
    }

    fn clear(&mut self) {
        self.slots.fill(NO_POSITION);
    }
}

/// Makes a VCDIFF patch that turns `source` into `target`.
pub fn create(source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    if u32::try_from(source.len()).is_err() || u32::try_from(target.len()).is_err() {
        return Err(PatchError::Unsupported {
            format: super::NAME,
            detail: "this encoder makes patches for files under 4 GiB".into(),
        });
    }
    let mut source_index = HashIndex::new(source_table_bits(source.len()));
    if source.len() >= MIN_MATCH {
        // Later positions win, so walk backwards to keep the earliest.
        for position in (0..=source.len() - MIN_MATCH).rev() {
            source_index.insert(source, position);
        }
    }
    let mut target_index = HashIndex::new(TARGET_TABLE_BITS);
    let table = CodeTable::default_table();

    let mut patch = vec![0xD6, 0xC3, 0xC4, 0, 0];
    if target.is_empty() {
        // xdelta3 -d wants at least one window, as its encoder writes.
        write_window(&mut patch, 0, &[], &[], &table);
    }
    for window in target.chunks(WINDOW_SIZE) {
        target_index.clear();
        let instructions = find_instructions(source, window, &source_index, &mut target_index);
        write_window(&mut patch, source.len(), window, &instructions, &table);
    }
    Ok(patch)
}

fn source_table_bits(len: usize) -> u32 {
    let wanted = usize::BITS - len.max(1 << 10).leading_zeros();
    wanted.min(MAX_SOURCE_TABLE_BITS)
}

/// The byte at `address` in a window's address space (source, then window).
fn address_byte(source: &[u8], window: &[u8], address: u64) -> Option<u8> {
    let source_len = source.len() as u64;
    if address < source_len {
        source.get(address as usize).copied()
    } else {
        window.get((address - source_len) as usize).copied()
    }
}

fn find_instructions(
    source: &[u8],
    window: &[u8],
    source_index: &HashIndex,
    target_index: &mut HashIndex,
) -> Vec<Instruction> {
    let source_len = source.len() as u64;
    let mut instructions = Vec::new();
    let mut literal_start = 0usize;
    let mut position = 0usize;
    let mut indexed_up_to = 0usize;
    while position < window.len() {
        let rest = window.get(position..).unwrap_or_default();
        let run = rest
            .first()
            .map(|&first| rest.iter().take_while(|&&b| b == first).count())
            .unwrap_or(0);

        let mut best: Option<(u64, usize)> = None;
        if let Some(key) = rest.get(..MIN_MATCH) {
            if let Some(at) = source_index.lookup(key) {
                let len = common_prefix(source.get(at..).unwrap_or_default(), rest);
                if len >= MIN_MATCH {
                    best = Some((at as u64, len));
                }
            }
            if let Some(at) = target_index.lookup(key).filter(|&at| at < position) {
                // The copy may run into bytes it is itself making.
                let len = common_prefix(window.get(at..).unwrap_or_default(), rest);
                if len >= MIN_MATCH && best.is_none_or(|(_, best_len)| len > best_len) {
                    best = Some((source_len + at as u64, len));
                }
            }
        }

        let (next, instruction) = match best {
            Some((_, len)) if run >= MIN_RUN && run >= len => (
                position + run,
                Some(Instruction::Run {
                    byte: rest[0],
                    len: run,
                }),
            ),
            Some((address, len)) => {
                // Grow the match backwards over literal bytes it also covers,
                // staying in the region it started in: xdelta3 refuses a
                // COPY that straddles the end of the source segment.
                let lowest = if address >= source_len { source_len } else { 0 };
                let mut back = 0usize;
                while position - back > literal_start
                    && address - back as u64 > lowest
                    && address_byte(source, window, address - back as u64 - 1)
                        == window.get(position - back - 1).copied()
                    && (address - back as u64 - 1) < source_len + (position - back - 1) as u64
                {
                    back += 1;
                }
                position -= back;
                let (address, len) = (address - back as u64, len + back);
                (position + len, Some(Instruction::Copy { address, len }))
            }
            None if run >= MIN_RUN => (
                position + run,
                Some(Instruction::Run {
                    byte: rest[0],
                    len: run,
                }),
            ),
            None => (position + 1, None),
        };
        if let Some(instruction) = instruction {
            if literal_start < position {
                instructions.push(Instruction::Add {
                    start: literal_start,
                    len: position - literal_start,
                });
            }
            instructions.push(instruction);
            literal_start = next;
        }
        // Index what was passed so later bytes can copy from it.
        while indexed_up_to < next {
            target_index.insert(window, indexed_up_to);
            indexed_up_to += 1;
        }
        position = next;
    }
    if literal_start < window.len() {
        instructions.push(Instruction::Add {
            start: literal_start,
            len: window.len() - literal_start,
        });
    }
    instructions
}

fn write_window(
    patch: &mut Vec<u8>,
    source_len: usize,
    window: &[u8],
    instructions: &[Instruction],
    table: &CodeTable,
) {
    let copy_len = source_len as u64;
    let mut cache = AddressCache::new(table.near_slots, table.same_slots);
    let mut data = Vec::new();
    let mut codes = Vec::new();
    let mut addresses = Vec::new();
    let mut here = copy_len;
    let mut index = 0;
    while let Some(&instruction) = instructions.get(index) {
        index += 1;
        match instruction {
            Instruction::Add { start, len } => {
                data.extend_from_slice(window.get(start..start + len).unwrap_or_default());
                here += len as u64;
                // A short ADD followed by a short COPY may share one opcode.
                if let Some(&Instruction::Copy {
                    address,
                    len: copy_size,
                }) = instructions.get(index)
                {
                    let (mode, encoded) = cache.encode(address, here);
                    if let Some(opcode) = add_copy_opcode(len, mode, copy_size) {
                        codes.push(opcode);
                        write_address(&mut addresses, encoded);
                        here += copy_size as u64;
                        index += 1;
                        continue;
                    }
                    // Not pairable: undo nothing, the cache already holds the
                    // address, so emit both halves with this same mode.
                    push_sized(&mut codes, add_opcode(len), len);
                    push_copy(&mut codes, mode, copy_size);
                    write_address(&mut addresses, encoded);
                    here += copy_size as u64;
                    index += 1;
                    continue;
                }
                push_sized(&mut codes, add_opcode(len), len);
            }
            Instruction::Run { byte, len } => {
                data.push(byte);
                codes.push(0);
                write_varint(&mut codes, len as u64);
                here += len as u64;
            }
            Instruction::Copy { address, len } => {
                let (mode, encoded) = cache.encode(address, here);
                push_copy(&mut codes, mode, len);
                write_address(&mut addresses, encoded);
                here += len as u64;
            }
        }
    }

    let mut body = Vec::new();
    write_varint(&mut body, window.len() as u64);
    body.push(0); // no secondary compression
    write_varint(&mut body, data.len() as u64);
    write_varint(&mut body, codes.len() as u64);
    write_varint(&mut body, addresses.len() as u64);
    body.extend_from_slice(&super::adler32(window).to_be_bytes());
    body.extend_from_slice(&data);
    body.extend_from_slice(&codes);
    body.extend_from_slice(&addresses);

    if source_len > 0 {
        patch.push(WINDOW_SOURCE | WINDOW_ADLER32);
        write_varint(patch, copy_len);
        write_varint(patch, 0);
    } else {
        patch.push(WINDOW_ADLER32);
    }
    write_varint(patch, body.len() as u64);
    patch.extend_from_slice(&body);
}

/// Opcode of a lone ADD: sizes 1..=17 have their own, others carry a size.
fn add_opcode(len: usize) -> u8 {
    if (1..=17).contains(&len) {
        len as u8 + 1
    } else {
        1
    }
}

fn push_sized(codes: &mut Vec<u8>, opcode: u8, len: usize) {
    codes.push(opcode);
    if opcode == 1 {
        write_varint(codes, len as u64);
    }
}

/// COPY of mode `mode`: sizes 4..=18 have their own opcode.
fn push_copy(codes: &mut Vec<u8>, mode: u8, len: usize) {
    let base = 19 + 16 * mode;
    if (4..=18).contains(&len) {
        codes.push(base + (len as u8 - 3));
    } else {
        codes.push(base);
        write_varint(codes, len as u64);
    }
}

/// The default table's ADD-then-COPY opcodes (RFC 3284 section 5.6).
fn add_copy_opcode(add_len: usize, mode: u8, copy_len: usize) -> Option<u8> {
    if !(1..=4).contains(&add_len) {
        return None;
    }
    let add = add_len as u8 - 1;
    match mode {
        0..=5 if (4..=6).contains(&copy_len) => {
            Some(163 + mode * 12 + add * 3 + (copy_len as u8 - 4))
        }
        6..=8 if copy_len == 4 => Some(235 + (mode - 6) * 4 + add),
        _ => None,
    }
}

fn write_address(addresses: &mut Vec<u8>, encoded: EncodedAddress) {
    match encoded {
        EncodedAddress::Varint(value) => write_varint(addresses, value),
        EncodedAddress::Byte(byte) => addresses.push(byte),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::vcdiff::code_table::{HalfInstruction, Operation};
    use crate::patch::vcdiff::parse;
    use crate::patch::{ApplyOptions, Limits};

    fn round_trip(source: &[u8], target: &[u8]) -> Vec<u8> {
        let patch = create(source, target).unwrap();
        let parsed = parse(&patch, &Limits::default()).unwrap();
        assert_eq!(parsed.output_size(source.len() as u64), target.len() as u64);
        assert_eq!(
            parsed.apply(source, &ApplyOptions::default()).unwrap(),
            target
        );
        patch
    }

    #[test]
    fn paired_opcodes_match_the_default_table() {
        let table = CodeTable::default_table();
        for mode in 0..9u8 {
            for add_len in 1..=4usize {
                for copy_len in 4..=6usize {
                    let expected = table.find(
                        HalfInstruction {
                            operation: Operation::Add,
                            size: add_len as u8,
                        },
                        HalfInstruction {
                            operation: Operation::Copy { mode },
                            size: copy_len as u8,
                        },
                    );
                    assert_eq!(add_copy_opcode(add_len, mode, copy_len), expected);
                }
            }
            for len in 4..=18usize {
                let mut codes = Vec::new();
                push_copy(&mut codes, mode, len);
                let expected = table.find(
                    HalfInstruction {
                        operation: Operation::Copy { mode },
                        size: len as u8,
                    },
                    HalfInstruction {
                        operation: Operation::Noop,
                        size: 0,
                    },
                );
                assert_eq!(Some(codes[0]), expected);
            }
        }
    }

    #[test]
    fn exact_small_patches() {
        // Empty target: one empty window, as xdelta3 writes it.
        assert_eq!(
            round_trip(b"abc", b""),
            [
                0xD6,
                0xC3,
                0xC4,
                0,
                0,
                WINDOW_ADLER32,
                9,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                1
            ]
        );
        // No source: one ADD of 3 bytes, opcode 4, with Adler-32.
        let patch = round_trip(b"", b"xyz");
        let adler = crate::patch::vcdiff::adler32(b"xyz").to_be_bytes();
        let mut expected = vec![0xD6, 0xC3, 0xC4, 0, 0, WINDOW_ADLER32, 13, 3, 0, 3, 1, 0];
        expected.extend_from_slice(&adler);
        expected.extend_from_slice(b"xyz");
        expected.push(4);
        assert_eq!(patch, expected);
    }

    #[test]
    fn copies_runs_and_self_references_shrink_the_patch() {
        let source: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut target = source.clone();
        target[1000..1010].fill(0xAA);
        target.extend(std::iter::repeat_n(0x55, 5000));
        target.extend_from_slice(&source[..20_000]);
        let patch = round_trip(&source, &target);
        assert!(patch.len() < 200, "patch is {} bytes", patch.len());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        #[test]
        fn create_then_apply_round_trips(
            source in proptest::collection::vec(0u8..4, 0..3000),
            edits in proptest::collection::vec((0usize..3000, 0u8..4, 0usize..40), 0..12),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            cut in 0usize..3000,
        ) {
            let mut target = source.clone();
            for (at, byte, len) in edits {
                let at = at.min(target.len());
                if byte == 0 {
                    let end = (at + len).min(target.len());
                    target.drain(at..end);
                } else {
                    target.splice(at..at, std::iter::repeat_n(byte, len));
                }
            }
            target.truncate(cut.max(target.len() / 2));
            target.extend_from_slice(&tail);
            round_trip(&source, &target);
        }
    }
}
