//! Streaming decoding of text files into UTF-8, whatever encoding they came in.

use std::io::{self, BufRead, Read};

use encoding_rs::{Decoder, Encoding};

use super::TextEncoding;

/// How much of a file is read to detect its encoding, delimiter and format.
pub(super) const SAMPLE_BYTES: usize = 64 * 1024;

const BUFFER_BYTES: usize = 16 * 1024;

impl TextEncoding {
    fn encoding_rs(self) -> &'static Encoding {
        match self {
            TextEncoding::Utf8 | TextEncoding::Utf8Bom => encoding_rs::UTF_8,
            TextEncoding::Utf16Le => encoding_rs::UTF_16LE,
            TextEncoding::Utf16Be => encoding_rs::UTF_16BE,
            TextEncoding::Windows1252 => encoding_rs::WINDOWS_1252,
        }
    }
}

/// Reads up to `limit` bytes from the reader's current position (fewer only at the end).
pub(super) fn read_sample<R: Read>(reader: &mut R, limit: usize) -> io::Result<Vec<u8>> {
    let mut sample = Vec::with_capacity(limit.min(SAMPLE_BYTES));
    reader.take(limit as u64).read_to_end(&mut sample)?;
    Ok(sample)
}

/// Decodes a sample (the start of a file, possibly cut in the middle of a character) to text.
/// A byte order mark is dropped.
pub(super) fn decode_sample(sample: &[u8], encoding: TextEncoding) -> String {
    let mut decoder = encoding.encoding_rs().new_decoder_with_bom_removal();
    let capacity = decoder
        .max_utf8_buffer_length(sample.len())
        .unwrap_or(sample.len().saturating_mul(3));
    let mut text = String::with_capacity(capacity);
    // `last: false` leaves a character cut at the end of the sample undecoded instead of turning
    // it into U+FFFD.
    let _ = decoder.decode_to_string(sample, &mut text, false);
    text
}

/// A reader that turns a byte stream in some encoding into UTF-8 as it goes, replacing malformed
/// sequences with U+FFFD. The output is always valid UTF-8, which the CSV and vCard parsers after
/// it rely on. A byte order mark matching the encoding is dropped.
pub(super) struct DecodingReader<R> {
    inner: R,
    decoder: Decoder,
    input: Box<[u8]>,
    input_start: usize,
    input_end: usize,
    input_done: bool,
    output: Box<[u8]>,
    output_start: usize,
    output_end: usize,
    finished: bool,
}

impl<R: Read> DecodingReader<R> {
    pub(super) fn new(inner: R, encoding: TextEncoding) -> Self {
        Self {
            inner,
            decoder: encoding.encoding_rs().new_decoder_with_bom_removal(),
            input: vec![0; BUFFER_BYTES].into_boxed_slice(),
            input_start: 0,
            input_end: 0,
            input_done: false,
            // Room for the worst case of one input buffer (UTF-16 to UTF-8 at most triples),
            // though the decoder also copes with less by stopping early.
            output: vec![0; BUFFER_BYTES * 3 + 16].into_boxed_slice(),
            output_start: 0,
            output_end: 0,
            finished: false,
        }
    }

    /// Decodes more output; leaves the output empty only at the end of the input.
    fn refill(&mut self) -> io::Result<()> {
        self.output_start = 0;
        self.output_end = 0;
        while self.output_end == 0 && !self.finished {
            if self.input_start == self.input_end && !self.input_done {
                self.input_start = 0;
                self.input_end = loop {
                    match self.inner.read(&mut self.input) {
                        Ok(read) => break read,
                        Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                        Err(error) => return Err(error),
                    }
                };
                self.input_done = self.input_end == 0;
            }
            let pending = self
                .input
                .get(self.input_start..self.input_end)
                .unwrap_or_default();
            let (result, read, written, _) =
                self.decoder
                    .decode_to_utf8(pending, &mut self.output, self.input_done);
            self.input_start += read;
            self.output_end = written;
            if self.input_done && result == encoding_rs::CoderResult::InputEmpty {
                self.finished = true;
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for DecodingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let count = available.len().min(buf.len());
        if let (Some(target), Some(source)) = (buf.get_mut(..count), available.get(..count)) {
            target.copy_from_slice(source);
        }
        self.consume(count);
        Ok(count)
    }
}

impl<R: Read> BufRead for DecodingReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.output_start >= self.output_end {
            self.refill()?;
        }
        Ok(self
            .output
            .get(self.output_start..self.output_end)
            .unwrap_or_default())
    }

    fn consume(&mut self, amount: usize) {
        self.output_start = (self.output_start + amount).min(self.output_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], encoding: TextEncoding) -> String {
        let mut text = String::new();
        DecodingReader::new(bytes, encoding)
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn decodes_each_encoding_and_drops_the_bom() {
        assert_eq!(
            decode_all(b"\xEF\xBB\xBFJos\xC3\xA9", TextEncoding::Utf8Bom),
            "José"
        );
        assert_eq!(
            decode_all(b"\xFF\xFEa\x00\xE9\x00", TextEncoding::Utf16Le),
            "aé"
        );
        assert_eq!(decode_all(b"\x00a\x00\xE9", TextEncoding::Utf16Be), "aé");
        assert_eq!(
            decode_all(b"M\xFCller \x80", TextEncoding::Windows1252),
            "Müller €"
        );
    }

    #[test]
    fn malformed_input_becomes_replacement_characters() {
        assert_eq!(decode_all(b"a\xFFb", TextEncoding::Utf8), "a\u{FFFD}b");
        assert_eq!(decode_all(b"a\x00b", TextEncoding::Utf16Le), "a\u{FFFD}");
    }

    #[test]
    fn characters_split_across_buffers_survive() {
        // A UTF-8 "é" straddling the 16 KiB input buffer boundary.
        let mut bytes = vec![b'a'; BUFFER_BYTES - 1];
        bytes.extend_from_slice("é".as_bytes());
        let text = decode_all(&bytes, TextEncoding::Utf8);
        assert!(text.ends_with("aé"));
        assert_eq!(text.chars().count(), BUFFER_BYTES);
    }

    #[test]
    fn a_sample_cut_mid_character_decodes_up_to_the_cut() {
        let bytes = "Zoë".as_bytes();
        assert_eq!(decode_sample(&bytes[..3], TextEncoding::Utf8), "Zo");
    }
}
