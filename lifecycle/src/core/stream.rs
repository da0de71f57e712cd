//! Multi-part cryptographic operations in progress (KMIP 2.1 section 6.1.20): the state that
//! lives between the request with the Init Indicator and the one with the Final Indicator,
//! found again by the Correlation Value the server handed out. Held in the core because it
//! holds key schedules and plaintext.

use super::crypto::{CipherStream, CryptoParams};
use super::{CoreError, Secret};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Streams open at once, over all clients; one more is refused (Server Limit Exceeded).
pub const MAX_STREAMS: usize = 1024;
/// Streams one identity may have open at once, so that one identity cannot take every slot
/// and lock the others out for [`STREAM_IDLE`].
pub const MAX_STREAMS_PER_OWNER: usize = 64;
/// Data one buffered stream (sign, verify, MAC) may gather before its final part.
pub const MAX_BUFFERED: usize = 16 * 1024 * 1024;
/// Data all of one identity's buffered streams may hold together.
pub const MAX_BUFFERED_PER_OWNER: usize = 2 * MAX_BUFFERED;
/// Data all buffered streams may hold together, whoever opened them: without it, the slots
/// could hold [`MAX_STREAMS`] times [`MAX_BUFFERED`] (16 GiB).
pub const MAX_BUFFERED_TOTAL: usize = 16 * MAX_BUFFERED;
/// A stream nobody continued for this long is dropped.
pub const STREAM_IDLE: Duration = Duration::from_secs(600);

/// What an open stream holds between its parts.
pub(crate) enum StreamState {
    /// Encrypt or Decrypt: each part is processed as it arrives.
    Cipher(CipherStream),
    /// Sign, Signature Verify, MAC, MAC Verify: the data is gathered and processed at the end.
    Buffer(Zeroizing<Vec<u8>>),
}

/// One open stream: whose it is, which key and operation it is for, and where it stands.
pub(crate) struct Stream {
    /// The identity that opened it; only it may continue it.
    pub(crate) owner: Option<String>,
    /// The key the stream uses.
    pub(crate) key_id: String,
    /// The operation it was opened for; only that operation continues it.
    pub(crate) operation: u32,
    /// The Cryptographic Parameters it was opened with.
    pub(crate) params: CryptoParams,
    /// The cipher in progress, or the data gathered so far: the core's alone.
    pub(in crate::core) state: StreamState,
    touched: Instant,
}

impl Stream {
    /// A stream as it opens, not yet idle.
    pub(crate) fn new(
        owner: Option<String>,
        key_id: String,
        operation: u32,
        params: CryptoParams,
        state: StreamState,
    ) -> Stream {
        Stream {
            owner,
            key_id,
            operation,
            params,
            state,
            touched: Instant::now(),
        }
    }

    /// The data a buffered stream holds.
    fn buffered(&self) -> usize {
        match &self.state {
            StreamState::Buffer(b) => b.len(),
            StreamState::Cipher(_) => 0,
        }
    }

    /// A Sign, Signature Verify, MAC or MAC Verify stream: its parts are gathered and the
    /// operation done on the whole at the end.
    pub(crate) fn gathering(
        owner: Option<String>,
        key_id: String,
        operation: u32,
        params: CryptoParams,
    ) -> Stream {
        Stream::new(
            owner,
            key_id,
            operation,
            params,
            StreamState::Buffer(Zeroizing::new(Vec::new())),
        )
    }

    /// Process one more part of an Encrypt or Decrypt stream: its output.
    pub(crate) fn update(&mut self, data: &[u8]) -> Result<Vec<u8>, CoreError> {
        match &mut self.state {
            StreamState::Cipher(c) => c.update(data),
            StreamState::Buffer(_) => Err(CoreError::InvalidCorrelation),
        }
    }

    /// Close an Encrypt or Decrypt stream: the last output, and the GCM tag (Encrypt) or the
    /// tag checked (Decrypt).
    pub(crate) fn finish(
        self,
        tag: Option<&[u8]>,
    ) -> Result<(Vec<u8>, Option<Vec<u8>>), CoreError> {
        match self.state {
            StreamState::Cipher(c) => c.finish(tag),
            StreamState::Buffer(_) => Err(CoreError::InvalidCorrelation),
        }
    }

    /// Close a buffered stream: its parameters and every part's data, in order.
    pub(crate) fn into_data(self) -> Result<(CryptoParams, Secret), CoreError> {
        match self.state {
            StreamState::Buffer(mut b) => Ok((self.params, Secret::new(std::mem::take(&mut *b)))),
            StreamState::Cipher(_) => Err(CoreError::InvalidCorrelation),
        }
    }

    /// Gather one more part of a buffered stream, within [`MAX_BUFFERED`].
    pub(crate) fn gather(&mut self, data: &[u8]) -> Result<(), CoreError> {
        match &mut self.state {
            StreamState::Buffer(b) if b.len() + data.len() <= MAX_BUFFERED => {
                b.extend_from_slice(data);
                Ok(())
            }
            StreamState::Buffer(_) => Err(CoreError::StreamLimit("the stream's data is too long")),
            StreamState::Cipher(_) => Err(CoreError::InvalidCorrelation),
        }
    }
}

/// The open multi-part streams, by Correlation Value, within the limits above.
#[derive(Default)]
pub(crate) struct Streams {
    open: Mutex<HashMap<Vec<u8>, Stream>>,
}

impl Streams {
    /// Keep `stream` under a new Correlation Value, which is returned.
    pub(crate) fn open(&self, stream: Stream) -> Result<Vec<u8>, CoreError> {
        let mut correlation = vec![0u8; 16];
        openssl::rand::rand_bytes(&mut correlation)?;
        self.put(correlation.clone(), stream)?;
        Ok(correlation)
    }

    /// Take the stream of `correlation` out, for `owner` and `operation` only: a value that is
    /// unknown, expired, someone else's or another operation's is invalid. The caller puts it
    /// back after a non-final part; a stream that fails is dropped.
    pub(crate) fn take(
        &self,
        correlation: &[u8],
        owner: Option<&str>,
        operation: u32,
    ) -> Result<Stream, CoreError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let fits = open.get(correlation).is_some_and(|s| {
            s.owner.as_deref() == owner
                && s.operation == operation
                && s.touched.elapsed() < STREAM_IDLE
        });
        if !fits {
            return Err(CoreError::InvalidCorrelation);
        }
        open.remove(correlation)
            .ok_or(CoreError::InvalidCorrelation)
    }

    /// Keep `stream` under `correlation`, dropping idle streams first; refused beyond the limits.
    pub(crate) fn put(&self, correlation: Vec<u8>, mut stream: Stream) -> Result<(), CoreError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, s| s.touched.elapsed() < STREAM_IDLE);
        if open.len() >= MAX_STREAMS {
            return Err(CoreError::StreamLimit(
                "too many multi-part operations open",
            ));
        }
        // the stream is out of the map while a part is processed: it counts here once
        let (mut own, mut own_bytes, mut all_bytes) = (0, stream.buffered(), stream.buffered());
        for s in open.values() {
            all_bytes += s.buffered();
            if s.owner == stream.owner {
                own += 1;
                own_bytes += s.buffered();
            }
        }
        if own >= MAX_STREAMS_PER_OWNER {
            return Err(CoreError::StreamLimit(
                "this identity has too many multi-part operations open",
            ));
        }
        if own_bytes > MAX_BUFFERED_PER_OWNER {
            return Err(CoreError::StreamLimit(
                "this identity's multi-part operations hold too much data",
            ));
        }
        if all_bytes > MAX_BUFFERED_TOTAL {
            return Err(CoreError::StreamLimit(
                "the multi-part operations hold too much data",
            ));
        }
        stream.touched = Instant::now();
        open.insert(correlation, stream);
        Ok(())
    }

    /// How many streams are open.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffered(owner: &str) -> Stream {
        Stream::new(
            Some(owner.into()),
            "k".into(),
            1,
            CryptoParams::default(),
            StreamState::Buffer(Zeroizing::new(Vec::new())),
        )
    }

    #[test]
    fn a_stream_is_found_only_by_its_owner_and_operation() {
        let streams = Streams::default();
        let c = streams.open(buffered("alice")).unwrap();
        assert!(matches!(
            streams.take(&c, Some("mallory"), 1),
            Err(CoreError::InvalidCorrelation)
        ));
        assert!(matches!(
            streams.take(&c, Some("alice"), 2),
            Err(CoreError::InvalidCorrelation)
        ));
        let mut s = streams.take(&c, Some("alice"), 1).unwrap();
        // taken out: a second take fails until it is put back
        assert!(streams.take(&c, Some("alice"), 1).is_err());
        s.gather(b"part").unwrap();
        assert!(s.gather(&vec![0u8; MAX_BUFFERED]).is_err());
        streams.put(c.clone(), s).unwrap();
        assert!(streams.take(&c, Some("alice"), 1).is_ok());
        assert!(streams.take(b"unknown", Some("alice"), 1).is_err());
    }

    #[test]
    fn the_number_of_open_streams_is_bounded() {
        let streams = Streams::default();
        for i in 0..MAX_STREAMS {
            streams.open(buffered(&format!("owner{}", i % 32))).unwrap();
        }
        assert!(matches!(
            streams.open(buffered("another")),
            Err(CoreError::StreamLimit(_))
        ));
        assert_eq!(streams.len(), MAX_STREAMS);
    }

    /// One identity cannot take every slot: the others still open streams.
    #[test]
    fn one_identity_has_a_quota_of_streams() {
        let streams = Streams::default();
        for _ in 0..MAX_STREAMS_PER_OWNER {
            streams.open(buffered("mallory")).unwrap();
        }
        assert!(matches!(
            streams.open(buffered("mallory")),
            Err(CoreError::StreamLimit(_))
        ));
        assert!(streams.open(buffered("alice")).is_ok());
    }

    /// The data buffered streams gather is bounded per identity and in all.
    #[test]
    fn gathered_data_is_bounded() {
        let streams = Streams::default();
        let full = |owner: &str| {
            let mut s = buffered(owner);
            s.gather(&vec![0u8; MAX_BUFFERED]).unwrap();
            s
        };
        let half = |owner: &str| {
            let mut s = buffered(owner);
            s.gather(&vec![0u8; MAX_BUFFERED / 2]).unwrap();
            s
        };
        let mut open = Vec::new();
        for _ in 0..2 * MAX_BUFFERED_PER_OWNER / MAX_BUFFERED {
            open.push(streams.open(half("mallory")).unwrap());
        }
        // a new stream, or a part added to an open one, beyond the identity's share
        let mut one_more = buffered("mallory");
        one_more.gather(b"x").unwrap();
        assert!(matches!(
            streams.open(one_more),
            Err(CoreError::StreamLimit(_))
        ));
        let mut s = streams.take(&open[0], Some("mallory"), 1).unwrap();
        s.gather(b"").unwrap();
        streams.put(open[0].clone(), s).unwrap();
        let mut s = streams.take(&open[1], Some("mallory"), 1).unwrap();
        s.gather(b"x")
            .unwrap_or_else(|_| panic!("within the stream's own bound"));
        assert!(matches!(
            streams.put(open[1].clone(), s),
            Err(CoreError::StreamLimit(_))
        ));
        // others still gather, up to the bound over everyone
        let mut owners = 0;
        loop {
            match streams.open(full(&format!("owner{owners}"))) {
                Ok(_) => owners += 1,
                Err(e) => {
                    assert!(matches!(e, CoreError::StreamLimit(_)));
                    break;
                }
            }
            assert!(owners < MAX_STREAMS, "the total is unbounded");
        }
        assert_eq!(
            (owners + MAX_BUFFERED_PER_OWNER / MAX_BUFFERED) * MAX_BUFFERED,
            MAX_BUFFERED_TOTAL
        );
    }
}
