//! SMS part counting and encoding choice, the way carriers count.
//!
//! A message goes either in the GSM 03.38 7-bit default alphabet (counted in
//! septets; characters of the extension table cost two, an escape plus the
//! character) or in UCS-2 (counted in UTF-16 code units; a character outside
//! the BMP is a surrogate pair and costs two). A long message is split into
//! concatenated parts whose user-data header eats some of the room, and a
//! character is never split across two parts.

use std::borrow::Cow;

/// Septets that fit in a single GSM-7 message.
const GSM7_SINGLE: usize = 160;
/// Septets per part of a concatenated GSM-7 message (the UDH takes 7).
const GSM7_MULTI: usize = 153;
/// UTF-16 units that fit in a single UCS-2 message.
const UCS2_SINGLE: usize = 70;
/// UTF-16 units per part of a concatenated UCS-2 message (the UDH takes 3).
const UCS2_MULTI: usize = 67;

/// How a message is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 default alphabet plus its extension table.
    Gsm7,
    /// UCS-2 (really UTF-16: astral characters go as surrogate pairs).
    Ucs2,
}

impl Encoding {
    /// Stable lowercase name, as stored and shown in the API.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Gsm7 => "gsm7",
            Self::Ucs2 => "ucs2",
        }
    }

    /// Inverse of [`Encoding::as_str`]; exact match only.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gsm7" => Some(Self::Gsm7),
            "ucs2" => Some(Self::Ucs2),
            _ => None,
        }
    }
}

/// What the sender asked for; see [`encode`] for what each one sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncodingChoice {
    /// GSM-7 when the text fits it, UCS-2 otherwise; the text is never changed.
    #[default]
    Auto,
    /// Like `Auto`, but first replace typographic look-alikes (curly quotes,
    /// dashes, odd spaces...) when that is all that keeps the text out of GSM-7.
    Smart,
    /// Always UCS-2, text unchanged.
    Ucs2,
}

impl EncodingChoice {
    /// Stable lowercase name, as stored and shown in the API.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Smart => "smart",
            Self::Ucs2 => "ucs2",
        }
    }

    /// Inverse of [`EncodingChoice::as_str`]; exact match only.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "smart" => Some(Self::Smart),
            "ucs2" => Some(Self::Ucs2),
            _ => None,
        }
    }
}

/// Size of a message once encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    /// The encoding the count is for.
    pub encoding: Encoding,
    /// Septets for `Gsm7`, UTF-16 code units for `Ucs2`.
    pub units: usize,
    /// Parts the carrier bills (at least 1, even for an empty text).
    pub parts: u32,
}

/// Septets per ASCII code point: 0 = not GSM-7, 1 = basic table, 2 = extension table.
static ASCII_SEPTETS: [u8; 128] = ascii_table();

const fn ascii_table() -> [u8; 128] {
    let mut t = [0u8; 128];
    // Printable ASCII is in the basic table, with the exceptions below.
    let mut i = 0x20;
    while i < 0x7F {
        t[i] = 1;
        i += 1;
    }
    t[b'\n' as usize] = 1;
    t[b'\r' as usize] = 1;
    // Backtick has no GSM-7 code at all.
    t[b'`' as usize] = 0;
    // Extension table (escape + char): form feed and `^ { } \ [ ~ ] |`.
    t[0x0C] = 2;
    t[b'^' as usize] = 2;
    t[b'{' as usize] = 2;
    t[b'}' as usize] = 2;
    t[b'\\' as usize] = 2;
    t[b'[' as usize] = 2;
    t[b'~' as usize] = 2;
    t[b']' as usize] = 2;
    t[b'|' as usize] = 2;
    // Everything else (other controls, ESC 0x1B, DEL) is not sendable as GSM-7.
    t
}

/// Septets `ch` costs in GSM-7: `Some(1)` for the basic table, `Some(2)` for
/// the extension table (escape + char), `None` when GSM-7 cannot carry it.
/// ESC (U+001B) is `None`: it is the escape code itself, not a character.
#[must_use]
#[inline]
pub fn gsm7_septets(ch: char) -> Option<u8> {
    let c = ch as u32;
    if c < 0x80 {
        match ASCII_SEPTETS[c as usize] {
            0 => None,
            n => Some(n),
        }
    } else {
        gsm7_non_ascii(ch)
    }
}

/// The non-ASCII part of the GSM 03.38 default alphabet and extension table.
#[inline]
fn gsm7_non_ascii(ch: char) -> Option<u8> {
    match ch {
        '£' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | 'Ø' | 'ø' | 'Å' | 'å' | 'Δ' | 'Φ' | 'Γ'
        | 'Λ' | 'Ω' | 'Π' | 'Ψ' | 'Σ' | 'Θ' | 'Ξ' | 'Æ' | 'æ' | 'ß' | 'É' | '¤' | '¡' | 'Ä'
        | 'Ö' | 'Ñ' | 'Ü' | '§' | '¿' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => Some(1),
        '€' => Some(2),
        _ => None,
    }
}

/// Whether every character of `text` has a GSM-7 code.
#[must_use]
pub fn fits_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7_septets(c).is_some())
}

/// Counts `text` as sent in `encoding`.
///
/// Asking for `Gsm7` on a text that does not fit GSM-7 (see [`fits_gsm7`])
/// cannot be honoured, so such a text is counted as `Ucs2` and the returned
/// `encoding` says so; `segments(text, Encoding::Gsm7)` is therefore the
/// "auto" count. One pass, no allocation (two passes only in that fallback).
#[must_use]
pub fn segments(text: &str, encoding: Encoding) -> Segments {
    match encoding {
        Encoding::Gsm7 => gsm7_segments(text).unwrap_or_else(|| ucs2_segments(text)),
        Encoding::Ucs2 => ucs2_segments(text),
    }
}

/// Packs characters greedily into parts without splitting one; `None` as
/// soon as a character has no GSM-7 code.
fn gsm7_segments(text: &str) -> Option<Segments> {
    let mut packer = Gsm7Packer::default();
    for ch in text.chars() {
        packer.push(gsm7_septets(ch)?);
    }
    Some(packer.finish())
}

/// As [`gsm7_segments`] of what [`smart`] would send, without building it.
fn smart_gsm7_segments(text: &str) -> Option<Segments> {
    let mut packer = Gsm7Packer::default();
    for ch in text.chars() {
        match gsm7_septets(ch) {
            Some(septets) => packer.push(septets),
            None => {
                for replaced in smart_replacement(ch)?.chars() {
                    packer.push(gsm7_septets(replaced)?);
                }
            }
        }
    }
    Some(packer.finish())
}

/// GSM-7 characters packed greedily into parts, one at a time.
#[derive(Default)]
struct Gsm7Packer {
    total: usize,
    parts: usize,
    used: usize,
}

impl Gsm7Packer {
    fn push(&mut self, septets: u8) {
        let n = usize::from(septets);
        self.total += n;
        self.used += n;
        if self.used > GSM7_MULTI {
            // An escape + char pair never straddles parts: it opens the next one.
            self.parts += 1;
            self.used = n;
        }
    }

    fn finish(self) -> Segments {
        finish(Encoding::Gsm7, self.total, self.parts + 1, GSM7_SINGLE)
    }
}

fn ucs2_segments(text: &str) -> Segments {
    let mut total = 0usize;
    let mut parts = 1usize;
    let mut used = 0usize;
    for ch in text.chars() {
        let n = ch.len_utf16();
        total += n;
        used += n;
        if used > UCS2_MULTI {
            // A surrogate pair never straddles parts: it opens the next one.
            parts += 1;
            used = n;
        }
    }
    finish(Encoding::Ucs2, total, parts, UCS2_SINGLE)
}

fn finish(encoding: Encoding, units: usize, multi_parts: usize, single: usize) -> Segments {
    let parts = if units <= single { 1 } else { multi_parts };
    Segments {
        encoding,
        units,
        parts: u32::try_from(parts).unwrap_or(u32::MAX),
    }
}

/// GSM-7 stand-in for a typographic character that is not GSM-7 itself
/// (`""` = drop it). Only punctuation and spacing: never a letter or digit.
fn smart_replacement(ch: char) -> Option<&'static str> {
    Some(match ch {
        // Single quotes, apostrophes, prime, acute accent, backtick.
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '\u{00B4}' | '`' => "'",
        // Double quotes, double prime, guillemets.
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '\u{00AB}'
        | '\u{00BB}' => "\"",
        // Hyphens, dashes, minus sign, bullet.
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{2022}' => "-",
        '\u{2026}' => "...",
        '\u{2024}' => ".",
        '\u{2039}' => "<",
        '\u{203A}' => ">",
        '\u{2044}' => "/",
        // No-break and typographic spaces, tab.
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' | '\t' => " ",
        // Zero-width characters, BOM and soft hyphen are invisible: drop them.
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}' => "",
        _ => return None,
    })
}

/// What `smart` would send instead: `Some(replaced)` when replacing
/// typographic characters makes the whole text fit GSM-7 (`Cow::Borrowed`
/// when nothing needed replacing and it already fits), `None` when some
/// character that is not replaceable stands in the way (then the text goes
/// as UCS-2 unchanged).
///
/// Replacing is worth it because one curly quote otherwise turns the whole
/// message into UCS-2, which fits less than half as many characters per part.
#[must_use]
pub fn smart(text: &str) -> Option<Cow<'_, str>> {
    let Some(first) = text.find(|c| gsm7_septets(c).is_none()) else {
        return Some(Cow::Borrowed(text));
    };
    let (head, rest) = text.split_at(first);
    let mut out = String::with_capacity(text.len());
    out.push_str(head);
    for ch in rest.chars() {
        if gsm7_septets(ch).is_some() {
            out.push(ch);
        } else {
            out.push_str(smart_replacement(ch)?);
        }
    }
    Some(Cow::Owned(out))
}

/// The segments of what [`encode`] would send under `choice`, without building the text.
#[must_use]
pub fn count(text: &str, choice: EncodingChoice) -> Segments {
    match choice {
        EncodingChoice::Smart => smart_gsm7_segments(text).unwrap_or_else(|| ucs2_segments(text)),
        EncodingChoice::Auto | EncodingChoice::Ucs2 => encode(text, choice).1,
    }
}

/// The text as it will be sent under `choice`, and its segments.
///
/// - `Auto`: GSM-7 if the text fits, else UCS-2; text unchanged.
/// - `Smart`: the [`smart`] result as GSM-7 when it is `Some`, else the
///   unchanged text as UCS-2.
/// - `Ucs2`: always UCS-2, text unchanged.
#[must_use]
pub fn encode(text: &str, choice: EncodingChoice) -> (Cow<'_, str>, Segments) {
    match choice {
        // `segments` falls back to UCS-2 by itself when the text is not GSM-7.
        EncodingChoice::Auto => (Cow::Borrowed(text), segments(text, Encoding::Gsm7)),
        EncodingChoice::Smart => match smart(text) {
            Some(sent) => {
                let seg = segments(&sent, Encoding::Gsm7);
                (sent, seg)
            }
            None => (Cow::Borrowed(text), segments(text, Encoding::Ucs2)),
        },
        EncodingChoice::Ucs2 => (Cow::Borrowed(text), segments(text, Encoding::Ucs2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The GSM 03.38 basic table in code order 0x00..=0x7F; ESC (0x1B) is
    /// written as U+001B and skipped where it matters.
    const BASIC_TABLE: &str = concat!(
        "@£$¥èéùìòÇ\nØø\rÅå",
        "Δ_ΦΓΛΩΠΨΣΘΞ\u{1B}ÆæßÉ",
        " !\"#¤%&'()*+,-./",
        "0123456789:;<=>?",
        "¡ABCDEFGHIJKLMNO",
        "PQRSTUVWXYZÄÖÑÜ§",
        "¿abcdefghijklmno",
        "pqrstuvwxyzäöñüà",
    );
    const EXTENSION: &str = "\u{0C}^{}\\[~]|€";
    const TYPOGRAPHIC: &str = "‘’‚‛′´`“”„‟″«»‐‑‒–—―−…•\u{A0}\u{2000}\u{2001}\u{2002}\u{2003}\
        \u{2004}\u{2005}\u{2006}\u{2007}\u{2008}\u{2009}\u{200A}\u{202F}\u{205F}\u{3000}\t\
        \u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}\u{AD}‹›⁄\u{2024}";

    fn basic_chars() -> Vec<char> {
        BASIC_TABLE.chars().filter(|&c| c != '\u{1B}').collect()
    }

    // ---------- reference implementation (the obvious slow way) ----------

    fn ref_gsm(c: char) -> Option<usize> {
        if c != '\u{1B}' && BASIC_TABLE.contains(c) {
            Some(1)
        } else if EXTENSION.contains(c) {
            Some(2)
        } else {
            None
        }
    }

    fn reference(text: &str, encoding: Encoding) -> Segments {
        let gsm = encoding == Encoding::Gsm7 && text.chars().all(|c| ref_gsm(c).is_some());
        let sizes: Vec<usize> = if gsm {
            text.chars().map(|c| ref_gsm(c).unwrap()).collect()
        } else {
            text.chars()
                .map(|c| if u32::from(c) > 0xFFFF { 2 } else { 1 })
                .collect()
        };
        let (single, multi) = if gsm { (160, 153) } else { (70, 67) };
        let units: usize = sizes.iter().sum();
        let parts = if units <= single {
            1
        } else {
            let mut parts: Vec<Vec<usize>> = vec![Vec::new()];
            for s in sizes {
                let cur = parts.last().unwrap().iter().sum::<usize>();
                if cur + s > multi {
                    parts.push(Vec::new());
                }
                parts.last_mut().unwrap().push(s);
            }
            assert!(parts.iter().all(|p| p.iter().sum::<usize>() <= multi));
            parts.len()
        };
        Segments {
            encoding: if gsm { Encoding::Gsm7 } else { Encoding::Ucs2 },
            units,
            parts: u32::try_from(parts).unwrap(),
        }
    }

    // ---------- strategies ----------

    fn basic_char() -> impl Strategy<Value = char> {
        proptest::sample::select(basic_chars())
    }
    fn ext_char() -> impl Strategy<Value = char> {
        proptest::sample::select(EXTENSION.chars().collect::<Vec<_>>())
    }
    fn typo_char() -> impl Strategy<Value = char> {
        proptest::sample::select(TYPOGRAPHIC.chars().collect::<Vec<_>>())
    }
    /// BMP characters that are neither GSM-7 nor replaceable.
    fn bmp_other_char() -> impl Strategy<Value = char> {
        prop_oneof![
            proptest::sample::select(vec!['ç', 'á', 'í', 'ó', 'ú', 'ê', 'õ', 'ł', 'ş', '™', '©']),
            proptest::char::range('\u{0100}', '\u{017F}'),
            proptest::char::range('\u{0400}', '\u{04FF}'),
            proptest::char::range('\u{4E00}', '\u{9FFF}'),
        ]
    }
    fn astral_char() -> impl Strategy<Value = char> {
        proptest::char::range('\u{1F300}', '\u{1FAFF}')
    }
    fn mixed_char() -> impl Strategy<Value = char> {
        prop_oneof![
            6 => basic_char(),
            2 => ext_char(),
            1 => typo_char(),
            1 => bmp_other_char(),
            1 => astral_char(),
        ]
    }
    fn gsm_char() -> impl Strategy<Value = char> {
        prop_oneof![4 => basic_char(), 1 => ext_char()]
    }
    fn ucs2_char() -> impl Strategy<Value = char> {
        prop_oneof![3 => basic_char(), 1 => bmp_other_char(), 1 => astral_char()]
    }
    fn string_of(
        ch: impl Strategy<Value = char>,
        len: std::ops::RangeInclusive<usize>,
    ) -> impl Strategy<Value = String> {
        proptest::collection::vec(ch, len).prop_map(|v| v.into_iter().collect())
    }

    fn alnum(s: &str) -> Vec<char> {
        s.chars().filter(|c| c.is_alphanumeric()).collect()
    }

    fn seg(encoding: Encoding, units: usize, parts: u32) -> Segments {
        Segments {
            encoding,
            units,
            parts,
        }
    }

    // ---------- tables ----------

    #[test]
    fn basic_table_is_one_septet_each() {
        let basic = basic_chars();
        assert_eq!(basic.len(), 127);
        for c in basic {
            assert_eq!(gsm7_septets(c), Some(1), "{c:?}");
        }
    }

    #[test]
    fn extension_table_is_two_septets_each() {
        assert_eq!(EXTENSION.chars().count(), 10);
        for c in EXTENSION.chars() {
            assert_eq!(gsm7_septets(c), Some(2), "{c:?}");
        }
    }

    #[test]
    fn nothing_else_is_gsm7() {
        let basic = basic_chars();
        for u in 0..0x3_0000u32 {
            let Some(c) = char::from_u32(u) else { continue };
            if !basic.contains(&c) && !EXTENSION.contains(c) {
                assert_eq!(gsm7_septets(c), None, "{c:?}");
            }
        }
        for c in ['\u{1B}', '`', '\t', 'ç', '\u{7F}', '\u{2206}', '\u{2126}'] {
            assert_eq!(gsm7_septets(c), None, "{c:?}");
        }
    }

    #[test]
    fn replacements_are_gsm7_and_not_alphanumeric() {
        for c in TYPOGRAPHIC.chars() {
            assert_eq!(gsm7_septets(c), None, "{c:?} is GSM-7 already");
            assert!(!c.is_alphanumeric());
            let r = smart_replacement(c).unwrap_or_else(|| panic!("{c:?} not replaced"));
            assert!(fits_gsm7(r), "{c:?} -> {r:?}");
            assert!(alnum(r).is_empty());
        }
        assert_eq!(smart_replacement('ç'), None);
    }

    #[test]
    fn names_round_trip() {
        for e in [Encoding::Gsm7, Encoding::Ucs2] {
            assert_eq!(Encoding::parse(e.as_str()), Some(e));
        }
        for e in [
            EncodingChoice::Auto,
            EncodingChoice::Smart,
            EncodingChoice::Ucs2,
        ] {
            assert_eq!(EncodingChoice::parse(e.as_str()), Some(e));
        }
        assert_eq!(Encoding::parse("gsm"), None);
        assert_eq!(EncodingChoice::parse(""), None);
        assert_eq!(EncodingChoice::default(), EncodingChoice::Auto);
    }

    // ---------- segment boundaries ----------

    fn a(n: usize) -> String {
        "a".repeat(n)
    }

    #[test]
    fn empty_text_is_one_part() {
        assert_eq!(segments("", Encoding::Gsm7), seg(Encoding::Gsm7, 0, 1));
        assert_eq!(segments("", Encoding::Ucs2), seg(Encoding::Ucs2, 0, 1));
    }

    #[test]
    fn gsm7_boundaries() {
        let g = |s: &str| segments(s, Encoding::Gsm7);
        assert_eq!(g("€"), seg(Encoding::Gsm7, 2, 1));
        assert_eq!(g(&a(160)), seg(Encoding::Gsm7, 160, 1));
        assert_eq!(g(&a(161)), seg(Encoding::Gsm7, 161, 2));
        assert_eq!(g(&a(306)), seg(Encoding::Gsm7, 306, 2));
        assert_eq!(g(&a(307)), seg(Encoding::Gsm7, 307, 3));
        assert_eq!(g(&a(459)), seg(Encoding::Gsm7, 459, 3));
        assert_eq!(g(&a(460)), seg(Encoding::Gsm7, 460, 4));
        // Extension char ending exactly at 160 still fits one message.
        assert_eq!(g(&(a(158) + "€")), seg(Encoding::Gsm7, 160, 1));
        assert_eq!(g(&(a(159) + "€")), seg(Encoding::Gsm7, 161, 2));
        // € at septets 152..154 straddles the first part: it moves to part 2.
        let s = a(152) + "€" + &a(152);
        assert_eq!(g(&s), seg(Encoding::Gsm7, 306, 3));
        // € at septets 151..153 fits exactly.
        let s = a(151) + "€" + &a(153);
        assert_eq!(g(&s), seg(Encoding::Gsm7, 306, 2));
        // Same at the second boundary (306).
        let s = a(305) + "{" + &a(152);
        assert_eq!(g(&s), seg(Encoding::Gsm7, 459, 4));
        let s = a(304) + "{" + &a(153);
        assert_eq!(g(&s), seg(Encoding::Gsm7, 459, 3));
        // All extension chars: 76 per part (152 septets), never 76.5.
        assert_eq!(g(&"€".repeat(80)), seg(Encoding::Gsm7, 160, 1));
        assert_eq!(g(&"€".repeat(81)), seg(Encoding::Gsm7, 162, 2));
        assert_eq!(g(&"€".repeat(152)), seg(Encoding::Gsm7, 304, 2));
        assert_eq!(g(&"€".repeat(153)), seg(Encoding::Gsm7, 306, 3));
    }

    #[test]
    fn ucs2_boundaries() {
        let u = |s: &str| segments(s, Encoding::Ucs2);
        assert_eq!(u(&a(70)), seg(Encoding::Ucs2, 70, 1));
        assert_eq!(u(&a(71)), seg(Encoding::Ucs2, 71, 2));
        assert_eq!(u(&a(134)), seg(Encoding::Ucs2, 134, 2));
        assert_eq!(u(&a(135)), seg(Encoding::Ucs2, 135, 3));
        assert_eq!(u(&a(201)), seg(Encoding::Ucs2, 201, 3));
        assert_eq!(u(&a(202)), seg(Encoding::Ucs2, 202, 4));
        assert_eq!(u("😀"), seg(Encoding::Ucs2, 2, 1));
        assert_eq!(u(&(a(68) + "😀")), seg(Encoding::Ucs2, 70, 1));
        assert_eq!(u(&(a(69) + "😀")), seg(Encoding::Ucs2, 71, 2));
        // Surrogate pair at units 66..68 straddles: it moves to part 2.
        let s = a(66) + "😀" + &a(66);
        assert_eq!(u(&s), seg(Encoding::Ucs2, 134, 3));
        let s = a(65) + "😀" + &a(67);
        assert_eq!(u(&s), seg(Encoding::Ucs2, 134, 2));
        assert_eq!(u(&"😀".repeat(35)), seg(Encoding::Ucs2, 70, 1));
        assert_eq!(u(&"😀".repeat(66)), seg(Encoding::Ucs2, 132, 2));
        assert_eq!(u(&"😀".repeat(67)), seg(Encoding::Ucs2, 134, 3));
        // BMP non-GSM chars are one unit each.
        assert_eq!(u(&"ç".repeat(70)), seg(Encoding::Ucs2, 70, 1));
    }

    #[test]
    fn gsm7_request_on_non_gsm_text_counts_ucs2() {
        assert_eq!(segments("ça", Encoding::Gsm7), seg(Encoding::Ucs2, 2, 1));
        assert_eq!(segments("a`", Encoding::Gsm7), seg(Encoding::Ucs2, 2, 1));
        assert_eq!(segments("€", Encoding::Ucs2), seg(Encoding::Ucs2, 1, 1));
    }

    // ---------- smart / encode examples ----------

    #[test]
    fn smart_examples() {
        let s = "“Hello” — it’s…\u{A0}ok\u{200B} «x» ‹y› 1⁄2 • a\u{2024}b\tc−d";
        assert_eq!(
            smart(s).as_deref(),
            Some("\"Hello\" - it's... ok \"x\" <y> 1/2 - a.b c-d")
        );
        assert!(matches!(smart("plain €"), Some(Cow::Borrowed("plain €"))));
        assert!(matches!(smart(""), Some(Cow::Borrowed(""))));
        assert_eq!(smart("it’s ça"), None);
        assert_eq!(smart("hi 😀"), None);
        assert_eq!(smart("`code`").as_deref(), Some("'code'"));
    }

    #[test]
    fn encode_examples() {
        let (t, s) = encode("Hi {there}", EncodingChoice::Auto);
        assert_eq!((t.as_ref(), s), ("Hi {there}", seg(Encoding::Gsm7, 12, 1)));
        let (t, s) = encode("it’s", EncodingChoice::Auto);
        assert_eq!((t.as_ref(), s), ("it’s", seg(Encoding::Ucs2, 4, 1)));
        let (t, s) = encode("it’s", EncodingChoice::Smart);
        assert_eq!((t.as_ref(), s), ("it's", seg(Encoding::Gsm7, 4, 1)));
        let (t, s) = encode("it’s 😀", EncodingChoice::Smart);
        assert_eq!((t.as_ref(), s), ("it’s 😀", seg(Encoding::Ucs2, 7, 1)));
        let (t, s) = encode("Hi", EncodingChoice::Ucs2);
        assert_eq!((t.as_ref(), s), ("Hi", seg(Encoding::Ucs2, 2, 1)));
        assert!(matches!(
            encode("Hi", EncodingChoice::Smart).0,
            Cow::Borrowed("Hi")
        ));
        // Smart can save parts: 100 curly apostrophes are 2 UCS-2 parts, 1 GSM-7.
        let s = "’".repeat(100);
        assert_eq!(encode(&s, EncodingChoice::Auto).1.parts, 2);
        assert_eq!(
            encode(&s, EncodingChoice::Smart).1,
            seg(Encoding::Gsm7, 100, 1)
        );
    }

    // ---------- properties ----------

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn segments_match_reference(s in string_of(mixed_char(), 0..=400)) {
            for e in [Encoding::Gsm7, Encoding::Ucs2] {
                prop_assert_eq!(segments(&s, e), reference(&s, e));
            }
        }

        #[test]
        fn gsm7_text_matches_reference(s in string_of(gsm_char(), 0..=400)) {
            prop_assert!(fits_gsm7(&s));
            prop_assert_eq!(segments(&s, Encoding::Gsm7), reference(&s, Encoding::Gsm7));
            prop_assert_eq!(segments(&s, Encoding::Ucs2), reference(&s, Encoding::Ucs2));
        }

        #[test]
        fn gsm7_boundaries_match_reference(
            s in prop_oneof![string_of(gsm_char(), 150..=170), string_of(gsm_char(), 300..=320)]
        ) {
            prop_assert_eq!(segments(&s, Encoding::Gsm7), reference(&s, Encoding::Gsm7));
        }

        #[test]
        fn ucs2_boundaries_match_reference(
            s in prop_oneof![
                string_of(ucs2_char(), 60..=80),
                string_of(ucs2_char(), 125..=145),
                string_of(mixed_char(), 150..=170),
                string_of(mixed_char(), 300..=320),
            ]
        ) {
            for e in [Encoding::Gsm7, Encoding::Ucs2] {
                prop_assert_eq!(segments(&s, e), reference(&s, e));
            }
        }

        /// Counting without building the text agrees with counting what is sent.
        #[test]
        fn count_agrees_with_encode(
            s in string_of(prop_oneof![mixed_char(), typo_char(), ext_char()], 0..=400)
        ) {
            for choice in [EncodingChoice::Auto, EncodingChoice::Smart, EncodingChoice::Ucs2] {
                prop_assert_eq!(count(&s, choice), encode(&s, choice).1);
            }
        }

        #[test]
        fn smart_keeps_letters_and_digits(s in string_of(mixed_char(), 0..=200)) {
            if let Some(out) = smart(&s) {
                prop_assert_eq!(alnum(&out), alnum(&s));
                prop_assert!(fits_gsm7(&out));
            }
        }

        #[test]
        fn smart_fixes_typographic_text(
            s in string_of(prop_oneof![basic_char(), ext_char(), typo_char()], 0..=200)
        ) {
            let out = smart(&s);
            prop_assert!(out.is_some());
            let out = out.unwrap();
            prop_assert_eq!(alnum(&out), alnum(&s));
            prop_assert!(fits_gsm7(&out));
            let (sent, segs) = encode(&s, EncodingChoice::Smart);
            prop_assert_eq!(&sent, &out);
            prop_assert_eq!(segs.encoding, Encoding::Gsm7);
        }

        #[test]
        fn smart_leaves_gsm7_text_borrowed(s in string_of(gsm_char(), 0..=200)) {
            let out = smart(&s);
            prop_assert!(matches!(out, Some(Cow::Borrowed(b)) if b == s));
        }

        #[test]
        fn smart_refuses_irreplaceable(
            s in string_of(prop_oneof![basic_char(), ext_char(), typo_char()], 0..=100),
            bad in prop_oneof![bmp_other_char(), astral_char()],
            at in any::<proptest::sample::Index>(),
        ) {
            let mut chars: Vec<char> = s.chars().collect();
            let i = at.index(chars.len() + 1);
            chars.insert(i, bad);
            let s: String = chars.into_iter().collect();
            prop_assert_eq!(smart(&s), None);
            let (sent, segs) = encode(&s, EncodingChoice::Smart);
            prop_assert_eq!(sent.as_ref(), s.as_str());
            prop_assert_eq!(segs, reference(&s, Encoding::Ucs2));
        }

        #[test]
        fn encode_agrees_with_parts(s in string_of(mixed_char(), 0..=300)) {
            let (t, auto) = encode(&s, EncodingChoice::Auto);
            prop_assert_eq!(t.as_ref(), s.as_str());
            let want = if fits_gsm7(&s) { Encoding::Gsm7 } else { Encoding::Ucs2 };
            prop_assert_eq!(auto, reference(&s, want));
            let (t, ucs2) = encode(&s, EncodingChoice::Ucs2);
            prop_assert_eq!(t.as_ref(), s.as_str());
            prop_assert_eq!(ucs2, reference(&s, Encoding::Ucs2));
            let (t, smart_seg) = encode(&s, EncodingChoice::Smart);
            if let Some(out) = smart(&s) {
                prop_assert_eq!(&t, &out);
                prop_assert_eq!(smart_seg, reference(&out, Encoding::Gsm7));
            } else {
                prop_assert_eq!(t.as_ref(), s.as_str());
                prop_assert_eq!(smart_seg, ucs2);
            }
        }
    }
}
