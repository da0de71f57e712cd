//! The batch loop: from a decoded request message to a response message. Protocol version,
//! batch count, the ID Placeholder, Batch Error Continuation (Stop, Continue, Undo) and the
//! Maximum Response Size; each item goes to its operation through `ops`.

use crate::config::Settings;
use crate::error::{failed, guarded, header, message_error, OpError};
use crate::ops::{self, Ctx};
use crate::pipeline::VERSIONS;
use kmip_codec::message::{
    Bytes, Enum, FieldValue, Req, RequestBatchItem, RequestMessage, ResponseBatchItem,
    ResponseMessage,
};
use kmip_codec::vocab::enums::{batch_error_continuation_option as beco, result_status};
use kmip_codec::vocab::tag;
use kmip_codec::Ttlv;
use lifecycle::{LifecycleError, Stop, Txn};

/// Answer one request message, its credentials already checked (`pipeline`). Items stop
/// running once `stop` is raised: the client has gone.
pub(crate) fn run(
    txn: &Txn,
    identity: &str,
    req: &RequestMessage,
    limits: &Settings,
    now: i64,
    stop: &Stop,
) -> Ttlv {
    let pv = &req.header.protocol_version;
    let version = (pv.major.0, pv.minor.0);
    if !VERSIONS.contains(&version) {
        // answer in the highest version we share with the client's major, else 1.0
        let v = VERSIONS
            .iter()
            .copied()
            .find(|v| v.0 == version.0)
            .unwrap_or((1, 0));
        return message_error(v, now, OpError::UnsupportedVersion(version));
    }
    if req.batch_item.len() > limits.max_batch_items {
        return message_error(
            version,
            now,
            OpError::InvalidMessage(format!("more than {} batch items", limits.max_batch_items)),
        );
    }
    if req.batch_item.len() != req.header.batch_count.0 as usize {
        return message_error(
            version,
            now,
            OpError::InvalidMessage("Batch Count disagrees with the batch items".into()),
        );
    }
    let continuation = req
        .header
        .batch_error_continuation_option
        .map(|e| e.0)
        .unwrap_or(beco::STOP);
    let base = Ctx {
        txn,
        identity,
        now,
        version,
        placeholder: None,
        allowed: limits.policies.get(identity).map(Vec::as_slice),
        settings: limits,
        budget: &lifecycle::Budget::new(limits.max_locate_time, stop.clone()),
        asynchronous: crate::quorum::asynchronous(req.header.asynchronous_indicator.as_ref()),
    };
    let items = if continuation == beco::UNDO {
        match run_atomically(base, &req.batch_item) {
            Ok(items) => items,
            Err(e) => return message_error(version, now, e),
        }
    } else {
        run_items(base, &req.batch_item, continuation == beco::STOP).0
    };
    let mut resp = ResponseMessage {
        header: Req(header(version, now, items.len())),
        batch_item: items,
    };
    if let Some(max) = req.header.maximum_response_size {
        if kmip_codec::ttlv::encoded_len(&resp.to_ttlv()) > max.max(0) as usize {
            for b in &mut resp.batch_item {
                *b = failed(
                    b.operation,
                    b.unique_batch_item_id.clone(),
                    OpError::ResponseTooLarge(
                        "the response exceeds the Maximum Response Size".into(),
                    ),
                    version,
                );
            }
        }
    }
    resp.to_ttlv()
}

/// Run the items in order; with `stop`, none after the first failure. Whether one failed.
fn run_items(
    mut ctx: Ctx<'_>,
    batch: &[RequestBatchItem],
    stop: bool,
) -> (Vec<ResponseBatchItem>, bool) {
    let mut items = Vec::with_capacity(batch.len());
    // what the answer holds so far: a small request must not build a huge answer (a thousand
    // RNG Retrieves of a MiB each)
    let mut answer_bytes = 0usize;
    for item in batch {
        let refused = if ctx.budget.canceled() {
            Some(OpError::from(LifecycleError::Canceled))
        } else if answer_bytes > ctx.settings.max_response_bytes {
            Some(OpError::ResponseTooLarge(format!(
                "the answer would exceed the server's limit of {} bytes: send fewer items",
                ctx.settings.max_response_bytes
            )))
        } else {
            None
        };
        let out = if let Some(e) = refused {
            failed(
                Some(item.operation.0),
                item.unique_batch_item_id.clone(),
                e,
                ctx.version,
            )
        } else {
            let started = std::time::Instant::now();
            let out = run_item(&mut ctx, item);
            crate::metrics::get().operation(outcome(&out, ctx.version), started.elapsed());
            out
        };
        answer_bytes += out
            .response_payload
            .as_ref()
            .map_or(0, kmip_codec::ttlv::encoded_len);
        // an item waiting for approvals (Operation Pending) has not failed
        let failed = out.result_status.0 .0 == result_status::OPERATION_FAILED;
        items.push(out);
        if failed && stop {
            return (items, true);
        }
    }
    (items, false)
}

/// An answered item's labels: the operation, Success or the Result Reason, the version.
fn outcome(item: &ResponseBatchItem, version: (i32, i32)) -> crate::metrics::Outcome {
    let result = match (item.result_status.0 .0, &item.result_reason) {
        (result_status::SUCCESS, _) => "Success".to_owned(),
        (result_status::OPERATION_PENDING, _) => "OperationPending".to_owned(),
        // the server's own reasons: a bounded set
        (_, Some(reason)) => kmip_codec::vocab::enum_def("ResultReason")
            .and_then(|d| d.by_value(reason.0))
            .map_or_else(|| "GeneralFailure".to_owned(), |e| e.xml.to_owned()),
        (_, None) => "OperationFailed".to_owned(),
    };
    crate::metrics::Outcome {
        operation: crate::metrics::operation_name(item.operation.map_or(0, |o| o.0)).to_owned(),
        result,
        version: format!("{}.{}", version.0, version.1),
    }
}

/// Batch Error Continuation Option Undo: every change of the batch is held back and committed
/// together; when an item fails nothing is kept, the items before it answer Operation Undone
/// (with the payload they had produced, as the OASIS test case BL-M-2 expects) and those after
/// it are not run.
fn run_atomically(
    ctx: Ctx<'_>,
    batch: &[RequestBatchItem],
) -> Result<Vec<ResponseBatchItem>, OpError> {
    enum Abort {
        Undone(Vec<ResponseBatchItem>),
        Store(LifecycleError),
    }
    impl From<LifecycleError> for Abort {
        fn from(e: LifecycleError) -> Abort {
            Abort::Store(e)
        }
    }
    let (now, version, identity, allowed, settings, budget, asynchronous) = (
        ctx.now,
        ctx.version,
        ctx.identity,
        ctx.allowed,
        ctx.settings,
        ctx.budget,
        ctx.asynchronous,
    );
    let outcome = ctx.txn.undoable(|m| {
        let inner = Ctx {
            txn: m,
            identity,
            now,
            version,
            placeholder: None,
            allowed,
            settings,
            budget,
            asynchronous,
        };
        match run_items(inner, batch, true) {
            (items, false) => Ok(items),
            (items, true) => Err(Abort::Undone(items)),
        }
    });
    match outcome {
        Ok(items) => Ok(items),
        Err(Abort::Undone(mut items)) => {
            let last = items.len() - 1;
            // an undone item answers that it was undone, with the identifier it named (as
            // the test case BL-M-2 shows) and no result: a ciphertext, a signature or a
            // derived value would outlive the rollback of what paid for it (a Usage Limits
            // count), and Undo would buy unlimited uses
            for b in &mut items[..last] {
                b.result_status = Req(Enum(result_status::OPERATION_UNDONE));
                if let Some(p) = b.response_payload.as_mut().and_then(Ttlv::children_mut) {
                    p.retain(|c| c.tag == tag::UNIQUE_IDENTIFIER);
                }
            }
            Ok(items)
        }
        Err(Abort::Store(e)) => Err(e.into()),
    }
}

fn run_item(ctx: &mut Ctx<'_>, item: &RequestBatchItem) -> ResponseBatchItem {
    let op = item.operation.0;
    let id = item.unique_batch_item_id.clone();
    let empty = Ttlv::structure(tag::REQUEST_PAYLOAD, Vec::new());
    let payload = item.request_payload.as_ref().unwrap_or(&empty);
    let result = if ctx.allowed.is_some_and(|a| !a.contains(&op.0)) {
        (
            op,
            Err(OpError::PermissionDenied(
                "the identity's policy does not allow this operation".into(),
            )),
        )
    } else {
        // grants name operations: the lifecycle checks them against this one
        let scoped = ctx.txn.with_operation(op.0);
        let mut sub = Ctx {
            txn: &scoped,
            identity: ctx.identity,
            now: ctx.now,
            version: ctx.version,
            placeholder: ctx.placeholder.take(),
            allowed: ctx.allowed,
            settings: ctx.settings,
            budget: ctx.budget,
            asynchronous: ctx.asynchronous,
        };
        let r = match crate::quorum::intercept(&mut sub, op.0, payload) {
            crate::quorum::Outcome::Run => (op, guarded(|| ops::apply(&mut sub, op.0, payload))),
            crate::quorum::Outcome::Done(answered, r) => (Enum(answered), r),
            crate::quorum::Outcome::Pending(correlation) => {
                ctx.placeholder = sub.placeholder;
                return ResponseBatchItem {
                    operation: Some(op),
                    unique_batch_item_id: id,
                    result_status: Req(Enum(result_status::OPERATION_PENDING)),
                    asynchronous_correlation_value: Some(Bytes(correlation.into_bytes())),
                    ..Default::default()
                };
            }
        };
        ctx.placeholder = sub.placeholder;
        r
    };
    // Poll answers with the polled operation's result, under that operation
    let (op, result) = result;
    match result {
        Ok(p) => ResponseBatchItem {
            operation: Some(op),
            unique_batch_item_id: id,
            result_status: Req(Enum(result_status::SUCCESS)),
            response_payload: Some(p.encode(tag::RESPONSE_PAYLOAD)),
            ..Default::default()
        },
        Err(e) => {
            tracing::debug!(operation = op.0, reason = e.reason(), "operation failed");
            failed(Some(op), id, e, ctx.version)
        }
    }
}
