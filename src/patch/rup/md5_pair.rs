//! MD5 (RFC 1321) of two byte strings computed side by side.
//!
//! Written here because no MD5 crate does it: each MD5 step waits on the
//! one before (about 4.5 cycles a byte whatever the code), so one core
//! has room for a second, independent hash in the gaps. A RUP apply must
//! hash its input and its result; hashing both in one loop ran at 1.6x the
//! speed of two `md-5` calls on this project's machine (BENCHMARKS.md, "RUP
//! apply"). Tests check every digest against the `md-5` crate.

/// The sines of RFC 1321, section 3.4: `floor(abs(sin(i + 1)) * 2^32)`.
const SINES: [u32; 64] = [
    0xd76a_a478,
    0xe8c7_b756,
    0x2420_70db,
    0xc1bd_ceee,
    0xf57c_0faf,
    0x4787_c62a,
    0xa830_4613,
    0xfd46_9501,
    0x6980_98d8,
    0x8b44_f7af,
    0xffff_5bb1,
    0x895c_d7be,
    0x6b90_1122,
    0xfd98_7193,
    0xa679_438e,
    0x49b4_0821,
    0xf61e_2562,
    0xc040_b340,
    0x265e_5a51,
    0xe9b6_c7aa,
    0xd62f_105d,
    0x0244_1453,
    0xd8a1_e681,
    0xe7d3_fbc8,
    0x21e1_cde6,
    0xc337_07d6,
    0xf4d5_0d87,
    0x455a_14ed,
    0xa9e3_e905,
    0xfcef_a3f8,
    0x676f_02d9,
    0x8d2a_4c8a,
    0xfffa_3942,
    0x8771_f681,
    0x6d9d_6122,
    0xfde5_380c,
    0xa4be_ea44,
    0x4bde_cfa9,
    0xf6bb_4b60,
    0xbebf_bc70,
    0x289b_7ec6,
    0xeaa1_27fa,
    0xd4ef_3085,
    0x0488_1d05,
    0xd9d4_d039,
    0xe6db_99e5,
    0x1fa2_7cf8,
    0xc4ac_5665,
    0xf429_2244,
    0x432a_ff97,
    0xab94_23a7,
    0xfc93_a039,
    0x655b_59c3,
    0x8f0c_cc92,
    0xffef_f47d,
    0x8584_5dd1,
    0x6fa8_7e4f,
    0xfe2c_e6e0,
    0xa301_4314,
    0x4e08_11a1,
    0xf753_7e82,
    0xbd3a_f235,
    0x2ad7_d2bb,
    0xeb86_d391,
];

/// Rotation of each step, four per round.
const SHIFTS: [[u32; 4]; 4] = [
    [7, 12, 17, 22],
    [5, 9, 14, 20],
    [4, 11, 16, 23],
    [6, 10, 15, 21],
];

const INITIAL: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// MD5's block: a piece hashed as it is made must be a multiple of it.
pub const BLOCK: usize = 64;

/// One 64-byte block into each of `N` independent states. Every step is
/// done for all lanes before the next, so their chains interleave.
#[inline(always)]
fn compress<const N: usize>(states: &mut [[u32; 4]; N], blocks: [&[u8]; N]) {
    let mut words = [[0u32; 16]; N];
    for (lane_words, block) in words.iter_mut().zip(blocks) {
        for (word, bytes) in lane_words.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
    }
    let mut a = states.map(|state| state[0]);
    let mut b = states.map(|state| state[1]);
    let mut c = states.map(|state| state[2]);
    let mut d = states.map(|state| state[3]);
    // One step: `$a` becomes `$b + ((a + f(b, c, d) + sine + word) <<< shift)`.
    macro_rules! step {
        ($f:expr, $a:ident, $b:ident, $c:ident, $d:ident, $step:expr, $word:expr, $shift:expr) => {
            for lane in 0..N {
                let (x, y, z) = ($b[lane], $c[lane], $d[lane]);
                $a[lane] = $a[lane]
                    .wrapping_add(SINES[$step])
                    .wrapping_add(words[lane][$word])
                    .wrapping_add($f(x, y, z))
                    .rotate_left($shift)
                    .wrapping_add(x);
            }
        };
    }
    // Sixteen steps, the registers turning by one each step.
    macro_rules! round {
        ($round:expr, $f:expr, $word:expr) => {
            let [s0, s1, s2, s3] = SHIFTS[$round];
            for quarter in 0..4 {
                let first = $round * 16 + quarter * 4;
                step!($f, a, b, c, d, first, $word(quarter * 4), s0);
                step!($f, d, a, b, c, first + 1, $word(quarter * 4 + 1), s1);
                step!($f, c, d, a, b, first + 2, $word(quarter * 4 + 2), s2);
                step!($f, b, c, d, a, first + 3, $word(quarter * 4 + 3), s3);
            }
        };
    }
    // Each function is written so that the fewest operations wait on `x`,
    // the register the step before just made: the chain through `x` is
    // what limits the speed. Round 2's `(x & z) | (y & !z)` is a sum (the
    // two halves share no bit), so `y & !z` joins the early additions and
    // only one AND and one ADD wait on `x` (7 % faster than three
    // dependent operations, BENCHMARKS.md).
    round!(0, |x: u32, y: u32, z: u32| z ^ (x & (y ^ z)), |i: usize| i);
    round!(
        1,
        |x: u32, y: u32, z: u32| (y & !z).wrapping_add(x & z),
        |i: usize| (5 * i + 1) % 16
    );
    round!(2, |x: u32, y: u32, z: u32| x ^ (y ^ z), |i: usize| (3 * i
        + 5)
        % 16);
    round!(3, |x: u32, y: u32, z: u32| y ^ (x | !z), |i: usize| (7 * i)
        % 16);
    for (lane, state) in states.iter_mut().enumerate() {
        state[0] = state[0].wrapping_add(a[lane]);
        state[1] = state[1].wrapping_add(b[lane]);
        state[2] = state[2].wrapping_add(c[lane]);
        state[3] = state[3].wrapping_add(d[lane]);
    }
}

/// An MD5 fed whole 64-byte blocks, so that a result made piece by piece
/// can be hashed without keeping it.
#[derive(Clone, Copy)]
pub struct Md5Blocks {
    state: [u32; 4],
    /// Bytes hashed so far.
    len: u64,
}

impl Md5Blocks {
    pub fn new() -> Md5Blocks {
        Md5Blocks {
            state: INITIAL,
            len: 0,
        }
    }

    /// Hashes the whole blocks of `bytes`; a partial block at the end is
    /// left for [`Md5Blocks::finish`].
    pub fn update(&mut self, bytes: &[u8]) {
        for block in bytes.chunks_exact(BLOCK) {
            compress(std::array::from_mut(&mut self.state), [block]);
        }
        self.len += whole_len(bytes) as u64;
    }

    /// Hashes the whole blocks of `first` into `self` and those of `second`
    /// into `other`, in one loop: as many as the shorter has, the rest of
    /// the longer alone.
    pub fn update_pair(&mut self, first: &[u8], other: &mut Md5Blocks, second: &[u8]) {
        let mut states = [self.state, other.state];
        for (one, two) in first.chunks_exact(BLOCK).zip(second.chunks_exact(BLOCK)) {
            compress(&mut states, [one, two]);
        }
        [self.state, other.state] = states;
        let done = first.len().min(second.len()) / BLOCK * BLOCK;
        self.len += done as u64;
        other.len += done as u64;
        self.update(first.get(done..).unwrap_or_default());
        other.update(second.get(done..).unwrap_or_default());
    }

    /// The digest of everything hashed followed by `tail`.
    pub fn finish(mut self, tail: &[u8]) -> [u8; 16] {
        self.update(tail);
        let tail = tail.get(whole_len(tail)..).unwrap_or_default();
        let Md5Blocks { mut state, len } = self;
        // The tail, the 0x80 marker, zeros and the bit length: one or two blocks.
        let mut last = [0u8; 2 * BLOCK];
        let blocks = if tail.len() < BLOCK - 8 { 1 } else { 2 };
        last[..tail.len()].copy_from_slice(tail);
        last[tail.len()] = 0x80;
        let bits = (len + tail.len() as u64).wrapping_mul(8);
        last[blocks * BLOCK - 8..blocks * BLOCK].copy_from_slice(&bits.to_le_bytes());
        for block in last[..blocks * BLOCK].chunks_exact(BLOCK) {
            compress(std::array::from_mut(&mut state), [block]);
        }
        let mut digest = [0u8; 16];
        for (bytes, word) in digest.chunks_exact_mut(4).zip(state) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        digest
    }
}

/// The length of the whole blocks at the start of `bytes`.
pub fn whole_len(bytes: &[u8]) -> usize {
    bytes.len() - bytes.len() % BLOCK
}

/// The MD5s of `first` and of `second`.
pub fn md5_pair(first: &[u8], second: &[u8]) -> ([u8; 16], [u8; 16]) {
    let (mut one, mut two) = (Md5Blocks::new(), Md5Blocks::new());
    one.update_pair(first, &mut two, second);
    (
        one.finish(&first[whole_len(first)..]),
        two.finish(&second[whole_len(second)..]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};
    use proptest::prelude::*;

    fn reference(bytes: &[u8]) -> [u8; 16] {
        Md5::digest(bytes).into()
    }

    #[test]
    fn rfc_1321_test_suite() {
        let cases: [(&[u8], &str); 4] = [
            (b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
            (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (text, hex) in cases {
            let (one, two) = md5_pair(text, b"abc");
            assert_eq!(crate::digest::hex(&one), hex);
            assert_eq!(crate::digest::hex(&two), "900150983cd24fb0d6963f7d28e17f72");
        }
    }

    #[test]
    fn every_length_around_the_block_edges() {
        let bytes: Vec<u8> = (0..400u32).map(|i| (i * 37 + 11) as u8).collect();
        for first in 0..200 {
            let second = 399 - first;
            let (one, two) = md5_pair(&bytes[..first], &bytes[first..first + second]);
            assert_eq!(one, reference(&bytes[..first]), "length {first}");
            assert_eq!(
                two,
                reference(&bytes[first..first + second]),
                "length {second}"
            );
        }
    }

    #[test]
    fn megabytes() {
        let bytes: Vec<u8> = (0..(3 << 20) + 77u32)
            .map(|i| (i ^ (i >> 9)) as u8)
            .collect();
        let (one, two) = md5_pair(&bytes, &bytes[1000..]);
        assert_eq!(one, reference(&bytes));
        assert_eq!(two, reference(&bytes[1000..]));
    }

    proptest! {
        #[test]
        fn blocks_fed_in_any_pieces_give_the_same_digests(
            first in proptest::collection::vec(any::<u8>(), 0..700),
            second in proptest::collection::vec(any::<u8>(), 0..700),
            cuts in proptest::collection::vec(0usize..12, 0..6),
        ) {
            // Both fed whole blocks in pieces, paired and alone, then the rest.
            let (mut one, mut two) = (Md5Blocks::new(), Md5Blocks::new());
            let (mut at_one, mut at_two) = (0, 0);
            for (n, blocks) in cuts.into_iter().enumerate() {
                let take = |at: usize, bytes: &[u8]| {
                    let end = (at + blocks * BLOCK).min(whole_len(bytes));
                    at.min(end)..end
                };
                let (range_one, range_two) = (take(at_one, &first), take(at_two, &second));
                match n % 3 {
                    0 => one.update_pair(&first[range_one.clone()], &mut two, &second[range_two.clone()]),
                    1 => one.update(&first[range_one.clone()]),
                    _ => two.update(&second[range_two.clone()]),
                }
                match n % 3 {
                    0 => (at_one, at_two) = (range_one.end, range_two.end),
                    1 => at_one = range_one.end,
                    _ => at_two = range_two.end,
                }
            }
            prop_assert_eq!(one.finish(&first[at_one..]), reference(&first));
            prop_assert_eq!(two.finish(&second[at_two..]), reference(&second));
        }

        #[test]
        fn same_digests_as_md5_crate(
            first in proptest::collection::vec(any::<u8>(), 0..700),
            second in proptest::collection::vec(any::<u8>(), 0..700),
        ) {
            let (one, two) = md5_pair(&first, &second);
            prop_assert_eq!(one, reference(&first));
            prop_assert_eq!(two, reference(&second));
        }
    }
}
