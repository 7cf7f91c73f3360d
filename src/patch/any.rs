//! One entry point over every format: find a patch's format, parse it, and
//! apply, describe or create it without caring which format it is.

use super::{
    ApplyOptions, Limits, PatchError, PatchSummary, aps, bps, bsp, dps, ebp, fc, ffp, gdiff, ips,
    pat, pmsr, ppf, rup, ups, vcdiff,
};
use super::{bsdiff, ips32};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum PatchFormat {
    Ips,
    Ebp,
    Ups,
    Bps,
    Ppf,
    Rup,
    Aps,
    Gdiff,
    Pat,
    Ffp,
    Fc,
    Vcdiff,
    Ips32,
    Bsdiff,
    Dps,
    Pmsr,
    Bsp,
}

impl PatchFormat {
    pub fn name(self) -> &'static str {
        match self {
            PatchFormat::Ips => ips::NAME,
            PatchFormat::Ebp => ebp::NAME,
            PatchFormat::Ups => ups::NAME,
            PatchFormat::Bps => bps::NAME,
            PatchFormat::Ppf => ppf::NAME,
            PatchFormat::Rup => rup::NAME,
            PatchFormat::Aps => aps::NAME,
            PatchFormat::Gdiff => gdiff::NAME,
            PatchFormat::Pat => pat::NAME,
            PatchFormat::Ffp => ffp::NAME,
            PatchFormat::Fc => fc::NAME,
            PatchFormat::Vcdiff => vcdiff::NAME,
            PatchFormat::Ips32 => ips32::NAME,
            PatchFormat::Bsdiff => bsdiff::NAME,
            PatchFormat::Dps => dps::NAME,
            PatchFormat::Pmsr => pmsr::NAME,
            PatchFormat::Bsp => bsp::NAME,
        }
    }

    /// The format a file extension names. `.ips` may still hold EBP, which
    /// the content tells.
    pub fn from_extension(file_name: &str) -> Option<PatchFormat> {
        let (stem, ext) = file_name.rsplit('/').next()?.rsplit_once('.')?;
        if stem.is_empty() {
            return None;
        }
        let ext = ext.to_ascii_lowercase();
        // IPS32's own extension ends in digits, as a stack's step does.
        if ext == "ips32" {
            return Some(PatchFormat::Ips32);
        }
        // RetroArch's stacks number their steps: Game.ips1, Game.ips2...
        let base = ext.trim_end_matches(|c: char| c.is_ascii_digit());
        Some(match base {
            "ips" => PatchFormat::Ips,
            "ebp" => PatchFormat::Ebp,
            "ups" => PatchFormat::Ups,
            "bps" => PatchFormat::Bps,
            "ppf" => PatchFormat::Ppf,
            "rup" => PatchFormat::Rup,
            "aps" => PatchFormat::Aps,
            "gdiff" | "gdf" => PatchFormat::Gdiff,
            "pat" => PatchFormat::Pat,
            "ffp" => PatchFormat::Ffp,
            "fc" => PatchFormat::Fc,
            "xdelta" | "xdelta3" | "vcdiff" | "delta" => PatchFormat::Vcdiff,
            "bdf" | "bsdiff" => PatchFormat::Bsdiff,
            "dps" => PatchFormat::Dps,
            // Star Rod names its packages `<mod>.mod`.
            "mod" | "pmsr" => PatchFormat::Pmsr,
            "bsp" => PatchFormat::Bsp,
            _ => return None,
        })
    }

    /// The format of a patch: binary magics first, then the extension for
    /// the text formats, whose content alone cannot say which they are.
    pub fn detect(file_name: Option<&str>, bytes: &[u8]) -> Option<PatchFormat> {
        let by_name = file_name.and_then(Self::from_extension);
        // DPS has no magic: its name and a whole header say it is one, even
        // when its name field happens to start like another format's magic.
        if by_name == Some(PatchFormat::Dps) && dps::matches(bytes) {
            return Some(PatchFormat::Dps);
        }
        // Nor has BSP: a script may start with any opcode.
        if by_name == Some(PatchFormat::Bsp) {
            return Some(PatchFormat::Bsp);
        }
        if pmsr::matches(bytes) {
            return Some(PatchFormat::Pmsr);
        }
        if rup::matches(bytes) {
            return Some(PatchFormat::Rup);
        }
        if bps::matches(bytes) {
            return Some(PatchFormat::Bps);
        }
        if ups::matches(bytes) {
            return Some(PatchFormat::Ups);
        }
        if ppf::matches(bytes) {
            return Some(PatchFormat::Ppf);
        }
        if aps::matches(bytes) {
            return Some(PatchFormat::Aps);
        }
        if gdiff::matches(bytes) {
            return Some(PatchFormat::Gdiff);
        }
        if vcdiff::matches(bytes) {
            return Some(PatchFormat::Vcdiff);
        }
        if ips32::matches(bytes) {
            return Some(PatchFormat::Ips32);
        }
        if bsdiff::matches(bytes) {
            return Some(PatchFormat::Bsdiff);
        }
        if ips::matches(bytes) {
            return Some(if ebp::matches(bytes) {
                PatchFormat::Ebp
            } else {
                PatchFormat::Ips
            });
        }
        match by_name {
            // A damaged one is still read as DPS, to say what is wrong.
            Some(PatchFormat::Dps) => Some(PatchFormat::Dps),
            Some(PatchFormat::Pat) if pat::matches(bytes) => Some(PatchFormat::Pat),
            Some(PatchFormat::Ffp) if ffp::matches(bytes) => Some(PatchFormat::Ffp),
            _ if fc::matches(bytes) && by_name.is_none_or(|f| f == PatchFormat::Fc) => {
                Some(PatchFormat::Fc)
            }
            _ => None,
        }
    }

    /// Formats `ninja-fs create` can write.
    pub fn can_create(self) -> bool {
        !matches!(
            self,
            PatchFormat::Ebp | PatchFormat::Dps | PatchFormat::Pmsr | PatchFormat::Bsp
        )
    }
}

impl std::fmt::Display for PatchFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for PatchFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PatchFormat::from_extension(&format!("x.{s}"))
            .filter(|f| f.can_create())
            .ok_or_else(|| {
                let known = PatchFormat::from_extension(&format!("x.{s}"))
                    .filter(|f| {
                        matches!(f, PatchFormat::Dps | PatchFormat::Pmsr | PatchFormat::Bsp)
                    })
                    .map(|f| format!("ninja-fs reads {f} patches but does not make them"))
                    .unwrap_or_else(|| format!("unknown patch format '{s}'"));
                format!(
                    "{known}: use one of rup bps ips ups ppf aps gdiff pat ffp fc vcdiff ips32 bdf"
                )
            })
    }
}

/// A parsed patch of any format.
#[derive(Debug, Clone)]
pub enum Patch<'a> {
    Ips(ips::IpsPatch<'a>),
    Ebp(ebp::EbpPatch<'a>),
    Ups(ups::UpsPatch<'a>),
    Bps(bps::BpsPatch<'a>),
    Ppf(ppf::PpfPatch<'a>),
    Rup(rup::RupPatch<'a>),
    Aps(aps::ApsPatch<'a>),
    Gdiff(gdiff::GdiffPatch<'a>),
    Text(PatchFormat, pat::TextPatch<'a>),
    Vcdiff(vcdiff::VcdiffPatch<'a>),
    Ips32(ips::IpsPatch<'a>),
    Bsdiff(bsdiff::BsdiffPatch<'a>),
    Dps(dps::DpsPatch<'a>),
    Pmsr(pmsr::PmsrPatch<'a>),
    Bsp(bsp::BspPatch<'a>),
}

impl<'a> Patch<'a> {
    pub fn parse(
        format: PatchFormat,
        bytes: &'a [u8],
        limits: &Limits,
    ) -> Result<Patch<'a>, PatchError> {
        Ok(match format {
            PatchFormat::Ips => Patch::Ips(ips::parse(bytes, limits)?),
            PatchFormat::Ebp => Patch::Ebp(ebp::parse(bytes, limits)?),
            PatchFormat::Ups => Patch::Ups(ups::parse(bytes, limits)?),
            PatchFormat::Bps => Patch::Bps(bps::parse(bytes, limits)?),
            PatchFormat::Ppf => Patch::Ppf(ppf::parse(bytes, limits)?),
            PatchFormat::Rup => Patch::Rup(rup::parse(bytes, limits)?),
            PatchFormat::Aps => Patch::Aps(aps::parse(bytes, limits)?),
            PatchFormat::Gdiff => Patch::Gdiff(gdiff::parse(bytes, limits)?),
            PatchFormat::Pat => Patch::Text(format, pat::parse(bytes, limits)?),
            PatchFormat::Ffp => Patch::Text(format, ffp::parse(bytes, limits)?),
            PatchFormat::Fc => Patch::Text(format, fc::parse(bytes, limits)?),
            PatchFormat::Vcdiff => Patch::Vcdiff(vcdiff::parse(bytes, limits)?),
            PatchFormat::Ips32 => Patch::Ips32(ips32::parse(bytes, limits)?),
            PatchFormat::Bsdiff => Patch::Bsdiff(bsdiff::parse(bytes, limits)?),
            PatchFormat::Dps => Patch::Dps(dps::parse(bytes, limits)?),
            PatchFormat::Pmsr => Patch::Pmsr(pmsr::parse(bytes, limits)?),
            PatchFormat::Bsp => Patch::Bsp(bsp::parse(bytes, limits)?),
        })
    }

    pub fn format(&self) -> PatchFormat {
        match self {
            Patch::Ips(_) => PatchFormat::Ips,
            Patch::Ebp(_) => PatchFormat::Ebp,
            Patch::Ups(_) => PatchFormat::Ups,
            Patch::Bps(_) => PatchFormat::Bps,
            Patch::Ppf(_) => PatchFormat::Ppf,
            Patch::Rup(_) => PatchFormat::Rup,
            Patch::Aps(_) => PatchFormat::Aps,
            Patch::Gdiff(_) => PatchFormat::Gdiff,
            Patch::Text(format, _) => *format,
            Patch::Vcdiff(_) => PatchFormat::Vcdiff,
            Patch::Ips32(_) => PatchFormat::Ips32,
            Patch::Bsdiff(_) => PatchFormat::Bsdiff,
            Patch::Dps(_) => PatchFormat::Dps,
            Patch::Pmsr(_) => PatchFormat::Pmsr,
            Patch::Bsp(_) => PatchFormat::Bsp,
        }
    }

    pub fn summary(&self) -> PatchSummary {
        match self {
            Patch::Ips(p) => p.summary(),
            Patch::Ebp(p) => p.summary(),
            Patch::Ups(p) => p.summary(),
            Patch::Bps(p) => p.summary(),
            Patch::Ppf(p) => p.summary(),
            Patch::Rup(p) => p.summary(),
            Patch::Aps(p) => p.summary(),
            Patch::Gdiff(p) => p.summary(),
            Patch::Text(_, p) => p.summary(),
            Patch::Vcdiff(p) => p.summary(),
            Patch::Ips32(p) => p.summary(),
            Patch::Bsdiff(p) => p.summary(),
            Patch::Dps(p) => p.summary(),
            Patch::Pmsr(p) => p.summary(),
            Patch::Bsp(p) => p.summary(),
        }
    }

    /// The exact length `apply` returns for a source of `source_len` bytes
    /// (RUP: the forward direction of its only entry).
    pub fn output_size(&self, source_len: u64) -> u64 {
        match self {
            Patch::Ips(p) => p.output_size(source_len),
            Patch::Ebp(p) => p.output_size(source_len),
            Patch::Ups(p) => p.output_size(source_len),
            Patch::Bps(p) => p.output_size(source_len),
            Patch::Ppf(p) => p.output_size(source_len),
            Patch::Rup(p) => p.summary().target_size.unwrap_or(source_len),
            Patch::Aps(p) => p.output_size(source_len),
            Patch::Gdiff(p) => p.output_size(source_len),
            Patch::Text(_, p) => p.output_size(source_len),
            Patch::Vcdiff(p) => p.output_size(source_len),
            Patch::Ips32(p) => p.output_size(source_len),
            Patch::Bsdiff(p) => p.output_size(source_len),
            Patch::Dps(p) => p.output_size(source_len),
            Patch::Pmsr(p) => p.output_size(source_len),
            // Unknown until the script has run: see `known_output_size`.
            Patch::Bsp(_) => source_len,
        }
    }

    /// [`Patch::output_size`] where the patch's metadata fixes it; `None`
    /// for a BSP script, whose result's size only running it tells.
    pub fn known_output_size(&self, source_len: u64) -> Option<u64> {
        match self {
            Patch::Bsp(_) => None,
            _ => Some(self.output_size(source_len)),
        }
    }

    /// Whether applying checks that the input is the patch's source, so the
    /// patch can be tried against several layouts of a ROM and pairs only
    /// where it fits.
    pub fn verifies_source(&self) -> bool {
        match self {
            // xdelta's Adler-32 checks its output windows, not the source.
            Patch::Ips(_) | Patch::Gdiff(_) | Patch::Vcdiff(_) => false,
            // Nor do IPS32's records or BSDIFF40's new size check the source.
            Patch::Ips32(_) | Patch::Bsdiff(_) => false,
            Patch::Ppf(p) => p.block_check.is_some() || p.source_size.is_some(),
            // APS N64 type 0 (what RomPatcher.js writes for any non-N64
            // ROM) carries no cartridge check: it applies to anything.
            Patch::Aps(aps::ApsPatch::N64(p)) => p.cartridge.is_some(),
            // A script verifies its input where it compares its SHA-1.
            Patch::Bsp(p) => p.verifies_source(),
            _ => true,
        }
    }

    pub fn apply(&self, source: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        match self {
            Patch::Ips(p) => p.apply(source, opts),
            Patch::Ebp(p) => p.apply(source, opts),
            Patch::Ups(p) => p.apply(source, opts),
            Patch::Bps(p) => p.apply(source, opts),
            // Undo data is used only when asked: `revert`.
            Patch::Ppf(p) => p.apply(source, opts),
            Patch::Rup(p) => p.apply(source, opts),
            Patch::Aps(p) => p.apply(source, opts),
            Patch::Gdiff(p) => p.apply(source, opts),
            // Text listings hold old and new bytes: like NINJA, applying to
            // an already patched file un-patches it.
            Patch::Text(_, p) => p.apply(source, opts).or_else(|error| match error {
                PatchError::ChecksumMismatch { .. } => p.revert(source, opts).map_err(|_| error),
                other => Err(other),
            }),
            Patch::Vcdiff(p) => p.apply(source, opts),
            Patch::Ips32(p) => p.apply(source, opts),
            Patch::Bsdiff(p) => p.apply(source, opts),
            Patch::Dps(p) => p.apply(source, opts),
            Patch::Pmsr(p) => p.apply(source, opts),
            Patch::Bsp(p) => p.apply(source, opts),
        }
    }

    /// Applies the patch backwards: `patched` is an image it made, the
    /// result the image it was made from. Only formats that carry what
    /// that needs can (PPF 3.0 undo data, NINJA2 and UPS XOR records with
    /// the target's checksum, the text listings' old bytes); the others
    /// say why not.
    pub fn revert(&self, patched: &[u8], opts: &ApplyOptions) -> Result<Vec<u8>, PatchError> {
        let refused = |detail: String| {
            Err(PatchError::Unsupported {
                format: self.format().name(),
                detail,
            })
        };
        match self {
            Patch::Ppf(p) => p.revert(patched, opts),
            Patch::Rup(p) => p.revert(patched, opts),
            Patch::Ups(p) => p.revert(patched, opts),
            Patch::Text(_, p) => p.revert(patched, opts),
            Patch::Bps(_) => refused(
                "BPS builds the new file from the original's bytes without carrying them, so it cannot be reverted; keep the original ROM".into(),
            ),
            Patch::Aps(_) => refused("reverting APS patches is not supported; keep the original ROM".into()),
            other => refused(format!(
                "{} carries no original bytes, so it cannot be reverted; keep the original ROM",
                other.format().name()
            )),
        }
    }

    /// Whether [`Patch::revert`] can work at all for this patch.
    pub fn can_revert(&self) -> bool {
        match self {
            Patch::Ppf(p) => p.has_undo,
            Patch::Rup(_) | Patch::Ups(_) | Patch::Text(..) => true,
            _ => false,
        }
    }

    /// What `ninja-fs info` shows of a patch, as (label, value) rows: text
    /// from the patch escaped (one line, nothing that acts on a terminal),
    /// sizes with their unit.
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut rows = vec![("format".to_string(), self.format().name().to_string())];
        let summary = self.summary();
        let mut push = |label: &str, value: String| rows.push((label.to_string(), value));
        let yes_no = |value: bool| if value { "yes" } else { "no" };
        match self {
            Patch::Rup(p) => {
                let info = &p.info;
                for (label, value) in [
                    ("title", &info.title),
                    ("author", &info.author),
                    ("version", &info.version),
                    ("genre", &info.genre),
                    ("language", &info.language),
                    ("date", &info.date),
                    ("website", &info.website),
                    ("description", &info.description),
                ] {
                    if label == "date" && !value.is_empty() {
                        push(label, rup_date(value));
                    } else if !value.is_empty() {
                        // NINJA2 writes a line break as the two characters
                        // `\n`: each line is shown on its own, indented.
                        let lines: Vec<String> =
                            value.split("\\n").map(crate::text::str_as_text).collect();
                        push(label, lines.join("\n    "));
                    }
                }
                push("entries", p.entries.len().to_string());
                for (i, entry) in p.entries.iter().enumerate() {
                    let system = crate::system::SystemType::from_code(entry.system_type)
                        .map(|s| s.word().to_string())
                        .unwrap_or_else(|| format!("unknown type {}", entry.system_type));
                    let name = entry.name.as_deref().map(crate::text::str_as_text);
                    push(
                        &format!("entry {}", i + 1),
                        format!(
                            "{}, system {system}: {} -> {} bytes, {} XOR records",
                            name.as_deref().unwrap_or("(single file)"),
                            entry.source_size,
                            entry.target_size,
                            entry.records.len()
                        ),
                    );
                    push("  source md5", crate::digest::hex(&entry.source_md5));
                    push("  target md5", crate::digest::hex(&entry.target_md5));
                }
                return rows;
            }
            Patch::Bps(p) => {
                push("actions", p.actions.len().to_string());
                if let Some(text) = p.metadata_text().filter(|t| !t.is_empty()) {
                    push("metadata", crate::text::str_as_text(text));
                }
            }
            Patch::Ups(p) => push("hunks", p.hunks.len().to_string()),
            Patch::Ips(p) => {
                push("records", p.records.len().to_string());
                if let Some(len) = p.truncate_to {
                    push("truncates to", format!("{len} bytes"));
                }
            }
            Patch::Ebp(p) => {
                push("records", p.records.len().to_string());
                if let Some(meta) = &p.metadata {
                    push("metadata", crate::text::str_as_text(&meta.to_string()));
                }
            }
            Patch::Ppf(p) => {
                push("version", p.version.number().to_string());
                let description = p.description_text();
                if !description.trim().is_empty() {
                    push("description", crate::text::str_as_text(&description));
                }
                push("records", p.records.len().to_string());
                push(
                    "undo data",
                    if p.has_undo {
                        "yes (apply --revert un-patches a file it patched)"
                    } else {
                        "no"
                    }
                    .to_string(),
                );
                push(
                    "block check",
                    match &p.block_check {
                        Some(check) => format!(
                            "yes: {} bytes of the image at {:#x} must match",
                            check.data.len(),
                            check.image_offset
                        ),
                        None => yes_no(false).to_string(),
                    },
                );
            }
            Patch::Vcdiff(p) => {
                push("windows", p.windows.len().to_string());
                if let Some(secondary) = p.secondary {
                    push("secondary compression", secondary.name().to_string());
                }
                match (p.app_header_names(), p.app_header) {
                    (Some(names), _) => {
                        for (label, value) in names.rows() {
                            push(label, value);
                        }
                    }
                    (None, Some(header)) => {
                        push("application header", vcdiff::bytes_as_text(header));
                    }
                    (None, None) => {}
                }
            }
            Patch::Dps(p) => {
                for (label, value) in [
                    ("name", p.name),
                    ("author", p.author),
                    ("version", p.version),
                ] {
                    if !value.is_empty() {
                        push(
                            label,
                            crate::text::str_as_text(&String::from_utf8_lossy(value)),
                        );
                    }
                }
                if p.flag == 1 {
                    push("flag", "1 (the author marked it unstable)".to_string());
                }
                push(
                    "original size",
                    crate::system::bytes_text(u64::from(p.original_size)),
                );
                push("records", p.records.len().to_string());
                push("output size", crate::system::bytes_text(p.output_size));
                return rows;
            }
            Patch::Pmsr(p) => {
                push("base ROM", pmsr::BASE_ROM_NAME.to_string());
                push("records", p.records.len().to_string());
                if p.compressed {
                    push("compression", "Yay0".to_string());
                }
            }
            Patch::Bsp(p) => {
                push(
                    "script size",
                    crate::system::bytes_text(p.script.len() as u64),
                );
                if p.source_sha1s.is_empty() {
                    push(
                        "source SHA-1",
                        "none found: the script checks no fixed SHA-1 of its input".to_string(),
                    );
                }
                for hash in &p.source_sha1s {
                    push("source SHA-1", crate::digest::hex(hash));
                }
                for hash in &p.result_sha1s {
                    push("result SHA-1", crate::digest::hex(hash));
                }
                for message in &p.messages {
                    push("message", crate::text::str_as_text(message));
                }
                if p.has_menu {
                    push("menu", "yes: ninja-fs takes its first option".to_string());
                }
                push(
                    "output size",
                    "known only by running the script".to_string(),
                );
                return rows;
            }
            Patch::Ips32(p) => push("records", p.records.len().to_string()),
            Patch::Bsdiff(p) => {
                for (label, block) in [
                    ("control block", p.control),
                    ("diff block", p.diff),
                    ("extra block", p.extra),
                ] {
                    let size = crate::system::bytes_text(block.len() as u64);
                    push(label, format!("{size}, bzip2"));
                }
            }
            Patch::Aps(_) | Patch::Gdiff(_) | Patch::Text(..) => {}
        }
        if let Some(size) = summary.source_size {
            push("source size", crate::system::bytes_text(size));
        }
        if let Some(size) = summary.target_size {
            push("target size", crate::system::bytes_text(size));
        }
        if let Some(sum) = summary.source_checksum {
            push("source checksum", sum.to_string());
        }
        if let Some(sum) = summary.target_checksum {
            push("target checksum", sum.to_string());
        }
        rows
    }
}

/// A NINJA2 date, `YYYYMMDD`, as it is; anything else escaped, with a word
/// on what it should have been (RomPatcher.js writes its month in hex).
fn rup_date(value: &str) -> String {
    if value.len() == 8 && value.bytes().all(|b| b.is_ascii_digit()) {
        value.to_string()
    } else {
        format!(
            "{} (not the YYYYMMDD NINJA2 writes)",
            crate::text::str_as_text(value)
        )
    }
}

/// Makes a patch from `source` to `target` in `format` (RUP has its own
/// entry point, [`rup::create`], since it needs system types and metadata).
pub fn create(format: PatchFormat, source: &[u8], target: &[u8]) -> Result<Vec<u8>, PatchError> {
    match format {
        PatchFormat::Ips => ips::create(source, target),
        PatchFormat::Ups => ups::create(source, target),
        PatchFormat::Bps => bps::create(source, target),
        PatchFormat::Ppf => ppf::create(source, target),
        PatchFormat::Aps => aps::create(source, target),
        PatchFormat::Gdiff => gdiff::create(source, target),
        PatchFormat::Pat => pat::create(source, target),
        PatchFormat::Ffp => ffp::create(source, target),
        PatchFormat::Fc => fc::create(source, target),
        PatchFormat::Vcdiff => vcdiff::create(source, target),
        PatchFormat::Ips32 => ips32::create(source, target),
        PatchFormat::Bsdiff => bsdiff::create(source, target),
        PatchFormat::Rup => rup::create(
            &[rup::CreateEntry {
                name: None,
                system_type: 0,
                source,
                target,
            }],
            &rup::RupInfo::default(),
        ),
        PatchFormat::Ebp => Err(PatchError::Unsupported {
            format: ebp::NAME,
            detail: "making EBP patches is not supported; make an IPS patch instead".into(),
        }),
        PatchFormat::Dps | PatchFormat::Pmsr | PatchFormat::Bsp => Err(PatchError::Unsupported {
            format: format.name(),
            detail: format!(
                "ninja-fs applies {} patches but does not make them; make a BPS patch instead",
                format.name()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(format: PatchFormat, bytes: &[u8]) -> Patch<'_> {
        Patch::parse(format, bytes, &Limits::default()).unwrap()
    }

    #[test]
    fn text_patches_applied_to_their_result_unpatch() {
        let original: Vec<u8> = (0..64u8).collect();
        let mut patched = original.clone();
        patched[3] = 0xEE;
        patched[40] = 0x11;
        for format in [PatchFormat::Pat, PatchFormat::Ffp, PatchFormat::Fc] {
            let bytes = create(format, &original, &patched).unwrap();
            let patch = parsed(format, &bytes);
            let opts = ApplyOptions::default();
            assert_eq!(patch.apply(&original, &opts).unwrap(), patched, "{format}");
            assert_eq!(patch.apply(&patched, &opts).unwrap(), original, "{format}");
            // Neither image: the old bytes' mismatch is reported.
            let other = vec![0x55; 64];
            assert!(matches!(
                patch.apply(&other, &opts),
                Err(PatchError::ChecksumMismatch { .. })
            ));
        }
    }

    #[test]
    fn only_patches_with_a_source_check_verify_their_source() {
        let source: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        let mut target = source.clone();
        target[100] ^= 0xFF;
        // Not an N64 image: APS N64 type 0, no cartridge check.
        let aps_simple = create(PatchFormat::Aps, &source, &target).unwrap();
        assert!(!parsed(PatchFormat::Aps, &aps_simple).verifies_source());
        // The wrong source: type 0 applies to it anyway.
        let other = vec![0u8; 4096];
        assert!(
            parsed(PatchFormat::Aps, &aps_simple)
                .apply(&other, &ApplyOptions::default())
                .is_ok()
        );
        for format in [PatchFormat::Bps, PatchFormat::Ups, PatchFormat::Rup] {
            let bytes = create(format, &source, &target).unwrap();
            assert!(parsed(format, &bytes).verifies_source(), "{format}");
        }
        let ips = create(PatchFormat::Ips, &source, &target).unwrap();
        assert!(!parsed(PatchFormat::Ips, &ips).verifies_source());
    }
}
