//! `separate`: splits a byte stream at a separator of 1 to 8 bytes (pre), appends it (post).
//!
//! The preprocessor keeps the partial last frame between input frames (chunks), and a separator
//! may be cut anywhere across chunks. A one-byte separator is searched with `memchr`, a longer
//! one with `memchr::memmem`; the search is chosen once per batch, so the one-byte path pays
//! nothing for the other.
//!
//! With [`Splitter::track_starts`], the splitter records, for each frame it emits, where the
//! frame's first byte was in its input (counted from 0, the first byte it was given).

use memchr::memmem;
use serde::Deserialize;
use temblor_shim::Frames;

use super::{PreprocessError, RETAINED_CAPACITY, SettingError};

/// The longest separator.
pub(super) const MAX_SEPARATOR: usize = 8;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct Config {
    separator: String,
    max_length: usize,
    keep_empty: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            separator: "\n".to_owned(),
            max_length: 8 * 1024 * 1024,
            keep_empty: false,
        }
    }
}

/// A separator of 1 to [`MAX_SEPARATOR`] bytes, kept inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Separator {
    bytes: [u8; MAX_SEPARATOR],
    len: u8,
}

impl Separator {
    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Config {
    /// The separator, checked: 1 to 8 bytes.
    pub(super) fn separator(&self) -> Result<Separator, SettingError> {
        let given = self.separator.as_bytes();
        if !(1..=MAX_SEPARATOR).contains(&given.len()) {
            return Err(SettingError::Separator {
                max: MAX_SEPARATOR,
                separator: self.separator.clone(),
                len: given.len(),
            });
        }
        let mut bytes = [0; MAX_SEPARATOR];
        bytes[..given.len()].copy_from_slice(given);
        Ok(Separator {
            bytes,
            len: u8::try_from(given.len()).unwrap_or(u8::MAX),
        })
    }
}

/// How the splitter looks for its separator.
trait Search {
    /// The separator's length.
    fn len(&self) -> usize;
    /// Where the first separator in `haystack` begins.
    fn find(&self, haystack: &[u8]) -> Option<usize>;
}

/// A one-byte separator: `memchr`.
struct OneByte(u8);

impl Search for OneByte {
    #[inline]
    fn len(&self) -> usize {
        1
    }

    #[inline]
    fn find(&self, haystack: &[u8]) -> Option<usize> {
        memchr::memchr(self.0, haystack)
    }
}

impl Search for memmem::Finder<'static> {
    #[inline]
    fn len(&self) -> usize {
        self.needle().len()
    }

    #[inline]
    fn find(&self, haystack: &[u8]) -> Option<usize> {
        memmem::Finder::find(self, haystack)
    }
}

#[derive(Debug)]
enum Finder {
    One(u8),
    Many(Box<memmem::Finder<'static>>),
}

#[derive(Debug)]
pub(super) struct Splitter {
    finder: Finder,
    state: State,
}

/// Everything but the separator, so that the search can be borrowed beside it.
#[derive(Debug)]
struct State {
    max_length: usize,
    keep_empty: bool,
    /// The partial frame (not skipping: its bytes so far, at most `max_length` plus the
    /// separator's length less one, since its end may be the start of a separator), or
    /// (skipping) at most the separator's length less one last bytes of the frame being
    /// dropped, where a separator may have begun.
    carry: Vec<u8>,
    /// Dropping the rest of an over-long frame until the next separator.
    skipping: bool,
    /// Input bytes consumed since the splitter was built.
    consumed: u64,
    /// Where the current (partial) frame began in the input.
    frame_start: u64,
    /// Whether `starts` is kept.
    track: bool,
    /// The start of each frame emitted since the last `take_starts`, when tracking.
    starts: Vec<u64>,
}

impl Splitter {
    pub(super) fn new(config: &Config) -> Result<Self, SettingError> {
        let separator = config.separator()?;
        let finder = match separator.as_bytes() {
            [b] => Finder::One(*b),
            many => Finder::Many(Box::new(memmem::Finder::new(many).into_owned())),
        };
        Ok(Self {
            finder,
            state: State {
                max_length: config.max_length,
                keep_empty: config.keep_empty,
                carry: Vec::new(),
                skipping: false,
                consumed: 0,
                frame_start: 0,
                track: false,
                starts: Vec::new(),
            },
        })
    }

    /// Records the start of each frame emitted from now on.
    pub(super) fn track_starts(&mut self) {
        self.state.track = true;
    }

    /// Moves the starts recorded since the last call into `out`, in order.
    pub(super) fn take_starts(&mut self, out: &mut Vec<u64>) {
        out.append(&mut self.state.starts);
    }

    pub(super) fn process(
        &mut self,
        input: &Frames,
        out: &mut Frames,
        errors: &mut Vec<PreprocessError>,
    ) {
        match &self.finder {
            Finder::One(b) => self.state.process(&OneByte(*b), input, out, errors),
            Finder::Many(f) => self.state.process(&**f, input, out, errors),
        }
    }

    pub(super) fn finish(&mut self, out: &mut Frames, errors: &mut Vec<PreprocessError>) {
        self.state.finish(out, errors);
    }
}

impl State {
    /// Emits a frame that began at `start` (unless it is empty and those are dropped).
    #[inline]
    fn emit(&mut self, frame: &[u8], start: u64, out: &mut Frames) {
        if self.keep_empty || !frame.is_empty() {
            out.push(frame);
            if self.track {
                self.starts.push(start);
            }
        }
    }

    fn too_long(&self, errors: &mut Vec<PreprocessError>) {
        errors.push(PreprocessError::TooLong {
            max_length: self.max_length,
        });
    }

    /// Emits the first `len` bytes of the carry as a frame (or drops them if too long), and
    /// empties the carry.
    fn emit_carry(&mut self, len: usize, out: &mut Frames, errors: &mut Vec<PreprocessError>) {
        let mut carry = std::mem::take(&mut self.carry);
        if len > self.max_length {
            self.too_long(errors);
        } else {
            self.emit(&carry[..len], self.frame_start, out);
        }
        carry.clear();
        if carry.capacity() <= RETAINED_CAPACITY {
            self.carry = carry;
        }
    }

    /// A separator that begins in the carry and ends in `chunk`: the number of the chunk's
    /// bytes up to its end, if there is one. (The carry holds no whole separator, so such a
    /// separator begins in the carry's last `len - 1` bytes.)
    fn straddling<S: Search>(&self, search: &S, chunk: &[u8]) -> Option<(usize, usize)> {
        let sep_len = search.len();
        let tail = self.carry.len().min(sep_len - 1);
        let head = chunk.len().min(sep_len - 1);
        let mut window = [0_u8; 2 * (MAX_SEPARATOR - 1)];
        window[..tail].copy_from_slice(&self.carry[self.carry.len() - tail..]);
        window[tail..tail + head].copy_from_slice(&chunk[..head]);
        let at = search.find(&window[..tail + head])?;
        // One that begins in the chunk is found by the search of the chunk itself.
        (at < tail).then(|| (self.carry.len() - tail + at, at + sep_len - tail))
    }

    fn process<S: Search>(
        &mut self,
        search: &S,
        input: &Frames,
        out: &mut Frames,
        errors: &mut Vec<PreprocessError>,
    ) {
        let sep_len = search.len();
        for chunk in input.iter() {
            let base = self.consumed;
            self.consumed += chunk.len() as u64;
            let mut rest = chunk;
            let mut offset = 0_usize;
            if sep_len > 1
                && !self.carry.is_empty()
                && let Some((frame_len, used)) = self.straddling(search, chunk)
            {
                if self.skipping {
                    self.skipping = false;
                    self.carry.clear();
                } else {
                    self.emit_carry(frame_len, out, errors);
                }
                rest = &chunk[used..];
                offset = used;
                self.frame_start = base + used as u64;
            }
            while let Some(at) = search.find(rest) {
                let (piece, after) = (&rest[..at], &rest[at + sep_len..]);
                if self.skipping {
                    self.skipping = false;
                    self.carry.clear();
                } else if self.carry.is_empty() {
                    if piece.len() > self.max_length {
                        self.too_long(errors);
                    } else {
                        self.emit(piece, self.frame_start, out);
                    }
                } else if self.carry.len() + piece.len() > self.max_length {
                    self.carry.clear();
                    self.too_long(errors);
                } else {
                    self.carry.extend_from_slice(piece);
                    let len = self.carry.len();
                    self.emit_carry(len, out, errors);
                }
                rest = after;
                offset += at + sep_len;
                self.frame_start = base + offset as u64;
            }
            // The rest holds no separator, but its last `sep_len - 1` bytes may begin one.
            let keep = sep_len - 1;
            if self.skipping {
                if keep > 0 {
                    if rest.len() >= keep {
                        self.carry.clear();
                        self.carry.extend_from_slice(&rest[rest.len() - keep..]);
                    } else {
                        self.carry.extend_from_slice(rest);
                        let excess = self.carry.len().saturating_sub(keep);
                        self.carry.drain(..excess);
                    }
                }
            } else if self.carry.len() + rest.len() > self.max_length + keep {
                // Too long whatever comes next: drop it, keeping where a separator may begin.
                self.too_long(errors);
                self.skipping = true;
                if rest.len() >= keep {
                    self.carry.clear();
                    self.carry.extend_from_slice(&rest[rest.len() - keep..]);
                } else {
                    self.carry.extend_from_slice(rest);
                    let excess = self.carry.len() - keep;
                    self.carry.drain(..excess);
                }
                if self.carry.capacity() > RETAINED_CAPACITY {
                    self.carry.shrink_to_fit();
                }
            } else {
                self.carry.extend_from_slice(rest);
            }
        }
    }

    fn finish(&mut self, out: &mut Frames, errors: &mut Vec<PreprocessError>) {
        if self.skipping {
            self.carry.clear();
        } else if !self.carry.is_empty() {
            let len = self.carry.len();
            self.emit_carry(len, out, errors);
        }
        self.skipping = false;
        self.frame_start = self.consumed;
    }
}

/// The postprocessor: appends `separator` to every frame.
pub(super) fn append(separator: Separator, input: &Frames, out: &mut Frames) {
    let separator = separator.as_bytes();
    for frame in input.iter() {
        out.push_with(|buf| {
            buf.extend_from_copy_slice(frame);
            buf.extend_from_copy_slice(separator);
        });
    }
}
