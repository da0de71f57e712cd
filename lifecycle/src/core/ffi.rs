//! The only unsafe code in the project: OpenSSL calls the `openssl` crate does not wrap.
//!
//! Why: KMIP's RNG Seed operation asks the server to mix client data into its random number
//! generator, which is OpenSSL's DRBG; only `RAND_add` does that. Each call passes a pointer and
//! length taken from one live slice, and OpenSSL only reads from it during the call.
#![allow(unsafe_code)]

use std::os::raw::{c_double, c_int, c_void};

/// Mix `data` into OpenSSL's DRBG. It is credited with no entropy: a client's bytes may be
/// predictable, so they can only add to, never replace, the generator's own seeding.
pub fn rand_add(data: &[u8]) -> usize {
    let mut used = 0;
    for chunk in data.chunks(c_int::MAX as usize) {
        // SAFETY: the pointer and length describe `chunk`, which outlives the call; OpenSSL
        // reads `num` bytes from it and keeps no reference.
        unsafe {
            openssl_sys::RAND_add(
                chunk.as_ptr().cast::<c_void>(),
                chunk.len() as c_int,
                0.0 as c_double,
            )
        };
        used += chunk.len();
    }
    used
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeding_is_accepted_and_randomness_continues() {
        assert_eq!(super::rand_add(&[0x42; 100]), 100);
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        openssl::rand::rand_bytes(&mut a).unwrap();
        openssl::rand::rand_bytes(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
