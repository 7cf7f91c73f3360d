//! PC Engine / TurboGrafx-16: an optional 512-byte Magic Super Griffin header.

use super::{HeaderKind, Layout, SystemType};

const MSG_HEADER_LEN: usize = 0x200;
const BANK: usize = 0x1000;

pub(super) fn analyze(raw: &[u8]) -> Layout {
    if !raw.len().is_multiple_of(BANK) && raw.len() > MSG_HEADER_LEN {
        Layout::headered(
            SystemType::Pce,
            raw,
            HeaderKind::MagicGriffin,
            MSG_HEADER_LEN,
        )
    } else {
        Layout::plain(SystemType::Pce, raw)
    }
}
