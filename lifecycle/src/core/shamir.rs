//! Shamir's secret sharing over GF(2^8) (the AES field, polynomial x^8 + x^4 + x^3 + x + 1),
//! byte by byte: the master key is split into N shares, any M of which rebuild it, and M-1 of
//! which say nothing about it.

use super::CoreError;
use zeroize::Zeroizing;

fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let hi = a & 0x80;
        a <<= 1;
        if hi != 0 {
            a ^= 0x1B;
        }
        b >>= 1;
    }
    p
}

fn inv(a: u8) -> u8 {
    // a^254 = a^-1 in GF(2^8)
    let mut r = 1u8;
    for _ in 0..254 {
        r = mul(r, a);
    }
    r
}

/// One share: its x coordinate (1..=255) and one y byte per secret byte.
#[derive(Clone, PartialEq, Eq)]
pub struct Share {
    /// The share's x coordinate, never 0.
    pub x: u8,
    /// The polynomial's values at `x`, one byte for each byte of the secret.
    pub y: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Share(x={}, <{} bytes>)", self.x, self.y.len())
    }
}

impl Share {
    /// Text form: `x-hex`, e.g. `3-8f1c...`.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{}-{}", self.x, kmip_codec::text::hex(&self.y)))
    }

    /// A share from the text [`Share::to_text`] writes: `x-hex`.
    pub fn from_text(s: &str) -> Result<Share, CoreError> {
        let bad = || CoreError::Unsupported("a share is written x-hex".into());
        let (x, y) = s.trim().split_once('-').ok_or_else(bad)?;
        let x: u8 = x.parse().map_err(|_| bad())?;
        let y = kmip_codec::text::unhex(y).ok_or_else(bad)?;
        if x == 0 || y.is_empty() {
            return Err(bad());
        }
        Ok(Share {
            x,
            y: Zeroizing::new(y),
        })
    }
}

/// Split `secret` into `n` shares with threshold `m` (2 <= m <= n <= 255).
pub(super) fn split(secret: &[u8], m: u8, n: u8) -> Result<Vec<Share>, CoreError> {
    if m < 2 || m > n {
        return Err(CoreError::Unsupported(
            "Shamir needs 2 <= M <= N <= 255".into(),
        ));
    }
    let mut shares: Vec<Share> = (1..=n)
        .map(|x| Share {
            x,
            y: Zeroizing::new(Vec::with_capacity(secret.len())),
        })
        .collect();
    let mut coeffs = Zeroizing::new(vec![0u8; m as usize]);
    for &s in secret {
        coeffs[0] = s;
        openssl::rand::rand_bytes(&mut coeffs[1..])?;
        for share in shares.iter_mut() {
            // Horner: f(x) = c0 + c1 x + ... + c(m-1) x^(m-1)
            let mut y = 0u8;
            for &c in coeffs.iter().rev() {
                y = mul(y, share.x) ^ c;
            }
            share.y.push(y);
        }
    }
    Ok(shares)
}

/// Rebuild the secret from shares by Lagrange interpolation at x = 0. With fewer shares than
/// the threshold the result is a different, meaningless value: callers check it (the master
/// key's check value) before use.
pub(super) fn combine(shares: &[Share]) -> Result<Zeroizing<Vec<u8>>, CoreError> {
    let len = shares.first().map(|s| s.y.len()).unwrap_or(0);
    if shares.len() < 2 || shares.iter().any(|s| s.y.len() != len) {
        return Err(CoreError::Unsupported(
            "at least two shares of equal length are needed".into(),
        ));
    }
    for (i, a) in shares.iter().enumerate() {
        if shares[..i].iter().any(|b| b.x == a.x) {
            return Err(CoreError::Unsupported(
                "the same share was given twice".into(),
            ));
        }
    }
    let mut out = Zeroizing::new(vec![0u8; len]);
    for (i, si) in shares.iter().enumerate() {
        // basis polynomial at 0: prod over j != i of x_j / (x_j - x_i); minus is xor
        let mut num = 1u8;
        let mut den = 1u8;
        for (j, sj) in shares.iter().enumerate() {
            if i != j {
                num = mul(num, sj.x);
                den = mul(den, sj.x ^ si.x);
            }
        }
        let l = mul(num, inv(den));
        for (o, &y) in out.iter_mut().zip(si.y.iter()) {
            *o ^= mul(y, l);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field() {
        // FIPS-197 section 4.2: {57} x {83} = {c1}
        assert_eq!(mul(0x57, 0x83), 0xC1);
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "{a}");
        }
    }

    #[test]
    fn any_m_of_n_and_not_fewer() {
        let secret: Vec<u8> = (0..32).collect();
        let shares = split(&secret, 3, 5).unwrap();
        for a in 0..5 {
            for b in 0..5 {
                for c in 0..5 {
                    if a < b && b < c {
                        let got =
                            combine(&[shares[a].clone(), shares[b].clone(), shares[c].clone()])
                                .unwrap();
                        assert_eq!(&got[..], &secret[..]);
                    }
                }
            }
        }
        let two = combine(&[shares[0].clone(), shares[4].clone()]).unwrap();
        assert_ne!(&two[..], &secret[..]);
        let t = shares[2].to_text();
        assert_eq!(Share::from_text(&t).unwrap(), shares[2]);
        assert!(format!("{:?}", shares[2]).contains("<32 bytes>"));
        assert!(split(&secret, 1, 3).is_err() && split(&secret, 4, 3).is_err());
        assert!(combine(&[shares[1].clone(), shares[1].clone()]).is_err());
    }
}
