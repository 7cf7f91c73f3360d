//! Decoder for xdelta3's DJW secondary compressor (secondary id 1): a static
//! Huffman coder in the style of bzip2, with up to 8 code tables chosen per
//! fixed-size sector, whose code lengths are themselves move-to-front and
//! run-length coded and then Huffman coded.
//!
//! Bit order: bytes are consumed least significant bit first, and a
//! multi-bit field is assembled most significant bit first. Every window's
//! section is an independent stream.

/// Why a DJW stream could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DjwError {
    /// The input ended before the output was complete.
    EndOfInput,
    /// A code, run or table in the stream is impossible.
    Invalid(&'static str),
    /// Whole bytes were left over after the output was complete.
    UnusedInput,
}

impl std::fmt::Display for DjwError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DjwError::EndOfInput => write!(f, "DJW stream ends early"),
            DjwError::Invalid(what) => write!(f, "DJW stream has {what}"),
            DjwError::UnusedInput => write!(f, "DJW stream has bytes after its end"),
        }
    }
}

const ALPHABET_SIZE: usize = 256;
const MAX_CODE_LENGTH: usize = 20;
/// Symbols of the code-length alphabet: RUN_0, RUN_1 and MTF positions 1..=20.
const CODE_LENGTH_SYMBOLS: usize = MAX_CODE_LENGTH + 2;
const MAX_CODE_LENGTH_LENGTH: usize = 15;
const MAX_SELECTOR_LENGTH: usize = 7;
/// Code lengths always sent for the code-length code (5 basic + 2 run codes).
const ALWAYS_SENT_LENGTHS: usize = 7;
const SECTOR_SIZE_UNIT: usize = 5;
/// Starting move-to-front order of code lengths, most likely first.
const INITIAL_LENGTH_ORDER: [u8; MAX_CODE_LENGTH + 1] = [
    0, 4, 5, 6, 7, 8, 9, 10, 3, 11, 2, 12, 13, 1, 14, 15, 16, 17, 18, 19, 20,
];

struct BitReader<'a> {
    input: &'a [u8],
    /// Next byte of `input` to load into `buffer`.
    loaded: usize,
    /// Loaded bits not yet used, the next one lowest.
    buffer: u64,
    available: u32,
    /// Bits used so far: decides which bytes the stream has touched.
    used: u64,
}

impl<'a> BitReader<'a> {
    fn new(input: &'a [u8]) -> Self {
        BitReader {
            input,
            loaded: 0,
            buffer: 0,
            available: 0,
            used: 0,
        }
    }

    #[inline]
    fn refill(&mut self) {
        while self.available <= 56 {
            let Some(&byte) = self.input.get(self.loaded) else {
                break;
            };
            self.buffer |= u64::from(byte) << self.available;
            self.loaded += 1;
            self.available += 8;
        }
    }

    #[inline]
    fn consume(&mut self, count: u32) {
        self.buffer >>= count;
        self.available -= count;
        self.used += u64::from(count);
    }

    #[inline]
    fn bit(&mut self) -> Result<u32, DjwError> {
        if self.available == 0 {
            self.refill();
            if self.available == 0 {
                return Err(DjwError::EndOfInput);
            }
        }
        let bit = (self.buffer & 1) as u32;
        self.consume(1);
        Ok(bit)
    }

    fn bits(&mut self, count: u32) -> Result<u32, DjwError> {
        let mut value = 0;
        for _ in 0..count {
            value = (value << 1) | self.bit()?;
        }
        Ok(value)
    }

    /// Bytes the stream has reached into, as xdelta3 counts them.
    fn bytes_touched(&self) -> u64 {
        self.used.div_ceil(8)
    }
}

/// Longest code the lookup table resolves in one step.
const TABLE_BITS: u32 = 10;
/// Sections shorter than this decode bit by bit: building tables costs more.
const TABLE_MIN_OUTPUT: usize = 4096;

/// Canonical Huffman decoder: codes of each length are consecutive, shorter
/// lengths first, symbols of one length in increasing order.
struct HuffmanDecoder {
    symbols_in_code_order: Vec<u8>,
    /// Per length: the largest code of that length, or below any such code.
    limit: [i64; MAX_CODE_LENGTH + 2],
    /// Per length: subtract from a code to get its index in code order.
    base: [i64; MAX_CODE_LENGTH + 2],
    min_length: usize,
    max_length: usize,
    /// Indexed by the next `table_bits` stream bits (first bit lowest):
    /// symbol in the low byte, code length above; 0 where bit-by-bit
    /// decoding must decide (longer codes, invalid codes).
    table: Vec<u16>,
    table_bits: u32,
}

impl HuffmanDecoder {
    fn new(lengths: &[u8], longest_allowed: usize) -> Result<HuffmanDecoder, DjwError> {
        let mut count_per_length = [0i64; MAX_CODE_LENGTH + 2];
        for &length in lengths {
            let length = usize::from(length);
            if length > longest_allowed {
                return Err(DjwError::Invalid("a code length over the maximum"));
            }
            if let Some(count) = count_per_length.get_mut(length) {
                *count += 1;
            }
        }
        let used = |length: &usize| count_per_length.get(*length).is_some_and(|&c| c > 0);
        let min_length = (1..=longest_allowed)
            .find(used)
            .unwrap_or(longest_allowed + 1);
        let max_length = (1..=longest_allowed).rev().find(used).unwrap_or(0);

        let mut limit = [-1i64; MAX_CODE_LENGTH + 2];
        let mut base = [0i64; MAX_CODE_LENGTH + 2];
        let mut first_index = [0usize; MAX_CODE_LENGTH + 2];
        if max_length > 0 {
            limit[min_length] = count_per_length[min_length] - 1;
            let mut index_before = 0i64;
            for length in min_length + 1..=max_length {
                let first_code = (limit[length - 1] + 1) << 1;
                index_before += count_per_length[length - 1];
                limit[length] = first_code + count_per_length[length] - 1;
                base[length] = first_code - index_before;
                first_index[length] = index_before as usize;
            }
        }

        let mut symbols_in_code_order = vec![0u8; lengths.iter().filter(|&&l| l != 0).count()];
        for (symbol, &length) in lengths.iter().enumerate() {
            if length == 0 {
                continue;
            }
            let slot = &mut first_index[usize::from(length)];
            if let Some(entry) = symbols_in_code_order.get_mut(*slot) {
                *entry = symbol as u8;
            }
            *slot += 1;
        }
        Ok(HuffmanDecoder {
            symbols_in_code_order,
            limit,
            base,
            min_length,
            max_length,
            table: Vec::new(),
            table_bits: 0,
        })
    }

    /// Fills the lookup table by walking the code tree exactly as the bit
    /// by bit decoder does, so both always agree, even on broken codes.
    fn build_table(&mut self) {
        let table_bits = TABLE_BITS.min(self.max_length as u32);
        if table_bits == 0 {
            return;
        }
        self.table_bits = table_bits;
        self.table = vec![0u16; 1 << table_bits];
        // (length read, code value, the same bits in stream order)
        let mut pending = vec![(0usize, 0i64, 0usize)];
        while let Some((length, code, pattern)) = pending.pop() {
            if length == self.max_length || length as u32 == table_bits {
                continue;
            }
            for bit in 0..2 {
                let (length, code) = (length + 1, (code << 1) | bit);
                let pattern = pattern | ((bit as usize) << (length - 1));
                if length >= self.min_length && code <= self.limit[length] {
                    if let Some(symbol) = self.symbol_for(code, length) {
                        let entry = u16::from(symbol) | ((length as u16) << 8);
                        let mut index = pattern;
                        while index < self.table.len() {
                            self.table[index] = entry;
                            index += 1 << length;
                        }
                    }
                } else {
                    pending.push((length, code, pattern));
                }
            }
        }
    }

    fn symbol_for(&self, code: i64, length: usize) -> Option<u8> {
        let index = usize::try_from(code - self.base[length]).ok()?;
        self.symbols_in_code_order.get(index).copied()
    }

    #[inline]
    fn decode(&self, bits: &mut BitReader<'_>) -> Result<u8, DjwError> {
        if self.table_bits != 0 {
            if bits.available < self.table_bits {
                bits.refill();
            }
            if bits.available >= self.table_bits {
                let index = (bits.buffer & ((1u64 << self.table_bits) - 1)) as usize;
                let entry = self.table.get(index).copied().unwrap_or(0);
                if entry != 0 {
                    bits.consume(u32::from(entry >> 8));
                    return Ok(entry as u8);
                }
            }
        }
        self.decode_bit_by_bit(bits)
    }

    fn decode_bit_by_bit(&self, bits: &mut BitReader<'_>) -> Result<u8, DjwError> {
        let mut code = 0i64;
        let mut length = 0usize;
        loop {
            if length == self.max_length {
                return Err(DjwError::Invalid("an undefined code"));
            }
            code = (code << 1) | i64::from(bits.bit()?);
            length += 1;
            if length >= self.min_length && code <= self.limit[length] {
                break;
            }
        }
        self.symbol_for(code, length)
            .ok_or(DjwError::Invalid("an undefined code"))
    }
}

/// Decodes `values.len()` values sent as move-to-front positions with
/// zero-run codes (RUN_0/RUN_1 as bijective base-2 digits of the repeat
/// count). With `known_zero_stride` set, a value whose counterpart that many
/// places earlier is zero is zero without being sent.
fn decode_move_to_front(
    decoder: &HuffmanDecoder,
    bits: &mut BitReader<'_>,
    order: &mut [u8],
    known_zero_stride: usize,
    values: &mut [u8],
) -> Result<(), DjwError> {
    let mut filled = 0usize;
    let mut repeats = 0usize;
    let mut pending_position = 0usize;
    let mut run_digit = 0u32;
    while filled < values.len() {
        if known_zero_stride != 0
            && filled >= known_zero_stride
            && values.get(filled - known_zero_stride) == Some(&0)
        {
            values[filled] = 0;
            filled += 1;
            continue;
        }
        if repeats != 0 {
            values[filled] = *order.first().ok_or(DjwError::Invalid("an empty table"))?;
            filled += 1;
            repeats -= 1;
            continue;
        }
        if pending_position != 0 {
            let moved = order
                .get(pending_position)
                .copied()
                .ok_or(DjwError::Invalid("a move-to-front position out of range"))?;
            order.copy_within(0..pending_position, 1);
            order[0] = moved;
            values[filled] = moved;
            filled += 1;
            pending_position = 0;
            continue;
        }
        let symbol = usize::from(decoder.decode(bits)?);
        if symbol <= 1 {
            if run_digit > 24 {
                return Err(DjwError::Invalid("an overlong run"));
            }
            repeats = (symbol + 1) << run_digit;
            run_digit += 1;
            if repeats > values.len() - filled {
                return Err(DjwError::Invalid("a run past the end of its table"));
            }
        } else {
            pending_position = symbol - 1;
            run_digit = 0;
        }
    }
    if repeats != 0 {
        return Err(DjwError::Invalid("a run past the end of its table"));
    }
    Ok(())
}

/// Decodes one DJW section into exactly `output_len` bytes, consuming all
/// of `input`.
pub fn decode(input: &[u8], output_len: usize) -> Result<Vec<u8>, DjwError> {
    if output_len == 0 {
        return Err(DjwError::Invalid("an empty output"));
    }
    let mut bits = BitReader::new(input);
    let groups = bits.bits(3)? as usize + 1;
    let sector_size = if groups > 1 {
        (bits.bits(5)? as usize + 1) * SECTOR_SIZE_UNIT
    } else {
        output_len
    };
    let sectors = 1 + (output_len - 1) / sector_size;

    // The code-length code: how many optional lengths follow, then 4 bits each.
    let sent = bits.bits(4)? as usize + ALWAYS_SENT_LENGTHS;
    let mut length_code_lengths = [0u8; CODE_LENGTH_SYMBOLS];
    for slot in length_code_lengths.iter_mut().take(sent) {
        *slot = bits.bits(4)? as u8;
    }
    let length_decoder = HuffmanDecoder::new(&length_code_lengths, MAX_CODE_LENGTH_LENGTH)?;

    let mut code_lengths = vec![0u8; ALPHABET_SIZE * groups];
    let mut length_order = INITIAL_LENGTH_ORDER;
    decode_move_to_front(
        &length_decoder,
        &mut bits,
        &mut length_order,
        ALPHABET_SIZE,
        &mut code_lengths,
    )?;
    let mut group_decoders = code_lengths
        .chunks_exact(ALPHABET_SIZE)
        .map(|lengths| HuffmanDecoder::new(lengths, MAX_CODE_LENGTH))
        .collect::<Result<Vec<_>, _>>()?;
    if output_len >= TABLE_MIN_OUTPUT {
        for decoder in &mut group_decoders {
            decoder.build_table();
        }
    }

    let mut selectors = Vec::new();
    if groups > 1 {
        let mut selector_lengths = vec![0u8; groups + 1];
        for slot in selector_lengths.iter_mut() {
            *slot = bits.bits(3)? as u8;
        }
        let selector_decoder = HuffmanDecoder::new(&selector_lengths, MAX_SELECTOR_LENGTH)?;
        let mut selector_order: Vec<u8> = (0..=groups as u8).collect();
        selectors = vec![0u8; sectors];
        decode_move_to_front(
            &selector_decoder,
            &mut bits,
            &mut selector_order,
            0,
            &mut selectors,
        )?;
    }

    let mut output = Vec::with_capacity(output_len);
    for sector in 0..sectors {
        let group = usize::from(selectors.get(sector).copied().unwrap_or(0));
        let decoder = group_decoders
            .get(group)
            .ok_or(DjwError::Invalid("a selector for a missing table"))?;
        let count = sector_size.min(output_len - output.len());
        for _ in 0..count {
            output.push(decoder.decode(&mut bits)?);
        }
    }
    if bits.bytes_touched() != input.len() as u64 {
        return Err(DjwError::UnusedInput);
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes bits the way xdelta3's encoder does, for hand-made streams.
    struct BitWriter {
        bytes: Vec<u8>,
        used: u32,
    }

    impl BitWriter {
        fn new() -> Self {
            BitWriter {
                bytes: Vec::new(),
                used: 8,
            }
        }
        fn bits(&mut self, count: u32, value: u32) {
            for shift in (0..count).rev() {
                if self.used == 8 {
                    self.bytes.push(0);
                    self.used = 0;
                }
                if value >> shift & 1 == 1 {
                    *self.bytes.last_mut().unwrap() |= 1 << self.used;
                }
                self.used += 1;
            }
        }
    }

    #[test]
    fn bits_are_read_low_bit_first_and_assembled_high_first() {
        let mut bits = BitReader::new(&[0b1010_0110, 0xFF]);
        assert_eq!(bits.bits(3), Ok(0b011));
        assert_eq!(bits.bits(5), Ok(0b00101));
        assert_eq!(bits.bits(8), Ok(0xFF));
        assert_eq!(bits.bit(), Err(DjwError::EndOfInput));
    }

    #[test]
    fn canonical_codes_follow_length_then_symbol() {
        // Lengths: a=2, b=1, c=3, d=3 -> b=0, a=10, c=110, d=111.
        let decoder = HuffmanDecoder::new(&[2, 1, 3, 3], 20).unwrap();
        let mut w = BitWriter::new();
        for (len, code) in [(1, 0b0), (2, 0b10), (3, 0b110), (3, 0b111)] {
            w.bits(len, code);
        }
        let mut bits = BitReader::new(&w.bytes);
        let decoded: Vec<u8> = (0..4).map(|_| decoder.decode(&mut bits).unwrap()).collect();
        assert_eq!(decoded, [1, 0, 2, 3]);
    }

    #[test]
    fn all_zero_lengths_decode_nothing() {
        let decoder = HuffmanDecoder::new(&[0; 4], 20).unwrap();
        let mut bits = BitReader::new(&[0xFF]);
        assert_eq!(
            decoder.decode(&mut bits),
            Err(DjwError::Invalid("an undefined code"))
        );
    }

    /// A one-table stream where every byte value has an 8-bit code: the
    /// code-length table is a single MTF move to length 8 and a run.
    fn flat_stream(data: &[u8]) -> Vec<u8> {
        let mut w = BitWriter::new();
        w.bits(3, 0); // one group
        w.bits(4, 0); // only the 7 always-sent code-length lengths
        // Code-length alphabet: RUN_0, RUN_1 and MTF position 1 (symbol 2)
        // each get a 2-bit code; symbols 3..=6 none.
        for length in [2, 2, 2, 0, 0, 0, 0] {
            w.bits(4, length);
        }
        // Codes: RUN_0=00, RUN_1=01, symbol 2=10. MTF position 1 holds
        // length 4; then 255 repeats of it, which in bijective base 2 is
        // eight RUN_0 digits (1+2+...+128).
        w.bits(2, 0b10);
        for _ in 0..8 {
            w.bits(2, 0b00);
        }
        // 256 lengths of 4 over-subscribe the code; the decoder maps codes
        // 0..=15 to symbols 0..=15 and never reaches the rest.
        for &byte in data {
            w.bits(4, u32::from(byte));
        }
        w.bytes
    }

    #[test]
    fn hand_made_stream_decodes() {
        let data = [0u8, 1, 2, 15, 7, 7, 3];
        let stream = flat_stream(&data);
        assert_eq!(decode(&stream, data.len()), Ok(data.to_vec()));
        assert_eq!(decode(&stream, data.len() + 3), Err(DjwError::EndOfInput));
        let mut longer = stream.clone();
        longer.push(0);
        assert_eq!(decode(&longer, data.len()), Err(DjwError::UnusedInput));
        assert_eq!(
            decode(&stream, 0),
            Err(DjwError::Invalid("an empty output"))
        );
    }

    /// Writes a run of `count` repeats as RUN_0/RUN_1 digits (bijective
    /// base 2, least significant first) with the given 2-bit codes.
    fn write_run(w: &mut BitWriter, mut count: u32, run0: u32, run1: u32, code_len: u32) {
        while count > 0 {
            if count % 2 == 1 {
                w.bits(code_len, run0);
                count = (count - 1) / 2;
            } else {
                w.bits(code_len, run1);
                count = (count - 2) / 2;
            }
        }
    }

    #[test]
    fn two_tables_chosen_per_sector() {
        let mut w = BitWriter::new();
        w.bits(3, 1); // two groups
        w.bits(5, 0); // sectors of 5 bytes
        w.bits(4, 0); // 7 code-length lengths follow
        // RUN_0, RUN_1, MTF positions 2 and 5 get 2-bit codes 00 01 10 11.
        for length in [2, 2, 0, 2, 0, 0, 2] {
            w.bits(4, length);
        }
        // Table 0: all 256 lengths 8 (8 is at MTF position 5).
        w.bits(2, 0b11);
        write_run(&mut w, 255, 0b00, 0b01, 2);
        // Table 1: 128 sevens (7 is now at position 5), then 128 zeros (0
        // is now at position 2).
        w.bits(2, 0b11);
        write_run(&mut w, 127, 0b00, 0b01, 2);
        w.bits(2, 0b10);
        write_run(&mut w, 127, 0b00, 0b01, 2);
        // Selector code: RUN_0 and RUN_1 2 bits, MTF position 1 one bit:
        // codes MTF1=0, RUN_0=10, RUN_1=11.
        for length in [2, 2, 1] {
            w.bits(3, length);
        }
        // Selectors 0, 1, 1, 0.
        for (len, code) in [(2, 0b10), (1, 0b0), (2, 0b10), (1, 0b0)] {
            w.bits(len, code);
        }
        let data = b"ABCDEabcdeFGHIJfghij";
        for (index, &byte) in data.iter().enumerate() {
            let table = [0, 1, 1, 0][index / 5];
            if table == 0 {
                w.bits(8, u32::from(byte));
            } else {
                w.bits(7, u32::from(byte));
            }
        }
        assert_eq!(decode(&w.bytes, data.len()), Ok(data.to_vec()));
        // Asking for fewer bytes leaves whole bytes of the stream unused.
        assert_eq!(decode(&w.bytes, 16), Err(DjwError::UnusedInput));
    }

    #[test]
    fn long_sections_use_the_table_and_agree() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 16) as u8).collect();
        let stream = flat_stream(&data);
        assert_eq!(decode(&stream, data.len()), Ok(data));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn table_and_bit_by_bit_decoding_agree(
            lengths in proptest::collection::vec(0u8..=12, 1..300),
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            if let Ok(slow) = HuffmanDecoder::new(&lengths, MAX_CODE_LENGTH) {
                let mut fast = HuffmanDecoder::new(&lengths, MAX_CODE_LENGTH).unwrap();
                fast.build_table();
                let (mut slow_bits, mut fast_bits) = (BitReader::new(&input), BitReader::new(&input));
                for _ in 0..100 {
                    let (a, b) = (slow.decode(&mut slow_bits), fast.decode(&mut fast_bits));
                    proptest::prop_assert_eq!(a, b);
                    proptest::prop_assert_eq!(slow_bits.used, fast_bits.used);
                    if a.is_err() {
                        break;
                    }
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            len in 0usize..4096,
        ) {
            let _ = decode(&input, len);
        }
    }
}
