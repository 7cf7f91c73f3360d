//! PC Engine / TurboGrafx-16: an optional 512-byte Magic Super Griffin
//! header, and US TurboGrafx-16 dumps with every byte's bits reversed.
//!
//! The US console's cartridge connector has its data lines in the opposite
//! order from the PC Engine's, so many US dumps hold every byte bit-reversed.
//! How uCON64 tells them (facts, not its code): a US game checks the region
//! early with `AND #$40` / `BEQ` (`29 40 F0`, or `29 40 80` where a hack
//! defeated it) in its first 32 KiB, which in a reversed dump reads
//! `94 02 0F` (or `94 02 01`); failing that, the first 512 bytes of a game
//! look like 6502-family code (SEI, LDA #, STA) in the right bit order and
//! not in the other.

use super::{HeaderKind, Layout, SystemType};

const MSG_HEADER_LEN: usize = 0x200;
const BANK: usize = 0x1000;

/// How far into the game data the region check is looked for.
const REGION_CHECK_WINDOW: usize = 0x8000;
/// `AND #$40; BEQ`, and the same with `BEQ` turned into `BRA` (the usual
/// US-to-Japan hack).
const REGION_CHECKS: [[u8; 3]; 2] = [[0x29, 0x40, 0xF0], [0x29, 0x40, 0x80]];
/// How much of the start the code test reads.
const CODE_WINDOW: usize = 0x200;

/// What `info` says of a bit-reversed dump.
pub const BIT_REVERSED_NOTE: &str = "bit order reversed (US TurboGrafx-16 dump): undone";

pub(super) fn analyze(raw: &[u8]) -> Layout {
    let mut layout = if !raw.len().is_multiple_of(BANK) && raw.len() > MSG_HEADER_LEN {
        Layout::headered(
            SystemType::Pce,
            raw,
            HeaderKind::MagicGriffin,
            MSG_HEADER_LEN,
        )
    } else {
        Layout::plain(SystemType::Pce, raw)
    };
    let data = raw.get(layout.data_offset..).unwrap_or_default();
    if bits_reversed(data) {
        layout.bits_reversed = true;
        layout.notes.push(BIT_REVERSED_NOTE.to_string());
    }
    layout
}

/// Every byte of `data` with its bits reversed: the same operation undoes
/// and makes a US TurboGrafx-16 dump.
pub fn reverse_bits(data: &[u8]) -> Vec<u8> {
    data.iter().map(|byte| byte.reverse_bits()).collect()
}

/// Whether the game data `data` (headerless) is a bit-reversed dump. Never
/// true for both an image and its reversal: the region check decides when
/// only one bit order holds it, the code test otherwise.
pub fn bits_reversed(data: &[u8]) -> bool {
    let window = data.get(..REGION_CHECK_WINDOW).unwrap_or(data);
    let holds = |reversed: bool| {
        REGION_CHECKS.iter().any(|check| {
            let wanted: Vec<u8> = if reversed {
                reverse_bits(check)
            } else {
                check.to_vec()
            };
            window.windows(wanted.len()).any(|w| w == wanted)
        })
    };
    match (holds(false), holds(true)) {
        (false, true) => return true,
        (true, false) => return false,
        _ => {}
    }
    let head = data.get(..CODE_WINDOW).unwrap_or(data);
    !looks_like_code(head) && looks_like_code(&reverse_bits(head))
}

/// uCON64's test of a PC Engine game's first bytes: not mostly blank
/// (0xFF, or zeros without code), and at least two of SEI (0x78), LDA
/// immediate (0xA9) and STA (0x85 zero page, 0x8D absolute) appear.
fn looks_like_code(head: &[u8]) -> bool {
    let count = |value: u8| head.iter().filter(|byte| **byte == value).count();
    let has = |values: &[u8]| head.iter().any(|byte| values.contains(byte));
    let (sei, lda, sta) = (has(&[0x78]), has(&[0xA9]), has(&[0x85, 0x8D]));
    if count(0xFF) > 200 || (count(0x00) > 200 && !(sei && lda)) {
        return false;
    }
    usize::from(sei) + usize::from(lda) + usize::from(sta) >= 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HELLO: &[u8] = include_bytes!("../../tests/fixtures/roms/pce/cc65_hello.pce");

    #[test]
    fn the_region_check_is_known_in_both_bit_orders() {
        assert_eq!(reverse_bits(&REGION_CHECKS[0]), [0x94, 0x02, 0x0F]);
        assert_eq!(reverse_bits(&REGION_CHECKS[1]), [0x94, 0x02, 0x01]);
        let mut image = vec![0u8; 0x4000];
        image[0x1234..0x1237].copy_from_slice(&[0x94, 0x02, 0x0F]);
        assert!(bits_reversed(&image));
        image[0x1234..0x1237].copy_from_slice(&[0x29, 0x40, 0xF0]);
        assert!(!bits_reversed(&image));
        // Past the first 32 KiB, the check is not looked for.
        let mut late = vec![0u8; 0x10000];
        late[0x9000..0x9003].copy_from_slice(&[0x94, 0x02, 0x0F]);
        assert!(!bits_reversed(&late));
    }

    #[test]
    fn a_reversed_hello_world_is_found_and_undone() {
        assert!(!bits_reversed(HELLO));
        let reversed = reverse_bits(HELLO);
        assert!(bits_reversed(&reversed));
        let layout = analyze(&reversed);
        assert!(layout.bits_reversed);
        assert_eq!(layout.notes, [BIT_REVERSED_NOTE]);
        let normalized = crate::system::normalize(&reversed, &layout).unwrap();
        assert!(normalized.as_ref() == HELLO);
        // With a Magic Super Griffin header in front, too.
        let mut headered = vec![0u8; MSG_HEADER_LEN];
        headered.extend_from_slice(&reversed);
        let layout = analyze(&headered);
        assert!(layout.bits_reversed);
        assert!(
            crate::system::normalize(&headered, &layout)
                .unwrap()
                .as_ref()
                == HELLO
        );
    }

    proptest! {
        #[test]
        fn reversing_twice_is_identity(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            prop_assert_eq!(reverse_bits(&reverse_bits(&data)), data);
        }

        #[test]
        fn an_image_and_its_reversal_are_never_both_reversed(
            data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            prop_assert!(!(bits_reversed(&data) && bits_reversed(&reverse_bits(&data))));
        }

        /// The plain fixture, whatever whole banks follow its 8 KiB or
        /// whatever is changed past its code, is never taken for a reversed
        /// dump.
        #[test]
        fn the_plain_fixture_is_never_taken_for_reversed(
            tail in proptest::collection::vec(any::<u8>(), 0..0x6000),
            changes in proptest::collection::vec((CODE_WINDOW..HELLO.len(), any::<u8>()), 0..16)) {
            let mut image = HELLO.to_vec();
            for (at, value) in changes {
                image[at] = value;
            }
            image.extend_from_slice(&tail[..tail.len() / BANK * BANK]);
            prop_assume!(!image.windows(3).take(REGION_CHECK_WINDOW).any(|w| {
                w == [0x94, 0x02, 0x0F] || w == [0x94, 0x02, 0x01]
            }));
            prop_assert!(!bits_reversed(&image));
            prop_assert!(!analyze(&image).bits_reversed);
        }
    }
}
