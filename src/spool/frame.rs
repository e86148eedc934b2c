//! The previous release's spool format, read only by the migration (`legacy.rs`): one record
//! on disk is `MAGIC | length | CRC-32 | payload`, and the scan reads a segment back: every intact frame, a torn tail (a write cut short) told apart from damage in
//! the middle, and never a good frame skipped silently.

/// Marks the start of a frame; lets a scan find the next frame after damaged bytes.
pub const MAGIC: [u8; 4] = *b"ZSP1";
/// Magic, length and CRC.
pub const HEADER_LEN: usize = 12;

/// `payload` framed as the previous release appended it.
#[cfg(test)]
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(HEADER_LEN + payload.len());
    frame.extend_from_slice(&MAGIC);
    frame.extend_from_slice(&length.to_le_bytes());
    frame.extend_from_slice(&checksum(length, payload).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Covers the length too: a flipped length bit is caught, not read as a shorter record.
fn checksum(length: u32, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&length.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// What a scan found at one position.
#[derive(Debug, PartialEq, Eq)]
pub enum Found<'a> {
    /// An intact frame: its payload and the offset just past it.
    Frame { payload: &'a [u8], end: usize },
    /// Not enough bytes for the frame its header announces (or for a header): in the last
    /// segment's tail, a write cut short; elsewhere, more may still be coming.
    Incomplete,
    /// Bytes that are no frame: wrong magic, or a checksum that does not match.
    Damaged,
}

/// Reads the frame at `offset` of `bytes`.
pub fn read_at(bytes: &[u8], offset: usize) -> Found<'_> {
    let Some(header) = bytes.get(offset..offset + HEADER_LEN) else {
        return if bytes.len() > offset && !MAGIC.starts_with(&bytes[offset..]) {
            Found::Damaged
        } else {
            Found::Incomplete
        };
    };
    if header[..4] != MAGIC {
        return Found::Damaged;
    }
    let length = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    let start = offset + HEADER_LEN;
    let Some(payload) = bytes.get(start..start + length as usize) else {
        return Found::Incomplete;
    };
    if checksum(length, payload) != crc {
        return Found::Damaged;
    }
    Found::Frame {
        payload,
        end: start + length as usize,
    }
}

/// The next offset after `offset` where an intact frame starts, if any: how a scan gets past
/// damage to the good frames behind it.
pub fn resync(bytes: &[u8], offset: usize) -> Option<usize> {
    (offset + 1..bytes.len())
        .filter(|&at| bytes[at..].starts_with(&MAGIC))
        .find(|&at| matches!(read_at(bytes, at), Found::Frame { .. }))
}

/// A whole segment, read back: the intact frames in order, and what was wrong with the rest.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// `(offset, payload)` of every intact frame.
    pub frames: Vec<(usize, Vec<u8>)>,
    /// Where the intact data ends: a torn tail starts here and is cut off.
    pub valid_len: usize,
    /// Damaged stretches with intact frames after them: `(offset, bytes skipped)`.
    pub skipped: Vec<(usize, usize)>,
    /// True when the segment ends in a frame that was cut short or damaged beyond repair.
    pub torn_tail: bool,
}

pub fn scan(bytes: &[u8]) -> Scan {
    let mut scan = Scan::default();
    let mut offset = 0;
    while offset < bytes.len() {
        match read_at(bytes, offset) {
            Found::Frame { payload, end } => {
                scan.frames.push((offset, payload.to_vec()));
                offset = end;
                scan.valid_len = end;
            }
            Found::Incomplete | Found::Damaged => match resync(bytes, offset) {
                Some(next) => {
                    scan.skipped.push((offset, next - offset));
                    offset = next;
                }
                None => {
                    scan.torn_tail = true;
                    break;
                }
            },
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(payloads: &[&[u8]]) -> Vec<u8> {
        payloads.iter().flat_map(|p| encode(p)).collect()
    }

    #[test]
    fn frames_round_trip() {
        let bytes = segment(&[b"one", b"", b"three"]);
        let scan = scan(&bytes);
        let payloads: Vec<&[u8]> = scan.frames.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(payloads, [&b"one"[..], b"", b"three"]);
        assert_eq!(scan.valid_len, bytes.len());
        assert!(!scan.torn_tail && scan.skipped.is_empty());
    }

    #[test]
    fn a_tail_cut_anywhere_is_torn_and_the_frames_before_it_survive() {
        let whole = segment(&[b"first", b"second record"]);
        let first_len = encode(b"first").len();
        for cut in first_len + 1..whole.len() {
            let scan = scan(&whole[..cut]);
            assert_eq!(scan.frames.len(), 1, "cut at {cut}");
            assert_eq!(scan.valid_len, first_len, "cut at {cut}");
            assert!(scan.torn_tail, "cut at {cut}");
        }
    }

    #[test]
    fn damage_in_the_middle_is_skipped_to_the_next_good_frame_and_reported() {
        let mut bytes = segment(&[b"first", b"second", b"third"]);
        let second_at = encode(b"first").len();
        bytes[second_at + HEADER_LEN] ^= 0xff; // a payload bit flips: the CRC catches it
        let scan = scan(&bytes);
        let payloads: Vec<&[u8]> = scan.frames.iter().map(|(_, p)| p.as_slice()).collect();
        assert_eq!(payloads, [&b"first"[..], b"third"]);
        assert_eq!(scan.skipped, [(second_at, encode(b"second").len())]);
        assert!(!scan.torn_tail);
        // A corrupted length is caught as well, and the third frame still found.
        let mut bytes = segment(&[b"first", b"second", b"third"]);
        bytes[second_at + 4] = 0x7f;
        assert_eq!(scan_payloads(&bytes), ["first", "third"]);
    }

    fn scan_payloads(bytes: &[u8]) -> Vec<String> {
        scan(bytes)
            .frames
            .into_iter()
            .map(|(_, p)| String::from_utf8(p).unwrap())
            .collect()
    }

    #[test]
    fn garbage_never_panics() {
        for bytes in [
            &b""[..],
            b"Z",
            b"ZSP1",
            b"ZSP1\xff\xff\xff\xff",
            b"\0\0\0\0\0\0\0\0\0\0\0\0\0",
        ] {
            let _ = scan(bytes);
        }
    }
}
