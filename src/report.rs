//! The `info` report of a ROM: what was found, internal header fields and
//! checksums of the normalized image, for people (an aligned table) and for
//! scripts (stable JSON, documented in docs/info-json.md).

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::digest::Digests;
use crate::system::{self, Fields, HeaderKind, Layout, SystemError, SystemType};

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
}

#[derive(Debug, Clone, Serialize)]
pub struct Checksums {
    pub crc32: String,
    pub md5: String,
    pub sha1: String,
}

fn ordered_fields<S: serde::Serializer>(fields: &Fields, s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(fields.len()))?;
    for (key, value) in fields {
        map.serialize_entry(key, value)?;
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
        let header = layout.header.map(|kind| HeaderReport {
            kind: kind.name(),
            size: layout.header_len(),
            copier: match kind {
                HeaderKind::SnesCopier(copier) => Some(copier.name()),
                _ => None,
            },
            kept: kind.kept(),
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

    /// The human form: a short table with aligned values.
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
                if h.kept { "kept" } else { "dropped" }
            ),
        };
        rows.push(("header".into(), header));
        rows.push(("interleave".into(), self.interleave.into()));
        if let Some(order) = self.byte_order {
            rows.push(("byte order".into(), order.into()));
        }
        for (key, value) in &self.internal {
            let shown = match value {
                serde_json::Value::String(s) => s.clone(),
                // Padded so that true and false take the same room: the
                // filesystem knows a report's size before it hashes.
                serde_json::Value::Bool(b) => format!("{b:<5}"),
                other => other.to_string(),
            };
            rows.push((key.replace('_', " "), shown));
        }
        rows.push(("raw size".into(), self.sizes.raw.to_string()));
        rows.push(("normalized size".into(), self.sizes.normalized.to_string()));
        rows.push((
            "deinterleaved size".into(),
            self.sizes.deinterleaved.to_string(),
        ));
        rows.push(("crc32".into(), self.normalized.crc32.clone()));
        rows.push(("md5".into(), self.normalized.md5.clone()));
        rows.push(("sha1".into(), self.normalized.sha1.clone()));
        for note in &self.notes {
            rows.push(("note".into(), note.clone()));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut text = format!("{}\n", self.file);
        for (key, value) in rows {
            text.push_str(&format!("  {key:<width$}  {value}\n"));
        }
        text
    }
}
