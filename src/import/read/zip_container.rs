//! The ZIP container under XLSX and ODS files, read entry by entry under the caps of
//! [`Limits`]: the number of entries is checked before the archive's directory is loaded, and
//! every byte an entry inflates to is counted as it is read, so a bomb is stopped after inflating
//! no more than a cap, never by its declared sizes (which it may lie about).

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_xml::events::BytesStart;
use zip::ZipArchive;
use zip::read::ZipFile;

use super::ReadError;
use super::limits::{Cap, Limits};
use super::text::read_sample;

/// An XLSX or ODS file's archive.
pub(super) struct Archive<R: Read + Seek> {
    zip: ZipArchive<R>,
    limits: Limits,
    /// Bytes inflated from every entry read so far.
    inflated: Arc<AtomicU64>,
}

impl<R: Read + Seek> Archive<R> {
    pub(super) fn open(mut reader: R, limits: &Limits) -> Result<Self, ReadError> {
        if let Some(entries) = declared_entries(&mut reader)
            && entries > limits.zip_entries
        {
            return Err(Cap::ZipEntries.exceeded(limits));
        }
        reader.seek(SeekFrom::Start(0))?;
        let zip = ZipArchive::new(reader).map_err(|error| zip_error(error, limits))?;
        Ok(Self {
            zip,
            limits: *limits,
            inflated: Arc::default(),
        })
    }

    /// The entries' names, in the order of the archive's directory.
    pub(super) fn names(&self) -> Vec<String> {
        (0..self.zip.len())
            .filter_map(|index| self.zip.name_for_index(index)?.ok())
            .map(|name| name.into_owned())
            .collect()
    }

    /// The index of an entry by its part name: as OOXML and ODF name parts, case-insensitively,
    /// with or without a leading `/`, with `\` taken for `/` (some writers use it).
    fn find(&self, part: &str) -> Option<usize> {
        let wanted = normalize(part);
        if let Some(index) = self.zip.index_for_name(&wanted) {
            return Some(index);
        }
        (0..self.zip.len()).find(|&index| {
            self.zip
                .name_for_index(index)
                .and_then(Result::ok)
                .is_some_and(|name| normalize(&name).eq_ignore_ascii_case(&wanted))
        })
    }

    /// An entry as XML, or `None` if the archive has no such part.
    pub(super) fn xml(&mut self, part: &str) -> Result<Option<Xml<'_, R>>, ReadError> {
        let Some(index) = self.find(part) else {
            return Ok(None);
        };
        let limits = self.limits;
        let inflated = self.inflated.clone();
        let file = self
            .zip
            .by_index(index)
            .map_err(|error| zip_error(error, &limits))?;
        let entry = Entry {
            inner: file,
            read: 0,
            since_tag: 0,
            limits,
            inflated,
        };
        let mut reader = quick_xml::Reader::from_reader(BufReader::with_capacity(64 * 1024, entry));
        let config = reader.config_mut();
        // A mismatched end tag is the writer's mistake, not a reason to refuse its rows.
        config.check_end_names = false;
        config.expand_empty_elements = false;
        Ok(Some(reader))
    }

    pub(super) fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Part names as the archive's directory holds them.
fn normalize(part: &str) -> String {
    part.replace('\\', "/").trim_start_matches('/').to_owned()
}

/// An XML part being read.
pub(super) type Xml<'a, R> = quick_xml::Reader<BufReader<Entry<'a, R>>>;

/// One entry, inflating under the caps.
pub(super) struct Entry<'a, R: Read + Seek> {
    inner: ZipFile<'a, R>,
    read: u64,
    /// Bytes since the last `<`: the length of the XML token being read.
    since_tag: u64,
    limits: Limits,
    inflated: Arc<AtomicU64>,
}

impl<R: Read + Seek> Read for Entry<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let chunk = buf.get(..n).unwrap_or_default();
        let count = n as u64;
        self.read += count;
        if self.read > self.limits.inflated_entry_bytes {
            return Err(over(Cap::InflatedEntryBytes));
        }
        let total = self.inflated.fetch_add(count, Ordering::Relaxed) + count;
        if total > self.limits.inflated_file_bytes {
            return Err(over(Cap::InflatedFileBytes));
        }
        let mut start = 0;
        for at in memchr::memchr_iter(b'<', chunk) {
            if self.since_tag + (at - start) as u64 > self.limits.xml_token_bytes {
                return Err(over(Cap::XmlTokenBytes));
            }
            self.since_tag = 0;
            start = at + 1;
        }
        self.since_tag += (n - start) as u64;
        if self.since_tag > self.limits.xml_token_bytes {
            return Err(over(Cap::XmlTokenBytes));
        }
        if self.limits.check_time().is_err() {
            return Err(over(Cap::PreviewSeconds));
        }
        Ok(n)
    }
}

/// A cap passed while inflating, carried through the ZIP and XML readers' I/O errors.
#[derive(Debug)]
struct OverCap(Cap);

impl std::fmt::Display for OverCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "over the cap {}", self.0.name())
    }
}

impl std::error::Error for OverCap {}

fn over(cap: Cap) -> std::io::Error {
    std::io::Error::other(OverCap(cap))
}

fn cap_of(error: &std::io::Error) -> Option<Cap> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<OverCap>())
        .map(|OverCap(cap)| *cap)
}

pub(super) fn zip_error(error: zip::result::ZipError, limits: &Limits) -> ReadError {
    if let zip::result::ZipError::Io(io) = &error
        && let Some(cap) = cap_of(io)
    {
        return cap.exceeded(limits);
    }
    ReadError::Spreadsheet(format!("the archive is damaged: {error}"))
}

/// A failure of the XML reader: a cap passed while inflating, or XML that does not parse.
pub(super) fn xml_error(error: quick_xml::Error, part: &str, limits: &Limits) -> ReadError {
    if let quick_xml::Error::Io(io) = &error
        && let Some(cap) = cap_of(io)
    {
        return cap.exceeded(limits);
    }
    ReadError::Spreadsheet(format!("{part} is not well-formed XML: {error}"))
}

/// An attribute's value by its local name (namespace prefixes differ between writers).
pub(super) fn attribute(element: &BytesStart<'_>, local: &str) -> Option<String> {
    element.attributes().flatten().find_map(|attribute| {
        (attribute.key.local_name().as_ref() == local).then(|| {
            attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_or_else(
                    |_| attribute.value.clone().into_owned(),
                    |value| value.into_owned(),
                )
        })
    })
}

/// An attribute's value as written (no entities resolved): for numbers and names, on hot paths.
pub(super) fn raw_attribute<'a>(
    element: &'a BytesStart<'_>,
    local: &str,
) -> Option<std::borrow::Cow<'a, str>> {
    element
        .attributes()
        .flatten()
        .find(|attribute| attribute.key.local_name().as_ref() == local)
        .map(|attribute| attribute.value)
}

/// A general reference in text (`&amp;`, `&#233;`) as the text it stands for.
pub(super) fn reference_text(reference: &quick_xml::events::BytesRef<'_>) -> Option<String> {
    match reference.resolve_char_ref() {
        Ok(Some(character)) => Some(character.to_string()),
        Ok(None) => quick_xml::escape::resolve_predefined_entity(reference).map(str::to_owned),
        Err(_) => None,
    }
}

/// The number of entries an archive's end-of-central-directory record declares (its ZIP64
/// record's, when it has one), or `None` when there is no readable record: the ZIP reader then
/// refuses the file itself.
fn declared_entries<R: Read + Seek>(reader: &mut R) -> Option<u64> {
    const EOCD_LEN: u64 = 22;
    let len = reader.seek(SeekFrom::End(0)).ok()?;
    if len < EOCD_LEN {
        return None;
    }
    // The record closes the file, after a comment of up to 64 KiB.
    let tail_len = len.min(EOCD_LEN + 65535);
    reader.seek(SeekFrom::Start(len - tail_len)).ok()?;
    let tail = read_sample(reader, usize::try_from(tail_len).ok()?).ok()?;
    let last_start = tail.len().checked_sub(EOCD_LEN as usize)?;
    let eocd = (0..=last_start)
        .rev()
        .find(|&at| tail.get(at..at + 4) == Some(b"PK\x05\x06".as_slice()))?;
    let entries = u64::from(u16::from_le_bytes(
        tail.get(eocd + 10..eocd + 12)?.try_into().ok()?,
    ));
    // A ZIP64 locator just before the record points at the ZIP64 record, whose count is 64 bits.
    let zip64 = eocd
        .checked_sub(20)
        .filter(|&at| tail.get(at..at + 4) == Some(b"PK\x06\x07".as_slice()))
        .and_then(|at| tail.get(at + 8..at + 16)?.try_into().ok())
        .map(u64::from_le_bytes);
    let Some(offset) = zip64 else {
        return Some(entries);
    };
    reader.seek(SeekFrom::Start(offset)).ok()?;
    let record = read_sample(reader, 56).ok()?;
    if record.get(..4) != Some(b"PK\x06\x06".as_slice()) {
        return Some(entries);
    }
    let entries64 = u64::from_le_bytes(record.get(32..40)?.try_into().ok()?);
    Some(entries.max(entries64))
}
