//! The request side of multi-part cryptography: which part a request is, and for the
//! operations that gather their data (Sign, Signature Verify, MAC, MAC Verify) either the
//! whole data to process now or the Correlation Value to answer with.

use super::Ctx;
use super::{params, required};
use crate::error::OpError;
use kmip_codec::message::Bytes;
use kmip_codec::Ttlv;
use lifecycle::core::CryptoParams;
use lifecycle::core::Secret;
use lifecycle::object::{Gathered, Part};

/// The stream fields every multi-part request carries.
pub(crate) struct StreamFields<'a> {
    pub correlation: &'a Option<Bytes>,
    pub init: Option<bool>,
    pub last: Option<bool>,
}

impl<'a> StreamFields<'a> {
    pub(crate) fn part(&self) -> Result<Part<'a>, OpError> {
        Ok(Part::of(
            self.correlation.as_ref().map(|b| b.0.as_slice()),
            self.init,
            self.last,
        )?)
    }
}

/// The outcome of one request of a gathering operation.
pub(crate) enum Gather {
    /// Process this now: a single request, or the last part of a stream.
    Ready {
        id: String,
        params: CryptoParams,
        data: Secret,
    },
    /// A part was kept: answer with the key's identifier and the Correlation Value.
    Pending { id: String, correlation: Vec<u8> },
}

pub(crate) fn gather(
    ctx: &mut Ctx<'_>,
    operation: u32,
    uid: Option<&String>,
    request_params: &Option<Ttlv>,
    data: &Option<Bytes>,
    stream: StreamFields<'_>,
) -> Result<Gather, OpError> {
    let part = stream.part()?;
    let streamed = data.as_ref().map(|b| b.0.as_slice()).unwrap_or_default();
    Ok(match part {
        Part::Whole => Gather::Ready {
            id: ctx.uid(uid)?,
            params: params(request_params),
            data: Secret::new(required(data, "Data")?.to_vec()),
        },
        Part::First => {
            let id = ctx.uid(uid)?;
            let correlation =
                ctx.txn
                    .gather_first(operation, &id, params(request_params), streamed, ctx.now)?;
            Gather::Pending { id, correlation }
        }
        Part::Next { correlation, last } => {
            match ctx
                .txn
                .gather_next(operation, correlation, last, streamed, ctx.now)?
            {
                Gathered::More { id } => Gather::Pending {
                    id,
                    correlation: correlation.to_vec(),
                },
                Gathered::Done { id, params, data } => Gather::Ready { id, params, data },
            }
        }
    })
}
