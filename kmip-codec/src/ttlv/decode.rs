//! Strict, bounded TTLV decoding.
//!
//! The decoder first learns the whole item's length from its 8-byte header and checks it
//! against the limits and against the bytes at hand. Only then does it walk the item, and every
//! inner length is checked against what remains of its parent before anything is allocated, so
//! the memory a decode can take is bounded by the input it was given.

use super::{ItemType, Tag, Ttlv, Value};
use thiserror::Error;

/// Explicit bounds on what one decode may accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded item (header included), in bytes.
    pub max_message_bytes: usize,
    /// Deepest nesting of Structures; the top-level item is depth 1.
    pub max_depth: usize,
    /// Most items in one tree, the top-level item included.
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 8 * 1024 * 1024,
            max_depth: 64,
            max_items: 100_000,
        }
    }
}

/// Why a byte sequence is not a valid TTLV item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InvalidKind {
    /// An item type code that KMIP does not define.
    #[error("unknown item type 0x{0:02X}")]
    UnknownType(u8),
    /// A length that the item type cannot have (an Integer of other than 4 bytes).
    #[error("length {length} is not valid for type {item_type:?}")]
    BadLength {
        /// The type of the item.
        item_type: ItemType,
        /// The length it declares.
        length: u32,
    },
    /// Padding bytes that are not zero.
    #[error("non-zero padding")]
    NonZeroPadding,
    /// A Text String that is not UTF-8.
    #[error("text string is not valid UTF-8")]
    InvalidUtf8,
    /// A Boolean other than 0 or 1.
    #[error("boolean value {0} is neither 0 nor 1")]
    BadBoolean(u64),
    /// An item longer than what is left of the structure around it.
    #[error("item of {length} bytes overruns its enclosing structure ({remaining} bytes left)")]
    Overrun {
        /// The length of the item, padding included.
        length: usize,
        /// What the structure has left.
        remaining: usize,
    },
    /// An item longer than the message size limit.
    #[error("item of {0} bytes exceeds the message size limit")]
    TooLarge(usize),
    /// Nested deeper than the limit allows.
    #[error("nesting deeper than the limit of {0}")]
    TooDeep(usize),
    /// More items than the limit allows.
    #[error("more than {0} items")]
    TooManyItems(usize),
    /// A tag outside 0x42xxxx and 0x54xxxx.
    #[error("tag 0x{0:06X} is outside the KMIP tag ranges")]
    BadTag(u32),
}

/// Why bytes are not (yet) a TTLV item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is a valid prefix; this many more bytes are needed to go on.
    #[error("need {needed} more bytes")]
    Incomplete {
        /// At least this many more bytes.
        needed: usize,
    },
    /// The input can never become valid.
    #[error("invalid TTLV at offset {offset}: {kind}")]
    Invalid {
        /// Where the offending item starts, from the start of the input.
        offset: usize,
        /// What is wrong with it.
        kind: InvalidKind,
    },
}

const HEADER: usize = 8;

fn padded(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// The length of the first complete item in `buf` (header and padding included), without
/// decoding it: what a stream reader needs to frame one message.
pub fn frame_length(buf: &[u8], limits: &Limits) -> Result<usize, DecodeError> {
    if buf.len() < HEADER {
        return Err(DecodeError::Incomplete {
            needed: HEADER - buf.len(),
        });
    }
    let length = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    let total = HEADER + padded(length);
    if total > limits.max_message_bytes {
        return Err(DecodeError::Invalid {
            offset: 4,
            kind: InvalidKind::TooLarge(total),
        });
    }
    Ok(total)
}

/// Decode the first item of `buf`. Returns the item and the number of bytes it used.
pub fn decode(buf: &[u8], limits: &Limits) -> Result<(Ttlv, usize), DecodeError> {
    let total = frame_length(buf, limits)?;
    if buf.len() < total {
        return Err(DecodeError::Incomplete {
            needed: total - buf.len(),
        });
    }
    let mut r = Reader {
        buf: &buf[..total],
        pos: 0,
        limits,
        items: 0,
    };
    let item = r.item(total, 1)?;
    Ok((item, total))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: &'a Limits,
    items: usize,
}

impl Reader<'_> {
    fn invalid<T>(&self, offset: usize, kind: InvalidKind) -> Result<T, DecodeError> {
        Err(DecodeError::Invalid { offset, kind })
    }

    /// One item that must fit in the `remaining` bytes of its parent.
    fn item(&mut self, remaining: usize, depth: usize) -> Result<Ttlv, DecodeError> {
        let start = self.pos;
        if remaining < HEADER {
            return self.invalid(
                start,
                InvalidKind::Overrun {
                    length: HEADER,
                    remaining,
                },
            );
        }
        self.items += 1;
        if self.items > self.limits.max_items {
            return self.invalid(start, InvalidKind::TooManyItems(self.limits.max_items));
        }
        let h = &self.buf[start..start + HEADER];
        let tag = u32::from_be_bytes([0, h[0], h[1], h[2]]);
        if !(0x42_0000..=0x42_FFFF).contains(&tag) && !(0x54_0000..=0x54_FFFF).contains(&tag) {
            return self.invalid(start, InvalidKind::BadTag(tag));
        }
        let Some(item_type) = ItemType::from_code(h[3]) else {
            return self.invalid(start + 3, InvalidKind::UnknownType(h[3]));
        };
        let length = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let len = length as usize;
        let body = padded(len);
        if HEADER + body > remaining {
            return self.invalid(
                start + 4,
                InvalidKind::Overrun {
                    length: HEADER + body,
                    remaining,
                },
            );
        }
        let fixed = match item_type {
            ItemType::Integer | ItemType::Enumeration | ItemType::Interval => Some(4),
            ItemType::LongInteger
            | ItemType::Boolean
            | ItemType::DateTime
            | ItemType::DateTimeExtended => Some(8),
            _ => None,
        };
        let bad_len = match (item_type, fixed) {
            (_, Some(n)) => len != n,
            (ItemType::BigInteger, None) => len == 0 || len % 8 != 0,
            (ItemType::Structure, None) => len % 8 != 0,
            _ => false,
        };
        if bad_len {
            return self.invalid(start + 4, InvalidKind::BadLength { item_type, length });
        }
        let vstart = start + HEADER;
        self.pos = vstart;
        let value = if item_type == ItemType::Structure {
            if depth >= self.limits.max_depth {
                return self.invalid(start, InvalidKind::TooDeep(self.limits.max_depth));
            }
            let end = vstart + len;
            let mut children = Vec::new();
            while self.pos < end {
                children.push(self.item(end - self.pos, depth + 1)?);
            }
            Value::Structure(children)
        } else {
            let v = &self.buf[vstart..vstart + len];
            if self.buf[vstart + len..vstart + body]
                .iter()
                .any(|&b| b != 0)
            {
                return self.invalid(vstart + len, InvalidKind::NonZeroPadding);
            }
            let be8 = |v: &[u8]| i64::from_be_bytes(v.try_into().expect("length checked"));
            let be4 = |v: &[u8]| u32::from_be_bytes(v.try_into().expect("length checked"));
            let value = match item_type {
                ItemType::Integer => Value::Integer(be4(v) as i32),
                ItemType::Enumeration => Value::Enumeration(be4(v)),
                ItemType::Interval => Value::Interval(be4(v)),
                ItemType::LongInteger => Value::LongInteger(be8(v)),
                ItemType::DateTime => Value::DateTime(be8(v)),
                ItemType::DateTimeExtended => Value::DateTimeExtended(be8(v)),
                ItemType::Boolean => match be8(v) as u64 {
                    0 => Value::Boolean(false),
                    1 => Value::Boolean(true),
                    other => return self.invalid(vstart, InvalidKind::BadBoolean(other)),
                },
                ItemType::BigInteger => Value::BigInteger(v.to_vec()),
                ItemType::ByteString => Value::ByteString(v.to_vec()),
                ItemType::TextString => match std::str::from_utf8(v) {
                    Ok(s) => Value::TextString(s.to_owned()),
                    Err(e) => {
                        return self.invalid(vstart + e.valid_up_to(), InvalidKind::InvalidUtf8)
                    }
                },
                ItemType::Structure => unreachable!("handled above"),
            };
            self.pos = vstart + body;
            value
        };
        Ok(Ttlv {
            tag: Tag(tag),
            value,
        })
    }
}
