//! The `info` report of a ROM: what was found, internal header fields and
//! checksums of the normalized image, for people (an aligned table) and for
//! scripts (stable JSON, documented in docs/info-json.md).

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::digest::Digests;
use crate::system::{self, Conversion, Fields, HeaderKind, Layout, Shown, SystemError, SystemType};

#[derive(Debug, Clone, Serialize)]
pub struct RomReport {
    pub file: String,
    pub system: &'static str,
    pub system_name: &'static str,
    pub system_code: u8,
    pub sizes: Sizes,
    pub header: Option<HeaderReport>,
    pub interleave: &'static str,
    pub byte_order: Option<&'static str>,
    pub notes: Vec<String>,
    #[serde(serialize_with = "ordered_fields")]
    pub internal: Fields,
    pub normalized: Checksums,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    pub raw: usize,
    pub normalized: usize,
    pub deinterleaved: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderReport {
    pub kind: &'static str,
    pub size: usize,
    pub copier: Option<&'static str>,
    /// Whether the deinterleaved image keeps this header.
    pub kept: bool,
    /// The header the deinterleaved image has in its place, if another.
    pub replaced_by: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Checksums {
    pub crc32: String,
    pub md5: String,
    pub sha1: String,
}

fn ordered_fields<S: serde::Serializer>(fields: &Fields, s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(fields.len()))?;
    for field in fields {
        map.serialize_entry(field.key, &field.value)?;
    }
    map.end()
}

impl RomReport {
    /// Analyzes `raw` (detected, or as `forced`) and reports on it.
    pub fn build(
        file: &str,
        raw: &[u8],
        forced: Option<SystemType>,
    ) -> Result<RomReport, SystemError> {
        let layout = system::identify(Some(file), raw, forced)?;
        let normalized = system::normalize(raw, &layout)?;
        Ok(Self::from_parts(file, raw, &normalized, &layout))
    }

    pub fn from_parts(file: &str, raw: &[u8], normalized: &[u8], layout: &Layout) -> RomReport {
        Self::with_digests(file, raw, normalized, layout, &Digests::of(normalized))
    }

    /// The report with digests given: the filesystem sizes `info/` files
    /// from a report with placeholder digests of the same width, so that a
    /// listing never hashes a ROM.
    pub fn with_digests(
        file: &str,
        raw: &[u8],
        normalized: &[u8],
        layout: &Layout,
        digests: &Digests,
    ) -> RomReport {
        let (kept, replaced_by) = match &layout.conversion {
            Some(Conversion::FfeToInes(_)) => (false, Some("iNES")),
            // An NSRT header emulators do not skip: left out.
            Some(Conversion::Header(header)) if header.is_empty() => (false, None),
            Some(Conversion::Header(_)) | None => (true, None),
        };
        let header = layout.header.map(|kind| HeaderReport {
            kind: kind.name(),
            size: layout.header_len(),
            copier: match kind {
                HeaderKind::SnesCopier(copier) => Some(copier.name()),
                _ => None,
            },
            kept: kind.kept() && kept,
            replaced_by,
        });
        RomReport {
            file: file.to_string(),
            system: layout.system.word(),
            system_name: layout.system.name(),
            system_code: layout.system.code(),
            sizes: Sizes {
                raw: raw.len(),
                normalized: normalized.len(),
                deinterleaved: layout.restored_len(normalized.len()),
            },
            header,
            interleave: layout.interleave.name(),
            byte_order: (layout.system == SystemType::N64).then(|| layout.byte_order.name()),
            notes: layout.notes.clone(),
            internal: system::describe(raw, normalized, layout),
            normalized: Checksums {
                crc32: digests.crc32_hex(),
                md5: digests.md5_hex(),
                sha1: digests.sha1_hex(),
            },
        }
    }

    /// The human form: a short table with aligned values, every value
    /// with its unit or a few words where the number alone says little,
    /// text from the file escaped, no line ending in a space.
    pub fn to_text(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![(
            "system".into(),
            format!("{} ({})", self.system, self.system_name),
        )];
        let header = match &self.header {
            None => "none".to_string(),
            Some(h) => format!(
                "{}{}, {} bytes, {}",
                h.kind,
                h.copier.map(|c| format!(" ({c})")).unwrap_or_default(),
                h.size,
                match (h.kept, h.replaced_by) {
                    (_, Some(other)) =>
                        format!("replaced by an {other} header in the deinterleaved image"),
                    (true, None) => "kept in the deinterleaved image".to_string(),
                    (false, None) => "dropped from the deinterleaved image".to_string(),
                }
            ),
        };
        rows.push(("header".into(), header));
        rows.push(("interleave".into(), self.interleave.into()));
        if let Some(order) = self.byte_order {
            rows.push(("byte order".into(), order.into()));
        }
        for field in &self.internal {
            let shown = match (&field.shown, &field.value) {
                (Shown::JsonOnly, _) => continue,
                (Shown::Text(text), _) => text.clone(),
                (Shown::Value, serde_json::Value::String(s)) => s.clone(),
                (Shown::Value, serde_json::Value::Bool(b)) => yes_no(field.key, *b).to_string(),
                (Shown::Value, other) => other.to_string(),
            };
            // "prg_rom_bytes" reads "prg rom": its value carries the unit.
            let label = field.key.strip_suffix("_bytes").unwrap_or(field.key);
            rows.push((label.replace('_', " "), shown));
        }
        let bytes = |n: usize| system::bytes_text(n as u64);
        rows.push(("raw size".into(), bytes(self.sizes.raw)));
        rows.push(("normalized size".into(), bytes(self.sizes.normalized)));
        rows.push(("deinterleaved size".into(), bytes(self.sizes.deinterleaved)));
        rows.push(("normalized crc32".into(), self.normalized.crc32.clone()));
        rows.push(("normalized md5".into(), self.normalized.md5.clone()));
        rows.push(("normalized sha1".into(), self.normalized.sha1.clone()));
        for note in &self.notes {
            rows.push(("note".into(), note.clone()));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut text = format!("{}\n", crate::text::str_as_text(&self.file));
        for (key, value) in rows {
            // Values from the file's bytes come escaped from `describe`.
            let line = format!("  {key:<width$}  {value}");
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// A yes/no field in words. A checksum's validity is worded to one width
/// either way: the filesystem sizes a report before it hashes the image.
fn yes_no(key: &str, value: bool) -> &'static str {
    match (key.ends_with("_valid"), value) {
        (true, true) => "yes, stored = computed",
        (true, false) => "no, stored != computed",
        (false, true) => "yes",
        (false, false) => "no",
    }
}
