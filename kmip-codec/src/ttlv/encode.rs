//! TTLV encoding: every item padded to a multiple of eight bytes with zeros.

use super::{Ttlv, Value};

/// The encoded size of an item, header and padding included.
pub fn encoded_len(item: &Ttlv) -> usize {
    8 + value_len(&item.value).div_ceil(8) * 8
}

fn value_len(v: &Value) -> usize {
    match v {
        Value::Structure(items) => items.iter().map(encoded_len).sum(),
        Value::Integer(_) | Value::Enumeration(_) | Value::Interval(_) => 4,
        Value::LongInteger(_)
        | Value::Boolean(_)
        | Value::DateTime(_)
        | Value::DateTimeExtended(_) => 8,
        Value::BigInteger(b) => b.len().max(1).div_ceil(8) * 8,
        Value::TextString(s) => s.len(),
        Value::ByteString(b) => b.len(),
    }
}

/// The TTLV encoding of `item`.
pub fn encode(item: &Ttlv) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(item));
    encode_into(item, &mut out);
    out
}

/// Append the TTLV encoding of `item` to `out`, which saves a copy when framing.
pub fn encode_into(item: &Ttlv, out: &mut Vec<u8>) {
    let tag = item.tag.0.to_be_bytes();
    out.extend_from_slice(&tag[1..]);
    out.push(item.value.item_type() as u8);
    let len = value_len(&item.value);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    let start = out.len();
    match &item.value {
        Value::Structure(items) => items.iter().for_each(|i| encode_into(i, out)),
        Value::Integer(v) => out.extend_from_slice(&v.to_be_bytes()),
        Value::Enumeration(v) | Value::Interval(v) => out.extend_from_slice(&v.to_be_bytes()),
        Value::LongInteger(v) | Value::DateTime(v) | Value::DateTimeExtended(v) => {
            out.extend_from_slice(&v.to_be_bytes())
        }
        Value::Boolean(b) => out.extend_from_slice(&u64::from(*b).to_be_bytes()),
        Value::BigInteger(b) => {
            // the wire wants a multiple of eight bytes: sign-extend on the left
            let fill = if b.first().is_some_and(|&x| x & 0x80 != 0) {
                0xFF
            } else {
                0
            };
            out.resize(start + len - b.len(), fill);
            out.extend_from_slice(b);
        }
        Value::ByteString(b) => out.extend_from_slice(b),
        Value::TextString(s) => out.extend_from_slice(s.as_bytes()),
    }
    let written = out.len() - start;
    out.resize(start + written.div_ceil(8) * 8, 0);
}
