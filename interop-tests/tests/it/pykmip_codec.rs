//! Byte-for-byte agreement with an independent encoder: messages built by the PyKMIP library
//! decode in our codec, pass through the typed model, and re-encode to identical bytes.

use interop_tests::python;
use kmip_codec::message::Message;
use kmip_codec::ops::{RequestPayload, ResponsePayload};
use kmip_codec::{decode, encode, text, Limits};

#[test]
fn pykmip_messages_reencode_identically() {
    let out = python()
        .arg(interop_tests::workspace_path(
            "interop-tests/pykmip/encode_vectors.py",
        ))
        .output()
        .expect("run the PyKMIP encoder");
    assert!(
        out.status.success(),
        "PyKMIP encoder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut checked = 0;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let name = v["name"].as_str().unwrap();
        let bytes = text::unhex(v["hex"].as_str().unwrap()).unwrap();
        let (tree, used) =
            decode(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(used, bytes.len(), "{name}");
        let typed = Message::from_ttlv(&tree).unwrap_or_else(|e| panic!("{name}: {e}"));
        let retree = typed.to_ttlv();
        assert_eq!(
            encode(&retree),
            bytes,
            "{name}: typed model re-encodes differently"
        );
        match &typed {
            Message::Request(m) => {
                for b in &m.batch_item {
                    let p = b.request_payload.as_ref().unwrap();
                    let typed = RequestPayload::decode(b.operation.0 .0, p)
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(!matches!(typed, RequestPayload::Other(_)), "{name}");
                    assert_eq!(&typed.encode(), p, "{name}");
                }
            }
            Message::Response(m) => {
                for b in &m.batch_item {
                    if let Some(p) = &b.response_payload {
                        let op = b.operation.unwrap().0;
                        let typed = ResponsePayload::decode(op, p)
                            .unwrap_or_else(|e| panic!("{name}: {e}"));
                        assert!(!matches!(typed, ResponsePayload::Other(_)), "{name}");
                        assert_eq!(&typed.encode(), p, "{name}");
                    }
                }
            }
        }
        checked += 1;
    }
    println!("{checked} PyKMIP-encoded messages re-encoded identically");
    assert!(checked >= 80, "only {checked} messages");
}
