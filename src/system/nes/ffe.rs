//! Famtasia / Front Fareast (FFE) dumps: the 512-byte header of Front
//! Fareast's Magic Card and Super Magic Card file format, read for what it
//! says about the game, and the iNES file emulators play made from it (no
//! emulator loads the FFE form).
//!
//! What the header's bytes mean, as uCON64 writes and reads them (its
//! iNES -> FFE conversion and its Super Magic Card transfer code) and as
//! the NESdev wiki documents the format:
//!
//! | byte | meaning |
//! | --- | --- |
//! | 0 | bit 7: a Magic Card game header; bit 6: a 512-byte trainer follows the header; bits 4-5: a Magic Card 4M game, bit 5 256 KiB PRG (else 128), bit 4 256 KiB CHR (else 128) |
//! | 1 | the Magic Card's mode register: bits 5-7 the latch mode (which board the copier acts as, table [`MODES`]), bit 4 mirroring (0 vertical, 1 horizontal) |
//! | 3, 4 | with byte 7 = $AA (a Super Magic Card game): PRG and CHR in 8 KiB banks |
//! | 7 | $AA for a Super Magic Card game, else 0 |
//! | 8, 9 | $AA $BB, the signature |
//! | 10 | 0 a game, 1 a real-time save state |
//!
//! After the header: the trainer if byte 0 says so, PRG, CHR. uCON64 pads
//! a 16 KiB NROM game's PRG to the 32 KiB the copier's NROM mode maps,
//! with zeros: the iNES file leaves that blank half out, or the game's
//! vectors would read zero.

use super::super::{Conversion, InesFromFfe, Layout, bytes_text, read_u16_le};

pub(super) const HEADER_LEN: usize = 0x200;
const TRAINER_LEN: usize = 0x200;
const INES_HEADER_LEN: usize = 0x10;
const PRG_BANK: usize = 0x4000;
const CHR_BANK: usize = 0x2000;
const KIB: usize = 1024;

/// One latch mode of the Magic Card (byte 1 bits 5-7).
struct Mode {
    board: &'static str,
    prg: usize,
    chr: usize,
    /// The iNES mapper of the standard board that banks the same way;
    /// `None` for the copier's own schemes (iNES mapper 6).
    mapper: Option<u8>,
}

const MODES: [Mode; 8] = [
    Mode {
        board: "UNROM",
        prg: 128 * KIB,
        chr: 0,
        mapper: Some(2),
    },
    Mode {
        board: "UNROM with CHR banking, the copier's own",
        prg: 256 * KIB,
        chr: 0,
        mapper: None,
    },
    Mode {
        board: "UOROM",
        prg: 256 * KIB,
        chr: 0,
        mapper: Some(2),
    },
    Mode {
        board: "reversed UOROM with CHR banking, the copier's own",
        prg: 256 * KIB,
        chr: 0,
        mapper: None,
    },
    Mode {
        board: "GNROM",
        prg: 128 * KIB,
        chr: 32 * KIB,
        mapper: Some(66),
    },
    Mode {
        board: "CNROM",
        prg: 32 * KIB,
        chr: 32 * KIB,
        mapper: Some(3),
    },
    Mode {
        board: "CNROM",
        prg: 32 * KIB,
        chr: 16 * KIB,
        mapper: Some(3),
    },
    Mode {
        board: "NROM",
        prg: 32 * KIB,
        chr: 8 * KIB,
        mapper: Some(0),
    },
];

/// What kind of file the FFE header says this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A Magic Card 1M/2M game: byte 1 holds its latch mode.
    MagicCard { mode: u8 },
    /// A Magic Card 4M game: byte 0 bits 4-5 give PRG and CHR.
    MagicCard4M,
    /// A Super Magic Card game: bytes 3 and 4 count 8 KiB banks.
    SuperMagicCard,
    /// A real-time save state, not a game.
    SaveState,
    /// No Magic Card header (byte 0 bit 7 clear, byte 7 not $AA), as
    /// uCON64 writes for boards the copier has no mode for.
    Unknown,
}

/// The FFE header read.
struct Header {
    kind: Kind,
    flags: u8,
    mode_byte: u8,
    prg_banks: u8,
    chr_banks: u8,
    trainer: bool,
}

impl Header {
    /// Reads the first 11 bytes of `raw`; missing bytes read as zero.
    fn read(raw: &[u8]) -> Header {
        let byte = |at: usize| raw.get(at).copied().unwrap_or(0);
        let flags = byte(0);
        let kind = if byte(10) == 1 {
            Kind::SaveState
        } else if byte(7) == 0xAA {
            Kind::SuperMagicCard
        } else if flags & 0x80 == 0 {
            Kind::Unknown
        } else if flags & 0x30 != 0 {
            Kind::MagicCard4M
        } else {
            Kind::MagicCard { mode: byte(1) >> 5 }
        };
        Header {
            kind,
            flags,
            mode_byte: byte(1),
            prg_banks: byte(3),
            chr_banks: byte(4),
            trainer: flags & 0x40 != 0,
        }
    }

    fn knows_the_game(&self) -> bool {
        !matches!(self.kind, Kind::Unknown | Kind::SaveState)
    }

    /// PRG and CHR bytes the header declares, when it declares them.
    fn sizes(&self) -> Option<(usize, usize)> {
        match self.kind {
            Kind::MagicCard { mode } => {
                let mode = &MODES[usize::from(mode & 7)];
                Some((mode.prg, mode.chr))
            }
            Kind::MagicCard4M => Some((
                if self.flags & 0x20 != 0 { 256 } else { 128 } * KIB,
                if self.flags & 0x10 != 0 { 256 } else { 128 } * KIB,
            )),
            Kind::SuperMagicCard => Some((
                usize::from(self.prg_banks) * 8 * KIB,
                usize::from(self.chr_banks) * 8 * KIB,
            )),
            Kind::SaveState | Kind::Unknown => None,
        }
    }

    /// The iNES mapper of the game the header describes: the standard board
    /// a Magic Card mode acts as, else the copier's own mapper (6 for the
    /// Magic Card, 8 for its trained GNROM mode, 17 for the Super Magic Card).
    /// A trainer is copier code that only those mappers run.
    fn mapper(&self) -> Option<u8> {
        match self.kind {
            Kind::MagicCard { mode: 4 } if self.trainer => Some(8),
            Kind::MagicCard { .. } if self.trainer => Some(6),
            Kind::MagicCard { mode } => Some(MODES[usize::from(mode & 7)].mapper.unwrap_or(6)),
            Kind::MagicCard4M => Some(6),
            Kind::SuperMagicCard => Some(17),
            Kind::SaveState | Kind::Unknown => None,
        }
    }

    /// PRG, CHR and mapper as the header says, when what it says fits
    /// `available` bytes of game data in whole iNES banks.
    fn trusted(&self, available: usize) -> Option<(usize, usize, u8)> {
        let (prg, chr) = self.sizes()?;
        let fits = prg > 0
            && prg.is_multiple_of(PRG_BANK)
            && chr.is_multiple_of(CHR_BANK)
            && prg / PRG_BANK <= 255
            && chr / CHR_BANK <= 255
            && prg + chr <= available;
        Some((prg, chr, self.mapper()?)).filter(|_| fits)
    }

    /// Bytes of game data after the header and any trainer.
    fn available(&self, raw_len: usize) -> usize {
        let trainer_len = if self.trainer { TRAINER_LEN } else { 0 };
        raw_len.saturating_sub(HEADER_LEN + trainer_len)
    }

    /// Vertical mirroring, from the mode register's bit 4.
    fn vertical(&self) -> Option<bool> {
        self.knows_the_game().then_some(self.mode_byte & 0x10 == 0)
    }
}

/// The iNES mapper of the smallest common board that holds `prg` and `chr`
/// bytes: what a dump whose FFE header says nothing is given.
fn smallest_board(prg: usize, chr: usize) -> u8 {
    match (prg, chr) {
        (prg, chr) if prg <= 32 * KIB && chr <= 8 * KIB => 0,
        (prg, chr) if prg <= 32 * KIB && chr <= 32 * KIB => 3,
        (prg, 0) if prg <= 256 * KIB => 2,
        (prg, chr) if prg <= 512 * KIB && chr <= 128 * KIB => 1,
        _ => 4,
    }
}

/// The largest power of two not above `n` (at least 1).
fn power_of_two_below(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.max(1).leading_zeros())
}

/// PRG and CHR sizes read from the game data alone (`len` bytes after any
/// trainer, at least one PRG bank): PRG the largest power of two that fits,
/// CHR the largest power of two of what is left (none under 8 KiB); what
/// remains is kept after CHR. Right for every PRG + CHR pair whose CHR is
/// smaller than its PRG, as on nearly every board.
fn sizes_from_data(len: usize) -> (usize, usize) {
    let prg = power_of_two_below(len).min(2 * KIB * KIB);
    let rest = len - prg;
    let chr = if rest >= CHR_BANK {
        power_of_two_below(rest).min(KIB * KIB)
    } else {
        0
    };
    (prg, chr)
}

/// A copier's padding: 16 KiB of one byte, 0x00 or 0xFF.
fn blank(half: &[u8]) -> bool {
    matches!(half.first(), Some(0x00 | 0xFF)) && half.iter().all(|&b| b == half[0])
}

/// How the FFE dump `raw` (at least [`HEADER_LEN`] bytes) becomes an iNES
/// file, or `None` when it cannot (a save state, too little data); either
/// way, what the user should know goes to `notes`. Reads the header and,
/// for a 32 KiB PRG, its upper half (file offsets 0x4200-0x8400, inside
/// what the library reads to detect a file).
pub(super) fn plan(raw: &[u8], notes: &mut Vec<String>) -> Option<InesFromFfe> {
    let header = Header::read(raw);
    let data = raw.get(HEADER_LEN..).unwrap_or_default();
    if header.kind == Kind::SaveState {
        notes.push(
            "a Super Magic Card real-time save state (FFE header byte 10 = 1), not a game: \
             no emulator loads it, and its deinterleaved image keeps the FFE header"
                .to_string(),
        );
        return None;
    }
    let trainer_len = if header.trainer { TRAINER_LEN } else { 0 };
    let Some(available) = data
        .len()
        .checked_sub(trainer_len)
        .filter(|&n| n >= PRG_BANK)
    else {
        notes.push(format!(
            "{} of game data is less than one 16 KiB PRG bank: no iNES file can hold it, \
             and the deinterleaved image keeps the FFE header",
            bytes_text(data.len() as u64)
        ));
        return None;
    };
    let (mut prg, chr, mapper) = match header.trusted(available) {
        Some(game) => game,
        None => {
            let (prg, chr) = sizes_from_data(available);
            let mapper = smallest_board(prg, chr);
            let why = match header.sizes() {
                Some((said_prg, said_chr)) => format!(
                    "the FFE header declares {said_prg} bytes of PRG and {said_chr} of CHR, \
                     which the file's {available} bytes of game data do not hold"
                ),
                None => "the FFE header does not say which board the game is on".to_string(),
            };
            notes.push(format!(
                "{why}: the iNES header's sizes ({prg} bytes of PRG, {chr} of CHR) are read \
                 from the data and its mapper {mapper} is a guess, the smallest common board \
                 that holds them"
            ));
            (prg, chr, mapper)
        }
    };
    let mut skip = None;
    if prg == 2 * PRG_BANK {
        let upper = trainer_len + PRG_BANK;
        if data.get(upper..upper + PRG_BANK).is_some_and(blank) {
            skip = Some((upper, PRG_BANK));
            prg = PRG_BANK;
            notes.push(
                "the FFE file pads a 16 KiB PRG to the 32 KiB its NROM mode maps, with a blank \
                 upper half: the iNES image leaves that half out, as the game's own 16 KiB"
                    .to_string(),
            );
        }
    }
    Some(InesFromFfe {
        mapper,
        vertical: header.vertical().unwrap_or(false),
        trainer: header.trainer,
        prg_len: prg,
        chr_len: chr,
        skip,
    })
}

impl InesFromFfe {
    /// Where the left-out span starts in a normalized image of `len` bytes,
    /// and how much of it there is.
    fn skipped(&self, len: usize) -> (usize, usize) {
        match self.skip {
            Some((offset, skip_len)) if offset < len => (offset, skip_len.min(len - offset)),
            _ => (len, 0),
        }
    }

    /// The iNES image's length for a normalized image of `len` bytes.
    pub fn restored_len(&self, len: usize) -> usize {
        INES_HEADER_LEN + len - self.skipped(len).1
    }

    /// The iNES header for a normalized image of `len` bytes: the declared
    /// PRG and CHR, cut to the whole banks the image holds.
    pub fn header(&self, len: usize) -> [u8; INES_HEADER_LEN] {
        let trainer = self.trainer && len >= TRAINER_LEN;
        let body =
            (len - self.skipped(len).1).saturating_sub(if trainer { TRAINER_LEN } else { 0 });
        let prg = self.prg_len.min(body / PRG_BANK * PRG_BANK);
        let chr = self.chr_len.min((body - prg) / CHR_BANK * CHR_BANK);
        let count = |bytes: usize, bank: usize| u8::try_from(bytes / bank).unwrap_or(u8::MAX);
        let mut header = [0u8; INES_HEADER_LEN];
        header[..4].copy_from_slice(b"NES\x1a");
        header[4] = count(prg, PRG_BANK);
        header[5] = count(chr, CHR_BANK);
        header[6] =
            (self.mapper & 0x0F) << 4 | if trainer { 0x04 } else { 0 } | u8::from(self.vertical);
        header[7] = self.mapper & 0xF0;
        header
    }

    /// The iNES image of `normalized`: the header, then the normalized
    /// image without the left-out span.
    pub fn restore(&self, normalized: &[u8]) -> Vec<u8> {
        let (at, skipped) = self.skipped(normalized.len());
        let mut out = Vec::with_capacity(self.restored_len(normalized.len()));
        out.extend_from_slice(&self.header(normalized.len()));
        out.extend_from_slice(&normalized[..at]);
        out.extend_from_slice(&normalized[at + skipped..]);
        out
    }
}

/// What the FFE header says, and the iNES file the deinterleaved image is.
pub(super) fn describe(raw: &[u8], layout: &Layout, out: &mut super::super::Fields) {
    let header = Header::read(raw);
    // The first two bytes were once shown as a size; they are the mode
    // bytes (below). Kept in JSON for scripts that read the key.
    if let Some(value) = read_u16_le(raw, 0) {
        out.push_json_only("ffe_size_field", value);
    }
    let kind = match header.kind {
        Kind::MagicCard { .. } => "Magic Card 1M/2M game",
        Kind::MagicCard4M => "Magic Card 4M game",
        Kind::SuperMagicCard => "Super Magic Card game",
        Kind::SaveState => "Super Magic Card real-time save state, not a game",
        Kind::Unknown => "no Magic Card game header: it does not say which board the game is on",
    };
    out.push_text(
        "ffe_header",
        kind,
        format!("{kind} (byte 0 = {:#04x})", header.flags),
    );
    match header.kind {
        Kind::MagicCard { mode } => {
            let m = &MODES[usize::from(mode & 7)];
            let chr = if m.chr == 0 {
                "CHR RAM".to_string()
            } else {
                format!("{} KiB CHR", m.chr / KIB)
            };
            let text = format!(
                "latch mode {mode}, {}: {} KiB PRG, {chr}; {} mirroring",
                m.board,
                m.prg / KIB,
                if header.mode_byte & 0x10 == 0 {
                    "vertical"
                } else {
                    "horizontal"
                }
            );
            out.push_text(
                "ffe_mode",
                text.clone(),
                format!("{:#04x}: {text}", header.mode_byte),
            );
        }
        Kind::SuperMagicCard => out.push_text(
            "ffe_banks",
            format!("{} PRG, {} CHR", header.prg_banks, header.chr_banks),
            format!(
                "{} PRG and {} CHR banks of 8 KiB",
                header.prg_banks, header.chr_banks
            ),
        ),
        _ => {}
    }
    if header.kind != Kind::SaveState {
        out.push(("trainer", header.trainer.into()));
    }
    let Some(Conversion::FfeToInes(ines)) = &layout.conversion else {
        return;
    };
    let made = ines.header(layout.normalized_len());
    out.push_text(
        "mapper",
        ines.mapper,
        format!(
            "{}, in the iNES header{}",
            super::mapper_text(u16::from(ines.mapper)),
            if header.trusted(header.available(raw.len())).is_some() {
                ""
            } else {
                " (a guess)"
            }
        ),
    );
    out.push_bytes(
        "prg_rom_bytes",
        usize::from(made[4]) as u64 * PRG_BANK as u64,
    );
    out.push_bytes(
        "chr_rom_bytes",
        usize::from(made[5]) as u64 * CHR_BANK as u64,
    );
    out.push((
        "mirroring",
        if ines.vertical {
            "vertical"
        } else {
            "horizontal"
        }
        .into(),
    ));
    let hex: Vec<String> = made.iter().map(|b| format!("{b:02x}")).collect();
    out.push_text(
        "ines_header",
        hex.join(" "),
        format!("{} (made for the deinterleaved image)", hex.join(" ")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ffe(header: &[(usize, u8)], data: &[u8]) -> Vec<u8> {
        let mut raw = vec![0u8; HEADER_LEN];
        raw[8] = 0xAA;
        raw[9] = 0xBB;
        for &(at, value) in header {
            raw[at] = value;
        }
        raw.extend_from_slice(data);
        raw
    }

    fn planned(raw: &[u8]) -> (Option<InesFromFfe>, Vec<String>) {
        let mut notes = Vec::new();
        (plan(raw, &mut notes), notes)
    }

    #[test]
    fn every_magic_card_mode_gives_its_board() {
        // (mode, iNES mapper untrained, trained)
        let expected = [
            (0, 2, 6),
            (1, 6, 6),
            (2, 2, 6),
            (3, 6, 6),
            (4, 66, 8),
            (5, 3, 6),
            (6, 3, 6),
            (7, 0, 6),
        ];
        for (mode, plain, trained) in expected {
            let m = &MODES[mode];
            let data: Vec<u8> = (0..m.prg + m.chr).map(|i| (i % 251) as u8 + 1).collect();
            let byte1 = (mode as u8) << 5 | 0x10;
            let (ines, notes) = planned(&ffe(&[(0, 0x80), (1, byte1)], &data));
            let ines = ines.unwrap();
            assert_eq!(
                (ines.mapper, ines.prg_len, ines.chr_len),
                (plain, m.prg, m.chr)
            );
            assert!(!ines.vertical, "bit 4 set: horizontal");
            assert!(notes.is_empty(), "{notes:?}");

            let mut with_trainer = vec![0xEAu8; TRAINER_LEN];
            with_trainer.extend_from_slice(&data);
            let raw = ffe(&[(0, 0xC0), (1, byte1 & 0xE0)], &with_trainer);
            let ines = planned(&raw).0.unwrap();
            assert_eq!(ines.mapper, trained, "mode {mode} trained");
            assert!(ines.trainer && ines.vertical);
            let image = ines.restore(&raw[HEADER_LEN..]);
            assert_eq!(image[6] & 0x05, 0x05, "trainer and vertical flags");
            assert_eq!(&image[16..16 + TRAINER_LEN], &with_trainer[..TRAINER_LEN]);
        }
    }

    #[test]
    fn a_16k_game_padded_to_32k_loses_its_blank_half() {
        let prg: Vec<u8> = (0..PRG_BANK).map(|i| (i % 7) as u8 + 1).collect();
        let chr = vec![0x55u8; CHR_BANK];
        for pad in [0x00u8, 0xFF] {
            let data = [prg.as_slice(), &vec![pad; PRG_BANK], &chr].concat();
            let raw = ffe(&[(0, 0x80), (1, 0xEA)], &data);
            let (ines, notes) = planned(&raw);
            let ines = ines.unwrap();
            assert_eq!(ines.skip, Some((PRG_BANK, PRG_BANK)));
            assert_eq!(notes.len(), 1);
            let image = ines.restore(&raw[HEADER_LEN..]);
            assert_eq!(
                image,
                [b"NES\x1a\x01\x01\x01\0\0\0\0\0\0\0\0\0", &prg[..], &chr].concat()
            );
            assert_eq!(ines.restored_len(data.len()), image.len());
        }
        // A real upper half stays.
        let data = [prg.as_slice(), &prg, &chr].concat();
        let ines = planned(&ffe(&[(0, 0x80), (1, 0xEA)], &data)).0.unwrap();
        assert_eq!((ines.skip, ines.prg_len), (None, 2 * PRG_BANK));
    }

    #[test]
    fn unknown_headers_get_sizes_from_the_data_and_the_smallest_board() {
        // (data length, PRG, CHR, mapper)
        let cases = [
            (16 * KIB, 16 * KIB, 0, 0),
            (40 * KIB, 32 * KIB, 8 * KIB, 0),
            (44 * KIB, 32 * KIB, 8 * KIB, 0),
            (48 * KIB, 32 * KIB, 16 * KIB, 3),
            (64 * KIB, 64 * KIB, 0, 2),
            (128 * KIB, 128 * KIB, 0, 2),
            (384 * KIB, 256 * KIB, 128 * KIB, 1),
            (768 * KIB, 512 * KIB, 256 * KIB, 4),
        ];
        for (len, prg, chr, mapper) in cases {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8 + 1).collect();
            let (ines, notes) = planned(&ffe(&[], &data));
            let ines = ines.unwrap();
            assert_eq!(
                (ines.prg_len, ines.chr_len, ines.mapper, ines.vertical),
                (prg, chr, mapper, false),
                "{len}"
            );
            assert!(notes[0].contains("a guess"), "{notes:?}");
        }
    }

    #[test]
    fn a_header_that_claims_more_than_the_file_holds_is_not_trusted() {
        // NINJA 2.0's own vector: byte 0 = 0x20, 40 KiB of data.
        let data = vec![1u8; 40 * KIB];
        let (ines, notes) = planned(&ffe(&[(0, 0xA0)], &data));
        let ines = ines.unwrap();
        assert_eq!(
            (ines.prg_len, ines.chr_len, ines.mapper),
            (32 * KIB, 8 * KIB, 0)
        );
        assert!(
            notes[0].contains("declares 262144 bytes of PRG"),
            "{notes:?}"
        );
    }

    #[test]
    fn save_states_and_scraps_stay_as_they_are() {
        let (ines, notes) = planned(&ffe(&[(10, 1)], &[1u8; 0x8000]));
        assert!(ines.is_none() && notes[0].contains("save state"));
        let (ines, notes) = planned(&ffe(&[(0, 0x80), (1, 0xEA)], &[1u8; 0x3FFF]));
        assert!(ines.is_none() && notes[0].contains("less than one 16 KiB PRG bank"));
    }

    #[test]
    fn the_header_never_claims_more_than_a_patched_image_holds() {
        let ines = InesFromFfe {
            mapper: 0x42,
            vertical: true,
            trainer: false,
            prg_len: 2 * PRG_BANK,
            chr_len: 4 * CHR_BANK,
            skip: None,
        };
        assert_eq!(
            ines.header(2 * PRG_BANK + 4 * CHR_BANK)[4..8],
            [2, 4, 0x21, 0x40]
        );
        assert_eq!(ines.header(2 * PRG_BANK + CHR_BANK + 5)[4..6], [2, 1]);
        assert_eq!(ines.header(PRG_BANK + 3)[4..6], [1, 0]);
        // Any stored values give a consistent image, never a panic.
        for skip in [(usize::MAX - 3, usize::MAX), (0, usize::MAX), (3, 600)] {
            let odd = InesFromFfe {
                trainer: true,
                skip: Some(skip),
                ..ines.clone()
            };
            for len in [0, 1, 600, 40_000] {
                let image = odd.restore(&vec![7u8; len]);
                assert_eq!(image.len(), odd.restored_len(len));
            }
        }
    }
}
