//! Every request and response of the OASIS test cases (interop-tests/testcases) goes
//! XML -> tree -> TTLV -> tree -> XML and JSON -> tree, and through the typed message model,
//! and must come back as the same tree.

use interop_tests::testcases::{bind_placeholders, test_case_files};
use kmip_codec::message::Message;
use kmip_codec::ops::{RequestPayload, ResponsePayload};
use kmip_codec::{decode, encode, json, xml, Limits, Ttlv};

#[test]
fn every_test_case_message_round_trips() {
    let limits = Limits::default();
    let files = test_case_files();
    assert!(
        files.len() >= 168,
        "found only {} test-case files",
        files.len()
    );
    let mut messages = 0;
    let mut failures = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let src = bind_placeholders(&std::fs::read_to_string(f).unwrap());
        let trees = match xml::from_xml_document(&src, &limits) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{name}: XML: {e}"));
                continue;
            }
        };
        assert!(!trees.is_empty(), "{name}: no messages");
        for (i, tree) in trees.iter().enumerate() {
            messages += 1;
            if let Err(e) = round_trip(tree, &limits) {
                failures.push(format!("{name} message {i}: {e}"));
            }
        }
    }
    println!("{} files, {messages} messages checked", files.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(messages > 1500, "only {messages} messages");
}

fn round_trip(tree: &Ttlv, limits: &Limits) -> Result<(), String> {
    let bytes = encode(tree);
    let (back, used) = decode(&bytes, limits).map_err(|e| format!("TTLV decode: {e}"))?;
    if used != bytes.len() || &back != tree {
        return Err("TTLV round trip changed the tree".into());
    }
    let again = xml::from_xml(&xml::to_xml(&back), limits).map_err(|e| format!("XML: {e}"))?;
    if &again != tree {
        return Err("XML rendering changed the tree".into());
    }
    let j = json::to_json(tree);
    let from_json = json::from_json(&j, limits).map_err(|e| format!("JSON: {e}"))?;
    if &from_json != tree {
        return Err("JSON round trip changed the tree".into());
    }
    let typed = Message::from_ttlv(tree).map_err(|e| format!("typed model: {e}"))?;
    if &typed.to_ttlv() != tree {
        return Err("typed model changed the tree".into());
    }
    let payloads: Vec<(u32, &Ttlv, bool)> = match &typed {
        Message::Request(m) => m
            .batch_item
            .iter()
            .filter_map(|b| Some((b.operation.0 .0, b.request_payload.as_ref()?, true)))
            .collect(),
        Message::Response(m) => m
            .batch_item
            .iter()
            .filter_map(|b| Some((b.operation?.0, b.response_payload.as_ref()?, false)))
            .collect(),
    };
    for (op, payload, request) in payloads {
        let back = if request {
            let p = RequestPayload::decode(op, payload).map_err(|e| format!("payload: {e}"))?;
            if matches!(p, RequestPayload::Other(_)) {
                return Err(format!("operation 0x{op:X} has no typed request payload"));
            }
            p.encode()
        } else {
            let p = ResponsePayload::decode(op, payload).map_err(|e| format!("payload: {e}"))?;
            if matches!(p, ResponsePayload::Other(_)) {
                return Err(format!("operation 0x{op:X} has no typed response payload"));
            }
            p.encode()
        };
        if &back != payload {
            return Err(format!(
                "typed payload of operation 0x{op:X} changed the tree"
            ));
        }
    }
    Ok(())
}

/// Every group of 1.x Attribute structures in the 1.4 test cases converts to 2.x Attributes
/// and back without loss.
#[test]
fn test_case_attributes_convert_between_versions() {
    use kmip_codec::attributes::{to_v1, to_v2};
    use kmip_codec::vocab::tag;
    fn walk(t: &Ttlv, groups: &mut Vec<Vec<Ttlv>>) {
        let attrs: Vec<Ttlv> = t.children_with(tag::ATTRIBUTE).cloned().collect();
        let v1 = |a: &Ttlv| {
            a.child(tag::ATTRIBUTE_VALUE).is_some() && a.child(tag::VENDOR_IDENTIFICATION).is_none()
        };
        if !attrs.is_empty() && attrs.iter().all(v1) {
            groups.push(attrs);
        }
        t.children().iter().for_each(|c| walk(c, groups));
    }
    let mut groups = Vec::new();
    for (_, tree) in interop_tests::testcases::all_messages() {
        walk(&tree, &mut groups);
    }
    let mut converted = 0;
    for g in &groups {
        let two = to_v2(g).unwrap_or_else(|e| panic!("{e}: {g:?}"));
        let one = to_v1(&two).unwrap();
        assert_eq!(to_v2(&one).unwrap(), two);
        let strip = |v: &[Ttlv]| -> Vec<Ttlv> {
            v.iter()
                .map(|a| {
                    let mut a = a.clone();
                    a.children_mut()
                        .unwrap()
                        .retain(|c| c.tag != tag::ATTRIBUTE_INDEX);
                    a
                })
                .collect()
        };
        assert_eq!(strip(&one), strip(g));
        converted += g.len();
    }
    println!(
        "{} attribute groups, {converted} attributes converted both ways",
        groups.len()
    );
    assert!(converted > 500, "only {converted}");
}
