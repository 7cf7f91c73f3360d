//! The VCDIFF instruction code table (RFC 3284 section 5) and the address
//! cache that COPY addresses are coded against.

use super::Cursor;

/// What one half of a code table entry does. COPY carries its address mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Noop,
    Add,
    Run,
    Copy { mode: u8 },
}

/// One half of an opcode: the operation and its size, where 0 means the size
/// follows in the instruction section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HalfInstruction {
    pub operation: Operation,
    pub size: u8,
}

const NOOP: HalfInstruction = HalfInstruction {
    operation: Operation::Noop,
    size: 0,
};

/// The 256 opcodes and the cache shape they were designed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeTable {
    pub entries: [[HalfInstruction; 2]; 256],
    pub near_slots: u8,
    pub same_slots: u8,
}

/// Length of a code table written as a string: six arrays of 256 bytes
/// (first types, second types, first sizes, second sizes, first modes,
/// second modes).
pub const CODE_TABLE_STRING_LEN: usize = 6 * 256;

const DEFAULT_NEAR_SLOTS: u8 = 4;
const DEFAULT_SAME_SLOTS: u8 = 3;
/// Address modes of the default table: SELF, HERE, 4 NEAR and 3 SAME.
const DEFAULT_MODES: u8 = 2 + DEFAULT_NEAR_SLOTS + DEFAULT_SAME_SLOTS;

impl CodeTable {
    /// The table of RFC 3284 section 5.6, which every xdelta3 patch uses.
    pub fn default_table() -> CodeTable {
        let mut entries = [[NOOP; 2]; 256];
        let mut next = 0usize;
        let mut push = |first: HalfInstruction, second: HalfInstruction| {
            if let Some(slot) = entries.get_mut(next) {
                *slot = [first, second];
            }
            next += 1;
        };
        let half = |operation, size| HalfInstruction { operation, size };

        push(half(Operation::Run, 0), NOOP);
        for size in 0..=17 {
            push(half(Operation::Add, size), NOOP);
        }
        for mode in 0..DEFAULT_MODES {
            push(half(Operation::Copy { mode }, 0), NOOP);
            for size in 4..=18 {
                push(half(Operation::Copy { mode }, size), NOOP);
            }
        }
        // ADD then COPY: NEAR-or-better modes get copies of 4..=6 bytes,
        // SAME modes only of 4 bytes.
        for mode in 0..DEFAULT_MODES {
            let longest_copy = if mode < 2 + DEFAULT_NEAR_SLOTS { 6 } else { 4 };
            for add_size in 1..=4 {
                for copy_size in 4..=longest_copy {
                    push(
                        half(Operation::Add, add_size),
                        half(Operation::Copy { mode }, copy_size),
                    );
                }
            }
        }
        for mode in 0..DEFAULT_MODES {
            push(half(Operation::Copy { mode }, 4), half(Operation::Add, 1));
        }
        debug_assert_eq!(next, 256);

        CodeTable {
            entries,
            near_slots: DEFAULT_NEAR_SLOTS,
            same_slots: DEFAULT_SAME_SLOTS,
        }
    }

    /// The table as the string a custom table is delta-coded against.
    pub fn to_string_form(&self) -> Vec<u8> {
        let mut out = vec![0u8; CODE_TABLE_STRING_LEN];
        for (opcode, pair) in self.entries.iter().enumerate() {
            for (which, half) in pair.iter().enumerate() {
                let (kind, mode) = match half.operation {
                    Operation::Noop => (0, 0),
                    Operation::Add => (1, 0),
                    Operation::Run => (2, 0),
                    Operation::Copy { mode } => (3, mode),
                };
                let slots = [
                    (which * 256 + opcode, kind),
                    ((2 + which) * 256 + opcode, half.size),
                    ((4 + which) * 256 + opcode, mode),
                ];
                for (index, value) in slots {
                    if let Some(byte) = out.get_mut(index) {
                        *byte = value;
                    }
                }
            }
        }
        out
    }

    /// Reads a table from its string form; `None` if it is not 1536 bytes or
    /// names an operation or mode that does not exist.
    pub fn from_string_form(text: &[u8], near_slots: u8, same_slots: u8) -> Option<CodeTable> {
        if text.len() != CODE_TABLE_STRING_LEN {
            return None;
        }
        let modes = 2 + u16::from(near_slots) + u16::from(same_slots);
        let mut entries = [[NOOP; 2]; 256];
        for (opcode, pair) in entries.iter_mut().enumerate() {
            for (which, half) in pair.iter_mut().enumerate() {
                let kind = *text.get(which * 256 + opcode)?;
                let size = *text.get((2 + which) * 256 + opcode)?;
                let mode = *text.get((4 + which) * 256 + opcode)?;
                let operation = match kind {
                    0 => Operation::Noop,
                    1 => Operation::Add,
                    2 => Operation::Run,
                    3 if u16::from(mode) < modes => Operation::Copy { mode },
                    _ => return None,
                };
                *half = HalfInstruction { operation, size };
            }
        }
        Some(CodeTable {
            entries,
            near_slots,
            same_slots,
        })
    }

    /// The opcode whose entry is exactly this pair, for the encoder.
    pub fn find(&self, first: HalfInstruction, second: HalfInstruction) -> Option<u8> {
        self.entries
            .iter()
            .position(|pair| pair[0] == first && pair[1] == second)
            .and_then(|index| u8::try_from(index).ok())
    }
}

/// Why an address could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// The address section ended inside the address.
    Truncated,
    /// The address is not before the current position, or a mode is unknown.
    Invalid,
}

/// The NEAR and SAME caches of RFC 3284 section 5.1, reset at every window.
pub struct AddressCache {
    near: Vec<u64>,
    next_near: usize,
    same: Vec<u64>,
}

impl AddressCache {
    pub fn new(near_slots: u8, same_slots: u8) -> AddressCache {
        AddressCache {
            near: vec![0; usize::from(near_slots)],
            next_near: 0,
            same: vec![0; usize::from(same_slots) * 256],
        }
    }

    pub fn reset(&mut self) {
        self.near.fill(0);
        self.same.fill(0);
        self.next_near = 0;
    }

    #[inline]
    fn remember(&mut self, address: u64) {
        if let Some(slot) = self.near.get_mut(self.next_near) {
            *slot = address;
            self.next_near += 1;
            if self.next_near == self.near.len() {
                self.next_near = 0;
            }
        }
        if !self.same.is_empty() {
            let index = (address % self.same.len() as u64) as usize;
            if let Some(slot) = self.same.get_mut(index) {
                *slot = address;
            }
        }
    }

    /// Decodes one address of the given mode from the address section.
    #[inline]
    /// `here` is the current position in the combined
    /// source-segment-then-target address space.
    pub fn decode(
        &mut self,
        mode: u8,
        here: u64,
        addresses: &mut Cursor<'_>,
    ) -> Result<u64, AddressError> {
        let mode = usize::from(mode);
        let near_count = self.near.len();
        let address = if mode == 0 {
            addresses.varint().ok_or(AddressError::Truncated)?
        } else if mode == 1 {
            let back = addresses.varint().ok_or(AddressError::Truncated)?;
            here.checked_sub(back).ok_or(AddressError::Invalid)?
        } else if mode < 2 + near_count {
            let offset = addresses.varint().ok_or(AddressError::Truncated)?;
            let base = *self.near.get(mode - 2).ok_or(AddressError::Invalid)?;
            base.checked_add(offset).ok_or(AddressError::Invalid)?
        } else {
            let bucket = mode - 2 - near_count;
            let low = addresses.byte().ok_or(AddressError::Truncated)?;
            *self
                .same
                .get(bucket * 256 + usize::from(low))
                .ok_or(AddressError::Invalid)?
        };
        if address >= here {
            return Err(AddressError::Invalid);
        }
        self.remember(address);
        Ok(address)
    }

    /// Picks the cheapest mode for `address` and returns it with what goes
    /// into the address section, updating the cache as the decoder will.
    pub fn encode(&mut self, address: u64, here: u64) -> (u8, EncodedAddress) {
        let mut best = (0u8, EncodedAddress::Varint(address));
        let mut best_len = varint_len(address);
        let here_distance = here - address;
        if varint_len(here_distance) < best_len {
            best = (1, EncodedAddress::Varint(here_distance));
            best_len = varint_len(here_distance);
        }
        for (slot, &base) in self.near.iter().enumerate() {
            if let Some(offset) = address.checked_sub(base)
                && varint_len(offset) < best_len
            {
                best = ((2 + slot) as u8, EncodedAddress::Varint(offset));
                best_len = varint_len(offset);
            }
        }
        if !self.same.is_empty() {
            let index = (address % self.same.len() as u64) as usize;
            if self.same.get(index) == Some(&address) && best_len > 1 {
                let mode = 2 + self.near.len() + index / 256;
                best = (mode as u8, EncodedAddress::Byte((index % 256) as u8));
            }
        }
        self.remember(address);
        best
    }
}

/// An address as written in the address section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodedAddress {
    Varint(u64),
    Byte(u8),
}

/// Bytes a VCDIFF integer takes.
pub fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_matches_rfc_landmarks() {
        let table = CodeTable::default_table();
        let e = &table.entries;
        assert_eq!(e[0][0].operation, Operation::Run);
        assert_eq!(
            e[1][0],
            HalfInstruction {
                operation: Operation::Add,
                size: 0
            }
        );
        assert_eq!(
            e[18][0],
            HalfInstruction {
                operation: Operation::Add,
                size: 17
            }
        );
        assert_eq!(
            e[19][0],
            HalfInstruction {
                operation: Operation::Copy { mode: 0 },
                size: 0
            }
        );
        assert_eq!(
            e[20][0],
            HalfInstruction {
                operation: Operation::Copy { mode: 0 },
                size: 4
            }
        );
        assert_eq!(
            e[162][0],
            HalfInstruction {
                operation: Operation::Copy { mode: 8 },
                size: 18
            }
        );
        assert_eq!(
            e[163],
            [
                HalfInstruction {
                    operation: Operation::Add,
                    size: 1
                },
                HalfInstruction {
                    operation: Operation::Copy { mode: 0 },
                    size: 4
                },
            ]
        );
        assert_eq!(
            e[234],
            [
                HalfInstruction {
                    operation: Operation::Add,
                    size: 4
                },
                HalfInstruction {
                    operation: Operation::Copy { mode: 5 },
                    size: 6
                },
            ]
        );
        assert_eq!(
            e[235],
            [
                HalfInstruction {
                    operation: Operation::Add,
                    size: 1
                },
                HalfInstruction {
                    operation: Operation::Copy { mode: 6 },
                    size: 4
                },
            ]
        );
        assert_eq!(
            e[255],
            [
                HalfInstruction {
                    operation: Operation::Copy { mode: 8 },
                    size: 4
                },
                HalfInstruction {
                    operation: Operation::Add,
                    size: 1
                },
            ]
        );
    }

    #[test]
    fn string_form_round_trips() {
        let table = CodeTable::default_table();
        let text = table.to_string_form();
        assert_eq!(text.len(), 1536);
        assert_eq!(text[0], 2); // RUN
        assert_eq!(text[256 * 2 + 18], 17); // size of ADD 17
        assert_eq!(CodeTable::from_string_form(&text, 4, 3), Some(table));
        assert_eq!(CodeTable::from_string_form(&text[1..], 4, 3), None);
        // Mode 8 does not exist without SAME slots.
        assert_eq!(CodeTable::from_string_form(&text, 4, 0), None);
    }

    #[test]
    fn address_modes_decode_as_rfc_example() {
        let mut cache = AddressCache::new(4, 3);
        // SELF 10, HERE back 5, NEAR[0]+7, SAME bucket 0 byte 10.
        let bytes = [10u8, 5, 7, 10];
        let mut addresses = Cursor::new(&bytes);
        assert_eq!(cache.decode(0, 100, &mut addresses), Ok(10));
        assert_eq!(cache.decode(1, 100, &mut addresses), Ok(95));
        assert_eq!(cache.decode(2, 100, &mut addresses), Ok(17));
        assert_eq!(cache.decode(6, 100, &mut addresses), Ok(10));
        assert_eq!(
            cache.decode(0, 100, &mut addresses),
            Err(AddressError::Truncated)
        );
        assert_eq!(
            cache.decode(0, 5, &mut Cursor::new(&[5])),
            Err(AddressError::Invalid)
        );
        assert_eq!(
            cache.decode(1, 5, &mut Cursor::new(&[6])),
            Err(AddressError::Invalid)
        );
        assert_eq!(
            cache.decode(9, 5, &mut Cursor::new(&[0])),
            Err(AddressError::Invalid)
        );
    }

    #[test]
    fn encode_then_decode_agree() {
        let mut encoder = AddressCache::new(4, 3);
        let mut decoder = AddressCache::new(4, 3);
        for (address, here) in [
            (1000u64, 5000u64),
            (1004, 5010),
            (4990, 5020),
            (1000, 6000),
            (70000, 90000),
        ] {
            let (mode, encoded) = encoder.encode(address, here);
            let mut bytes = Vec::new();
            match encoded {
                EncodedAddress::Varint(x) => super::super::write_varint(&mut bytes, x),
                EncodedAddress::Byte(x) => bytes.push(x),
            }
            let got = decoder.decode(mode, here, &mut Cursor::new(&bytes));
            assert_eq!(got, Ok(address));
        }
    }
}
