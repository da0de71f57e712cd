//! Multi-part cryptography, Usage Limits allocations, leases and RNG seeding over real TLS.

use interop_tests::kmip::*;
use interop_tests::ServerProcess;
use kmip_codec::message::{Bytes, Interval, Req};
use kmip_codec::ops::*;
use kmip_codec::vocab::enums::{
    block_cipher_mode as bcm, operation as op, result_reason as rr, usage_limits_unit,
};
use kmip_codec::vocab::tag;
use kmip_codec::{Ttlv, Value};

fn gcm() -> Option<Ttlv> {
    Some(Ttlv::structure(
        tag::CRYPTOGRAPHIC_PARAMETERS,
        vec![item(tag::BLOCK_CIPHER_MODE, Value::Enumeration(bcm::GCM))],
    ))
}

fn active_since_an_hour() -> Ttlv {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    item(tag::ACTIVATION_DATE, Value::DateTime(now - 3600))
}

#[test]
fn multi_part_encryption_matches_one_request() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let id = create_aes(&mut c, 256, vec![active_since_an_hour()]);
    let plain: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let iv = vec![9u8; 12];
    let whole: EncryptResponse = c
        .op(
            op::ENCRYPT,
            &EncryptRequest {
                unique_identifier: uid(&id),
                cryptographic_parameters: gcm(),
                data: Some(Bytes(plain.clone())),
                iv_counter_nonce: Some(Bytes(iv.clone())),
                ..Default::default()
            },
        )
        .unwrap();
    // three parts: Init, one in the middle, Final
    let first: EncryptResponse = c
        .op(
            op::ENCRYPT,
            &EncryptRequest {
                unique_identifier: uid(&id),
                cryptographic_parameters: gcm(),
                data: Some(Bytes(plain[..300].to_vec())),
                iv_counter_nonce: Some(Bytes(iv.clone())),
                init_indicator: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    let corr = first
        .correlation_value
        .clone()
        .expect("a Correlation Value");
    let next = |c: &mut kmip_client::Client, data: &[u8], last: bool| -> EncryptResponse {
        c.op(
            op::ENCRYPT,
            &EncryptRequest {
                data: Some(Bytes(data.to_vec())),
                correlation_value: Some(corr.clone()),
                final_indicator: Some(last),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let mid = next(&mut c, &plain[300..700], false);
    assert_eq!(mid.correlation_value.as_ref(), Some(&corr));
    let end = next(&mut c, &plain[700..], true);
    assert_eq!(end.unique_identifier.0, id);
    let streamed = [first.data, mid.data, end.data]
        .into_iter()
        .flat_map(|d| d.unwrap().0)
        .collect::<Vec<u8>>();
    assert_eq!(Some(streamed), whole.data.map(|d| d.0));
    assert_eq!(
        end.authenticated_encryption_tag,
        whole.authenticated_encryption_tag
    );
    // the stream is closed, and another identity never sees one
    let again = c.op::<_, EncryptResponse>(
        op::ENCRYPT,
        &EncryptRequest {
            data: Some(Bytes(vec![1])),
            correlation_value: Some(corr),
            final_indicator: Some(true),
            ..Default::default()
        },
    );
    assert_eq!(
        again.unwrap_err().reason(),
        Some(rr::INVALID_CORRELATION_VALUE)
    );
    let started: EncryptResponse = c
        .op(
            op::ENCRYPT,
            &EncryptRequest {
                unique_identifier: uid(&id),
                cryptographic_parameters: gcm(),
                data: Some(Bytes(vec![1, 2, 3])),
                iv_counter_nonce: Some(Bytes(iv)),
                init_indicator: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    server.issue_client_cert("other");
    let mut other = server.client("other");
    let stolen = other.op::<_, EncryptResponse>(
        op::ENCRYPT,
        &EncryptRequest {
            data: Some(Bytes(vec![4])),
            correlation_value: started.correlation_value,
            final_indicator: Some(true),
            ..Default::default()
        },
    );
    assert_eq!(
        stolen.unwrap_err().reason(),
        Some(rr::INVALID_CORRELATION_VALUE)
    );
}

#[test]
fn allocations_leases_and_seeding() {
    let server = ServerProcess::start(&[]);
    let mut c = server.client("admin");
    let limits = Ttlv::structure(
        tag::USAGE_LIMITS,
        vec![
            item(tag::USAGE_LIMITS_TOTAL, Value::LongInteger(10)),
            item(
                tag::USAGE_LIMITS_UNIT,
                Value::Enumeration(usage_limits_unit::OBJECT),
            ),
        ],
    );
    let id = create_aes(&mut c, 128, vec![active_since_an_hour(), limits]);
    let alloc = |c: &mut kmip_client::Client, n: i64| {
        c.op::<_, GetUsageAllocationResponse>(
            op::GET_USAGE_ALLOCATION,
            &GetUsageAllocationRequest {
                unique_identifier: uid(&id),
                usage_limits_count: Req(n),
            },
        )
    };
    assert_eq!(alloc(&mut c, 7).unwrap().unique_identifier.0, id);
    // 3 left: Check says whether 4 could be had, and an allocation of 4 is refused
    let check = |c: &mut kmip_client::Client, n: i64| {
        c.op::<_, CheckResponse>(
            op::CHECK,
            &CheckRequest {
                unique_identifier: uid(&id),
                usage_limits_count: Some(n),
                ..Default::default()
            },
        )
    };
    assert!(check(&mut c, 3).is_ok());
    assert_eq!(
        check(&mut c, 4).unwrap_err().reason(),
        Some(rr::USAGE_LIMIT_EXCEEDED)
    );
    assert_eq!(
        alloc(&mut c, 4).unwrap_err().reason(),
        Some(rr::PERMISSION_DENIED)
    );
    let count = get_attributes(&mut c, &id)
        .into_iter()
        .find(|a| a.tag == tag::USAGE_LIMITS)
        .and_then(|a| a.child(tag::USAGE_LIMITS_COUNT).cloned())
        .map(|t| t.value);
    assert_eq!(count, Some(Value::LongInteger(3)));
    // a key without limits has nothing to allocate
    let plain = create_aes(&mut c, 128, vec![active_since_an_hour()]);
    let none = c.op::<_, GetUsageAllocationResponse>(
        op::GET_USAGE_ALLOCATION,
        &GetUsageAllocationRequest {
            unique_identifier: uid(&plain),
            usage_limits_count: Req(1),
        },
    );
    assert_eq!(none.unwrap_err().reason(), Some(rr::ATTRIBUTE_NOT_FOUND));

    // leases: granted for an Active object, refused for a Pre-Active one
    let lease: ObtainLeaseResponse = c
        .op(
            op::OBTAIN_LEASE,
            &ObtainLeaseRequest {
                unique_identifier: uid(&id),
            },
        )
        .unwrap();
    assert_eq!(lease.lease_time.0, Interval(3600));
    let pre = create_aes(&mut c, 128, vec![]);
    let refused = c.op::<_, ObtainLeaseResponse>(
        op::OBTAIN_LEASE,
        &ObtainLeaseRequest {
            unique_identifier: uid(&pre),
        },
    );
    assert_eq!(
        refused.unwrap_err().reason(),
        Some(rr::WRONG_KEY_LIFECYCLE_STATE)
    );

    let seeded: RNGSeedResponse = c
        .op(
            op::RNG_SEED,
            &RNGSeedRequest {
                data: Req(Bytes(vec![0x5a; 48])),
            },
        )
        .unwrap();
    assert_eq!(seeded.data_length.0, 48);
}
