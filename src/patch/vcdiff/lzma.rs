//! xdelta3's LZMA secondary compressor (secondary id 2).
//!
//! xdelta3 keeps one liblzma stream encoder per section kind (data,
//! instructions, addresses) for the whole patch: an .xz stream with one
//! LZMA2 block and no integrity check, sync-flushed at the end of each
//! window's section and never finished. So the first compressed section of
//! each kind starts with the .xz stream header, later ones continue the same
//! LZMA2 block, and the dictionary carries over between windows. Decoding
//! therefore keeps one liblzma stream decoder per section kind, fed window
//! by window, exactly as xdelta3 does.

use xz2::stream::{Action, Status, Stream};

/// Dictionary memory liblzma may use: xdelta3's highest preset (-9) needs
/// a 64 MiB dictionary; a hostile header may not make it allocate more.
const MEMORY_LIMIT: u64 = 256 << 20;

/// Why an LZMA section could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LzmaError {
    EndOfInput,
    Invalid(String),
    UnusedInput,
}

impl std::fmt::Display for LzmaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LzmaError::EndOfInput => write!(f, "LZMA stream ends early"),
            LzmaError::Invalid(why) => write!(f, "LZMA stream is invalid ({why})"),
            LzmaError::UnusedInput => write!(f, "LZMA section has bytes after its end"),
        }
    }
}

/// The decoder for one section kind, carried from window to window.
pub struct LzmaSectionDecoder {
    stream: Stream,
}

impl LzmaSectionDecoder {
    pub fn new() -> Result<LzmaSectionDecoder, LzmaError> {
        let stream = Stream::new_stream_decoder(MEMORY_LIMIT, 0)
            .map_err(|e| LzmaError::Invalid(e.to_string()))?;
        Ok(LzmaSectionDecoder { stream })
    }

    /// Decodes the next window's section into exactly `output_len` bytes,
    /// which must use up all of `input`.
    pub fn decode(&mut self, input: &[u8], output_len: usize) -> Result<Vec<u8>, LzmaError> {
        let mut output = vec![0u8; output_len];
        let mut consumed = 0usize;
        let mut produced = 0usize;
        while produced < output_len {
            let rest_in = input.get(consumed..).unwrap_or_default();
            let rest_out = output.get_mut(produced..).unwrap_or_default();
            let (in_before, out_before) = (self.stream.total_in(), self.stream.total_out());
            let status = self
                .stream
                .process(rest_in, rest_out, Action::Run)
                .map_err(|e| LzmaError::Invalid(e.to_string()))?;
            let took = (self.stream.total_in() - in_before) as usize;
            let gave = (self.stream.total_out() - out_before) as usize;
            consumed += took;
            produced += gave;
            if produced < output_len {
                if status == Status::StreamEnd {
                    return Err(LzmaError::Invalid("stream ended early".into()));
                }
                if took == 0 && gave == 0 {
                    return Err(LzmaError::EndOfInput);
                }
            }
        }
        if consumed != input.len() {
            return Err(LzmaError::UnusedInput);
        }
        Ok(output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compresses several chunks the way xdelta3 does: one stream encoder,
    /// sync-flushed after each chunk and never finished.
    fn xdelta_style_chunks(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let options = xz2::stream::LzmaOptions::new_preset(6).unwrap();
        let mut filters = xz2::stream::Filters::new();
        filters.lzma2(&options);
        let mut encoder = Stream::new_stream_encoder(&filters, xz2::stream::Check::None).unwrap();
        chunks
            .iter()
            .map(|chunk| {
                let mut out = Vec::with_capacity(chunk.len() + 1024);
                let mut fed = 0;
                loop {
                    let before = encoder.total_in();
                    let status = encoder
                        .process_vec(&chunk[fed..], &mut out, Action::SyncFlush)
                        .unwrap();
                    fed += (encoder.total_in() - before) as usize;
                    if status == Status::StreamEnd
                        || (fed == chunk.len() && out.len() < out.capacity())
                    {
                        break;
                    }
                    out.reserve(4096);
                }
                out
            })
            .collect()
    }

    #[test]
    fn decodes_sync_flushed_sections_across_windows() {
        let first = b"hello hello hello hello, the same words again and again".repeat(20);
        let second = b"and again the same words, hello hello".repeat(30);
        let sections = xdelta_style_chunks(&[&first, &second]);
        assert_eq!(&sections[0][..6], b"\xFD7zXZ\x00");
        let mut decoder = LzmaSectionDecoder::new().unwrap();
        assert_eq!(decoder.decode(&sections[0], first.len()).unwrap(), first);
        assert_eq!(decoder.decode(&sections[1], second.len()).unwrap(), second);
    }

    #[test]
    fn short_and_long_sections_are_errors() {
        let data = b"some data some data some data".repeat(10);
        let sections = xdelta_style_chunks(&[&data]);
        let section = &sections[0];
        let mut decoder = LzmaSectionDecoder::new().unwrap();
        assert_eq!(
            decoder.decode(&section[..section.len() - 3], data.len()),
            Err(LzmaError::EndOfInput)
        );
        let mut decoder = LzmaSectionDecoder::new().unwrap();
        assert_eq!(
            decoder.decode(section, data.len() - 1),
            Err(LzmaError::UnusedInput)
        );
        let mut decoder = LzmaSectionDecoder::new().unwrap();
        assert!(matches!(
            decoder.decode(b"not xz at all", 4),
            Err(LzmaError::Invalid(_))
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        #[test]
        fn arbitrary_bytes_never_panic(
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            len in 0usize..4096,
        ) {
            if let Ok(mut decoder) = LzmaSectionDecoder::new() {
                let _ = decoder.decode(&input, len);
            }
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_header_never_panic(
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        ) {
            let mut input = xdelta_style_chunks(&[b"x"])[0][..24].to_vec();
            input.extend_from_slice(&tail);
            if let Ok(mut decoder) = LzmaSectionDecoder::new() {
                let _ = decoder.decode(&input, 1000);
            }
        }
    }
}
