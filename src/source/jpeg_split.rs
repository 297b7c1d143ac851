//! Where one JPEG image ends in a byte stream, found by walking its structure
//! (ITU T.81 B.1): marker segments are skipped by their length, so an EXIF
//! thumbnail inside APP1 (a whole JPEG with its own FF D8 … FF D9) is not taken
//! for the end; entropy-coded data after SOS is scanned for the next marker,
//! past stuffed bytes (FF 00), restart markers (FF D0–D7) and fill bytes (FF FF).
//!
//! The splitter is fed chunks and says how many bytes it consumed and what it
//! found, so the stream reader copies frame bytes in runs, not one at a time.

/// What a chunk of input completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// Start of image (FF D8); the consumed bytes end with it.
    Start,
    /// End of image (FF D9); the consumed bytes end with it.
    End,
    /// The bytes do not follow JPEG's structure (garbage where a marker must be, a bad
    /// length). The image so far is corrupt; the offending byte is not consumed and the
    /// splitter looks for the next start marker.
    Broken,
    /// A start marker inside an image: the image so far was truncated, and the consumed
    /// bytes (ending with FF D8) begin the next one.
    Restart,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between images, looking for FF D8; `ff`: the last byte was FF.
    Seek { ff: bool },
    /// In an image, a marker's FF must come next.
    Marker,
    /// After FF: the marker code (or more FF fill bytes).
    Code,
    /// The first length byte of the segment with marker `code`.
    LengthHi { code: u8 },
    /// The second length byte.
    LengthLo { code: u8, hi: u8 },
    /// Inside a segment's payload; `scan`: entropy-coded data follows (SOS).
    Skip { left: usize, scan: bool },
    /// Entropy-coded data; `ff`: the last byte was FF.
    Entropy { ff: bool },
}

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;

/// Markers that stand alone, without a length: TEM and the restart markers.
fn standalone(code: u8) -> bool {
    code == 0x01 || (0xD0..=0xD7).contains(&code)
}

/// The state with `left` payload bytes still to skip.
fn skip(left: usize, scan: bool) -> State {
    match left {
        0 if scan => State::Entropy { ff: false },
        0 => State::Marker,
        left => State::Skip { left, scan },
    }
}

#[derive(Clone, Debug)]
pub struct JpegSplitter {
    state: State,
}

impl Default for JpegSplitter {
    fn default() -> Self {
        JpegSplitter { state: State::Seek { ff: false } }
    }
}

impl JpegSplitter {
    /// Inside an image (its start marker was consumed, its end not yet).
    pub fn in_image(&self) -> bool {
        !matches!(self.state, State::Seek { .. })
    }

    /// Consume bytes up to and including the next event, or all of `data`.
    pub fn feed(&mut self, data: &[u8]) -> (usize, Option<Found>) {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                // Fast paths over the bulk of an image: payloads and entropy-coded data.
                State::Skip { left, scan } => {
                    let n = left.min(data.len() - i);
                    i += n;
                    self.state = skip(left - n, scan);
                    continue;
                }
                State::Entropy { ff: false } => {
                    match data[i..].iter().position(|&b| b == 0xFF) {
                        Some(k) => {
                            i += k + 1;
                            self.state = State::Entropy { ff: true };
                        }
                        None => i = data.len(),
                    }
                    continue;
                }
                _ => {}
            }
            let b = data[i];
            match self.step(b) {
                Step::Next => i += 1,
                Step::Found(found) => return (i + 1, Some(found)),
                Step::Broken => {
                    self.state = State::Seek { ff: false };
                    return (i, Some(Found::Broken));
                }
            }
        }
        (data.len(), None)
    }

    /// One byte outside the fast paths.
    fn step(&mut self, b: u8) -> Step {
        self.state = match self.state {
            State::Seek { ff: true } if b == SOI => return self.enter(Found::Start),
            State::Seek { .. } => State::Seek { ff: b == 0xFF },
            State::Marker if b == 0xFF => State::Code,
            State::Marker => return Step::Broken,
            State::Code | State::Entropy { ff: true } => return self.marker(b),
            State::LengthHi { code } => State::LengthLo { code, hi: b },
            State::LengthLo { code, hi } => {
                let len = usize::from(u16::from_be_bytes([hi, b]));
                // The length counts its own two bytes.
                if len < 2 {
                    return Step::Broken;
                }
                skip(len - 2, code == SOS)
            }
            // `feed` takes these in runs; byte by byte they mean the same.
            State::Skip { left, scan } => skip(left.saturating_sub(1), scan),
            State::Entropy { ff: false } => State::Entropy { ff: b == 0xFF },
        };
        Step::Next
    }

    /// The byte after an FF, in an image.
    fn marker(&mut self, code: u8) -> Step {
        let in_scan = matches!(self.state, State::Entropy { .. });
        self.state = match code {
            // Fill bytes: the marker code is still to come.
            0xFF if in_scan => State::Entropy { ff: true },
            0xFF => State::Code,
            // Stuffed zero and restart markers belong to the entropy-coded data.
            0x00 if in_scan => State::Entropy { ff: false },
            0xD0..=0xD7 if in_scan => State::Entropy { ff: false },
            0x00 => return Step::Broken,
            SOI => return self.enter(Found::Restart),
            EOI => {
                self.state = State::Seek { ff: false };
                return Step::Found(Found::End);
            }
            c if standalone(c) => State::Marker,
            code => State::LengthHi { code },
        };
        Step::Next
    }

    fn enter(&mut self, found: Found) -> Step {
        self.state = State::Marker;
        Step::Found(found)
    }
}

enum Step {
    Next,
    Found(Found),
    Broken,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Feed `data` in chunks of `chunk` bytes; the events with the offset just after each.
    pub(crate) fn events(data: &[u8], chunk: usize) -> Vec<(usize, Found)> {
        let mut s = JpegSplitter::default();
        let (mut out, mut pos) = (Vec::new(), 0);
        for piece in data.chunks(chunk.max(1)) {
            let mut at = 0;
            while at < piece.len() {
                let (n, found) = s.feed(&piece[at..]);
                at += n;
                if let Some(f) = found {
                    out.push((pos + at, f));
                }
            }
            pos += piece.len();
        }
        out
    }

    /// A minimal well-formed structure: SOI, APP0, DQT-like segment, SOS with entropy data
    /// holding stuffed bytes and a restart marker, EOI.
    pub(crate) fn structured() -> Vec<u8> {
        let mut j = vec![0xFF, SOI];
        j.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x06, b'J', b'F', b'I', b'F']);
        j.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x04, 0xFF, 0xD9]); // an FF D9 inside a payload
        j.extend_from_slice(&[0xFF, SOS, 0x00, 0x03, 0x01]);
        j.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0xD1, 0x78]);
        j.extend_from_slice(&[0xFF, EOI]);
        j
    }

    #[test]
    fn the_end_is_the_real_eoi_in_any_chunking() {
        let j = structured();
        for chunk in [1, 2, 3, 7, 1000] {
            assert_eq!(events(&j, chunk), vec![(2, Found::Start), (j.len(), Found::End)], "chunk {chunk}");
        }
    }

    #[test]
    fn an_exif_thumbnail_inside_app1_is_skipped() {
        let thumb = structured();
        let mut j = vec![0xFF, SOI, 0xFF, 0xE1];
        j.extend_from_slice(&((thumb.len() + 2 + 6) as u16).to_be_bytes());
        j.extend_from_slice(b"Exif\0\0");
        j.extend_from_slice(&thumb);
        let rest = structured();
        j.extend_from_slice(&rest[2..]);
        assert_eq!(events(&j, 5), vec![(2, Found::Start), (j.len(), Found::End)]);
    }

    #[test]
    fn garbage_where_a_marker_belongs_breaks_the_image() {
        let mut j = vec![0xFF, SOI, 0x12, 0xFF, SOI, 0xFF, EOI];
        assert_eq!(events(&j, 100), vec![(2, Found::Start), (2, Found::Broken), (5, Found::Start), (7, Found::End)]);
        // A length below 2 is impossible.
        j = vec![0xFF, SOI, 0xFF, 0xE0, 0x00, 0x01, 0xFF, SOI];
        assert_eq!(events(&j, 3), vec![(2, Found::Start), (5, Found::Broken), (8, Found::Start)]);
    }

    #[test]
    fn a_start_inside_a_truncated_scan_begins_the_next_image() {
        let mut j = vec![0xFF, SOI, 0xFF, SOS, 0x00, 0x02, 0x11, 0x22];
        let second = structured();
        j.extend_from_slice(&second);
        assert_eq!(events(&j, 4), vec![(2, Found::Start), (10, Found::Restart), (j.len(), Found::End)]);
    }
}
