//! Replays OASIS KMIP XML test cases against a KMIP server and compares every response with the
//! expected one.
//!
//! Placeholders: `$UNIQUE_IDENTIFIER_n` and the other `$NAME`s are bound from the first response
//! that produces them and substituted into later requests; `$NOW`, `$NOW-3600` are the current
//! time. A placeholder that no expected response binds (CS-BC-M-13-14 and CS-AC-M-6 use
//! `$DATA_0` and `$MAC_DATA` where their responses give literals) takes the value of that field
//! (`Data`, `MACData`, `IVCounterNonce`) in the latest actual response that had it. Comparison is strict (operation, status, reason, the whole payload tree) with these
//! tolerances, each the specification's: the response Time Stamp (the server's clock); values
//! the server chooses (placeholders: identifiers, IVs, nonces, correlation values); the Result
//! Message text (free text, KMIP 1.4 §6.17); the order of the attributes in an Attributes
//! structure or a Get Attributes response, and of the names in a Get Attribute List response
//! (KMIP does not order them); the contents of a Random Number Generator attribute (it
//! describes the server's own generator); a Server Correlation Value
//! (the server's own, optional); an Attribute Index of 0, which is what an absent index means
//! (KMIP 1.4 §2.1.1); the lists of a Query response (what a server implements is its own:
//! the test case's server listed its operations and objects, ours lists its own); and the output
//! of cryptography that is random by design, which must only have the expected length: Data,
//! Signature Data and MAC Data made with a key the server generated (Create, Create Key Pair,
//! Derive Key, Re-key), that key's own Key Material and Digest, Data encrypted with RSA (OAEP
//! and PKCS#1 v1.5 padding are randomised), Data encrypted under an IV the server chose (the
//! request gave none and the response returns one: a Random IV), and RNG Retrieve output.

use kmip_client::Client;
use kmip_codec::text;
use kmip_codec::{xml, Limits, Ttlv};
use quick_xml::events::Event;
use std::collections::HashMap;

/// A KMIP XML element as text: the form in which expected and actual responses are compared.
#[derive(Clone, Debug, PartialEq)]
struct Node {
    name: String,
    ty: Option<String>,
    value: Option<String>,
    children: Vec<Node>,
}

impl Node {
    /// A short name for a difference report: the element and its value, or its first leaf's.
    fn label(&self) -> String {
        let mut n = self;
        while n.value.is_none() {
            match n.children.first() {
                Some(c) => n = c,
                None => break,
            }
        }
        match &n.value {
            Some(v) => format!("{}={v}", self.name),
            None => self.name.clone(),
        }
    }
}

fn parse_nodes(s: &str) -> Result<Vec<Node>, String> {
    let mut r = quick_xml::Reader::from_str(s);
    r.config_mut().trim_text(true);
    let mut stack: Vec<Node> = Vec::new();
    let mut top = Vec::new();
    loop {
        let ev = r.read_event().map_err(|e| e.to_string())?;
        let (node, open) = match &ev {
            Event::Start(e) | Event::Empty(e) => {
                let mut n = Node {
                    name: String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                    ty: None,
                    value: None,
                    children: Vec::new(),
                };
                for a in e.attributes().flatten() {
                    let v = a.unescape_value().map_err(|e| e.to_string())?.into_owned();
                    match a.key.as_ref() {
                        b"type" => n.ty = Some(v),
                        b"value" => n.value = Some(v),
                        b"tag" => n.name = v,
                        _ => {}
                    }
                }
                (Some(n), matches!(ev, Event::Start(_)))
            }
            Event::End(_) => {
                let n = stack.pop().ok_or("unbalanced XML")?;
                (Some(n), false)
            }
            Event::Eof => break,
            _ => (None, false),
        };
        if let Some(n) = node {
            if open {
                stack.push(n);
            } else if let Some(parent) = stack.last_mut() {
                parent.children.push(n);
            } else {
                top.push(n);
            }
        }
    }
    Ok(top)
}

/// The `<RequestMessage>` and `<ResponseMessage>` texts of a test-case file, in order.
fn messages(file: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut rest = file;
    loop {
        let req = rest.find("<RequestMessage>");
        let resp = rest.find("<ResponseMessage>");
        let (start, is_req) = match (req, resp) {
            (Some(a), Some(b)) if a < b => (a, true),
            (Some(a), None) => (a, true),
            (_, Some(b)) => (b, false),
            (None, None) => break,
        };
        let close = if is_req {
            "</RequestMessage>"
        } else {
            "</ResponseMessage>"
        };
        let Some(end) = rest[start..].find(close) else {
            break;
        };
        let end = start + end + close.len();
        out.push((is_req, rest[start..end].to_owned()));
        rest = &rest[end..];
    }
    out
}

/// Replace `value="$NAME"` in a request by bound values, the time, or fail on an unknown one.
/// `MACData` -> `MAC_DATA`: the placeholder name a test case gives a field.
fn placeholder_name(xml_name: &str) -> String {
    let chars: Vec<char> = xml_name.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
        if i > 0 && c.is_ascii_uppercase() && (prev_lower || next_lower) {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The fields of a response's payloads, by placeholder name, as KMIP XML values.
fn outputs(resp: &Ttlv) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Ok(nodes) = parse_nodes(&xml::to_xml(resp)) {
        let walk = nodes
            .iter()
            .flat_map(|m| m.children.iter())
            .filter(|b| b.name == "BatchItem")
            .flat_map(|b| b.children.iter())
            .filter(|p| p.name == "ResponsePayload")
            .flat_map(|p| p.children.iter());
        for f in walk {
            if let Some(v) = &f.value {
                out.insert(placeholder_name(&f.name), v.clone());
            }
        }
    }
    out
}

fn substitute(msg: &str, bound: &HashMap<String, String>, now: i64) -> Result<String, String> {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("value=\"$") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 7..];
        let end = after.find('"').ok_or("unterminated attribute")?;
        let name = &after[..end];
        let v = if let Some(delta) = name.strip_prefix("$NOW") {
            let d: i64 = if delta.is_empty() {
                0
            } else {
                delta.parse().map_err(|_| format!("bad {name}"))?
            };
            kmip_codec::time::format_secs(now + d)
        } else {
            bound
                .get(name)
                .cloned()
                .ok_or_else(|| format!("{name} is used before a response bound it"))?
        };
        out.push_str(&format!("value=\"{}\"", quick_xml::escape::escape(&v)));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether `tag` occurs anywhere in `t`.
fn contains_tag(t: &Ttlv, tag: kmip_codec::Tag) -> bool {
    t.tag == tag || t.children().iter().any(|c| contains_tag(c, tag))
}

/// The `$NAME`s of a message that nothing has bound (not `$NOW`).
fn unbound_placeholders(msg: &str, bound: &HashMap<String, String>) -> Vec<String> {
    msg.match_indices("value=\"$")
        .filter_map(|(i, _)| {
            let after = &msg[i + 7..];
            let name = &after[..after.find('"')?];
            (!name.starts_with("$NOW") && !bound.contains_key(name)).then(|| name.to_owned())
        })
        .collect()
}

/// Whether an expected and an actual scalar are the same value (masks in any order, dates in
/// any offset...): both are parsed by the codec and compared as values.
fn same_scalar(
    name: &str,
    ty: &str,
    expected: &str,
    actual: &str,
    attribute_name: Option<&str>,
) -> bool {
    if expected == actual {
        return true;
    }
    let (Ok(tag), Some(item_type)) = (
        text::parse_tag(name),
        kmip_codec::ItemType::from_xml_name(ty),
    ) else {
        return false;
    };
    let names = text::names(tag, attribute_name);
    match (
        text::parse_scalar(tag, item_type, expected, names),
        text::parse_scalar(tag, item_type, actual, names),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

struct Compare<'a> {
    bound: &'a mut HashMap<String, String>,
    /// Whether this response's cryptographic output is random by design (see the module doc).
    random_output: bool,
}

impl Compare<'_> {
    fn node(
        &mut self,
        path: &str,
        e: &Node,
        a: &Node,
        attribute_name: Option<&str>,
    ) -> Result<(), String> {
        let here = format!("{path}/{}", e.name);
        if e.name != a.name {
            return Err(format!("{path}: expected <{}>, got <{}>", e.name, a.name));
        }
        if e.ty != a.ty {
            return Err(format!("{here}: expected type {:?}, got {:?}", e.ty, a.ty));
        }
        // the server's clock, its free text, and the description of its own random generator
        if matches!(
            e.name.as_str(),
            "TimeStamp" | "ResultMessage" | "RandomNumberGenerator"
        ) || e.name == "AttributeValue" && attribute_name == Some("Random Number Generator")
        {
            return Ok(());
        }
        if e.name == "BatchItem" && is_query(e) {
            let without = |n: &Node| Node {
                children: n
                    .children
                    .iter()
                    .filter(|c| c.name != "ResponsePayload")
                    .cloned()
                    .collect(),
                ..n.clone()
            };
            return self.node(path, &without(e), &without(a), attribute_name);
        }
        if let (Some(ev), Some(ty)) = (&e.value, &e.ty) {
            let av = a.value.clone().unwrap_or_default();
            if let Some(p) = ev.strip_prefix('$') {
                if p.starts_with("NOW") {
                    return Ok(());
                }
                return match self.bound.get(ev) {
                    Some(b) if *b == av => Ok(()),
                    Some(b) => Err(format!("{here}: expected {ev} = {b:?}, got {av:?}")),
                    None => {
                        self.bound.insert(ev.clone(), av);
                        Ok(())
                    }
                };
            }
            let random = self.random_output
                && matches!(
                    e.name.as_str(),
                    "Data"
                        | "SignatureData"
                        | "MACData"
                        | "KeyMaterial"
                        | "DigestValue"
                        | "IVCounterNonce"
                        | "AuthenticatedEncryptionTag"
                );
            if random && ev.len() == av.len() {
                return Ok(());
            }
            if !same_scalar(&e.name, ty, ev, &av, attribute_name) {
                return Err(format!("{here}: expected {ev:?}, got {av:?}"));
            }
            return Ok(());
        }
        let unordered = e.name == "Attributes"
            || e.children.iter().all(|c| c.name == "Attribute") && !e.children.is_empty();
        if unordered {
            // order is open: match every expected child with a distinct actual one, by value;
            // then walk the pairs to bind placeholders
            let mut used = vec![false; a.children.len()];
            if e.children.len() != a.children.len() {
                return Err(format!(
                    "{here}: expected {} items, got {} ({})",
                    e.children.len(),
                    a.children.len(),
                    a.children
                        .iter()
                        .map(Node::label)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for ec in &e.children {
                let mut found = None;
                for (i, ac) in a.children.iter().enumerate() {
                    if used[i] {
                        continue;
                    }
                    let mut scratch = self.bound.clone();
                    let ok = Compare {
                        bound: &mut scratch,
                        random_output: self.random_output,
                    }
                    .node(&here, ec, ac, None)
                    .is_ok();
                    if ok {
                        found = Some((i, scratch));
                        break;
                    }
                }
                match found {
                    Some((i, b)) => {
                        used[i] = true;
                        *self.bound = b;
                    }
                    None => return Err(format!("{here}: no match for expected {}", describe(ec))),
                }
            }
            return Ok(());
        }
        // 1.x Attribute siblings, and the names or references of Get Attribute List, form a set:
        // compare them apart from the rest, in any order
        let set_of = e
            .children
            .iter()
            .map(|c| c.name.as_str())
            .find(|n| matches!(*n, "Attribute" | "AttributeName" | "AttributeReference"))
            .unwrap_or("Attribute")
            .to_owned();
        let is_attr = |c: &&Node| c.name == set_of;
        let e_attrs: Vec<Node> = e.children.iter().filter(is_attr).cloned().collect();
        if e.name.ends_with("Payload") && !e_attrs.is_empty() && e_attrs.len() < e.children.len() {
            let a_attrs: Vec<Node> = a.children.iter().filter(is_attr).cloned().collect();
            let set = |children: Vec<Node>| Node {
                name: "Attributes".into(),
                ty: None,
                value: None,
                children,
            };
            self.node(&here, &set(e_attrs), &set(a_attrs), None)?;
            let rest = |n: &Node| Node {
                children: n
                    .children
                    .iter()
                    .filter(|c| c.name != set_of)
                    .cloned()
                    .collect(),
                ..n.clone()
            };
            return self.node(path, &rest(e), &rest(a), attribute_name);
        }
        let skip = |c: &Node| {
            // tolerated when absent on one side: see the module comment
            c.name == "ServerCorrelationValue"
                || c.name == "AttributeIndex" && c.value.as_deref() == Some("0")
        };
        let e = &Node {
            children: e.children.iter().filter(|c| !skip(c)).cloned().collect(),
            ..e.clone()
        };
        let a = &Node {
            children: a.children.iter().filter(|c| !skip(c)).cloned().collect(),
            ..a.clone()
        };
        let mut attr_name: Option<String> = None;
        for (i, ec) in e.children.iter().enumerate() {
            let ac = a
                .children
                .get(i)
                .ok_or_else(|| format!("{here}: missing {}", describe(ec)))?;
            self.node(&here, ec, ac, attr_name.as_deref())?;
            if ec.name == "AttributeName" {
                attr_name = ec.value.clone();
            }
        }
        if a.children.len() > e.children.len() {
            return Err(format!(
                "{here}: unexpected {}",
                describe(&a.children[e.children.len()])
            ));
        }
        Ok(())
    }
}

/// A batch item of a Query response: its payload lists what a server implements.
fn is_query(item: &Node) -> bool {
    item.children
        .iter()
        .any(|c| c.name == "Operation" && c.value.as_deref() == Some("Query"))
        && item.children.iter().any(|c| c.name == "ResponsePayload")
}

fn describe(n: &Node) -> String {
    match (&n.value, n.children.first()) {
        (Some(v), _) => format!("<{} {v:?}>", n.name),
        (None, Some(c)) => format!("<{}> starting {}", n.name, describe(c)),
        _ => format!("<{}>", n.name),
    }
}

/// Replay one test-case file over `client`. `Err` names the message and the first difference.
pub fn replay(client: &mut Client, file_text: &str) -> Result<usize, String> {
    replay_continuing(client, file_text, &mut std::collections::HashSet::new())
}

/// Replay a file that continues earlier ones on the same server: `random_keys` carries the
/// identifiers of keys the server generated in those files (their material is random).
pub fn replay_continuing(
    client: &mut Client,
    file_text: &str,
    random_keys: &mut std::collections::HashSet<String>,
) -> Result<usize, String> {
    let limits = Limits::default();
    let mut bound: HashMap<String, String> = HashMap::new();
    let mut last: Option<Ttlv> = None;
    let mut last_request: Option<Ttlv> = None;
    let mut previous_outputs: HashMap<String, String> = HashMap::new();
    let mut exchanges = 0;
    for (n, (is_req, msg)) in messages(file_text).into_iter().enumerate() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if is_req {
            // a placeholder no expected response binds (an authoring slip in a few test cases)
            // takes what the server last returned in that field
            for name in unbound_placeholders(&msg, &bound) {
                let field = name
                    .trim_start_matches('$')
                    .trim_end_matches(|c: char| c.is_ascii_digit())
                    .trim_end_matches('_')
                    .to_owned();
                if let Some(v) = previous_outputs.get(&field) {
                    bound.insert(name, v.clone());
                }
            }
            let text = substitute(&msg, &bound, now).map_err(|e| format!("message {n}: {e}"))?;
            let tree = xml::from_xml(&text, &limits).map_err(|e| format!("message {n}: {e}"))?;
            let resp = client
                .raw(&kmip_codec::encode(&tree))
                .map_err(|e| format!("message {n}: {e}"))?;
            note_random_keys(&tree, &resp, random_keys);
            last = Some(resp);
            last_request = Some(tree);
            exchanges += 1;
        } else {
            let actual = last
                .take()
                .ok_or_else(|| format!("message {n}: a response without a request"))?;
            previous_outputs.extend(outputs(&actual));
            let expected = parse_nodes(&msg).map_err(|e| format!("message {n}: {e}"))?;
            let got =
                parse_nodes(&xml::to_xml(&actual)).map_err(|e| format!("message {n}: {e}"))?;
            let (Some(e), Some(a)) = (expected.first(), got.first()) else {
                return Err(format!("message {n}: empty"));
            };
            // an IV the server chose makes the ciphertext random too
            let server_iv = msg.contains("<IVCounterNonce")
                && last_request
                    .as_ref()
                    .is_some_and(|q| !contains_tag(q, kmip_codec::vocab::tag::IV_COUNTER_NONCE));
            // the response names a key the server generated (found through the ID Placeholder,
            // by Locate, ...)
            let names_random_key = actual
                .children_with(kmip_codec::vocab::tag::BATCH_ITEM)
                .filter_map(|b| b.child(kmip_codec::vocab::tag::RESPONSE_PAYLOAD))
                .filter_map(|p| p.child(kmip_codec::vocab::tag::UNIQUE_IDENTIFIER))
                .filter_map(Ttlv::as_text)
                .any(|id| random_keys.contains(id));
            let random_output = server_iv
                || names_random_key
                || last_request
                    .as_ref()
                    .is_some_and(|q| uses_random_key(q, random_keys));
            Compare {
                bound: &mut bound,
                random_output,
            }
            .node("", e, a, None)
            .map_err(|d| {
                // the server's own words help when a status differs
                let said: Vec<String> = actual
                    .children_with(kmip_codec::vocab::tag::BATCH_ITEM)
                    .filter_map(|b| {
                        b.child(kmip_codec::vocab::tag::RESULT_MESSAGE)?
                            .as_text()
                            .map(str::to_owned)
                    })
                    .collect();
                if said.is_empty() {
                    format!("message {n}: {d}")
                } else {
                    format!("message {n}: {d} (server said: {})", said.join("; "))
                }
            })?;
        }
    }
    Ok(exchanges)
}

/// Remember the keys whose outputs are random by design: those a Create, Create Key Pair,
/// Derive Key or Re-key made, and RSA keys.
fn note_random_keys(request: &Ttlv, response: &Ttlv, keys: &mut std::collections::HashSet<String>) {
    use kmip_codec::vocab::{enums::operation as op, tag};
    let ops: Vec<u32> = request
        .children_with(tag::BATCH_ITEM)
        .filter_map(|b| b.child(tag::OPERATION)?.as_enum())
        .collect();
    fn mentions_rsa(t: &Ttlv) -> bool {
        (t.tag == tag::CRYPTOGRAPHIC_ALGORITHM
            && t.as_enum() == Some(kmip_codec::vocab::enums::cryptographic_algorithm::RSA))
            || (t.tag == tag::ATTRIBUTE_VALUE
                && t.as_enum() == Some(kmip_codec::vocab::enums::cryptographic_algorithm::RSA))
            || t.children().iter().any(mentions_rsa)
    }
    for (i, item) in response.children_with(tag::BATCH_ITEM).enumerate() {
        let operation = ops.get(i).copied().unwrap_or(0);
        let generated = matches!(
            operation,
            op::CREATE | op::CREATE_KEY_PAIR | op::DERIVE_KEY | op::RE_KEY | op::RE_KEY_KEY_PAIR
        );
        let rsa = operation == op::REGISTER && mentions_rsa(request);
        if !(generated || rsa) {
            continue;
        }
        if let Some(p) = item.child(tag::RESPONSE_PAYLOAD) {
            for c in p.children() {
                if let Some(id) = c.as_text() {
                    keys.insert(id.to_owned());
                }
            }
        }
    }
}

/// Whether a request uses one of those keys, makes one in the same message (later items reach
/// it through the ID Placeholder), or asks for random bytes.
fn uses_random_key(request: &Ttlv, keys: &std::collections::HashSet<String>) -> bool {
    use kmip_codec::vocab::{enums::operation as op, tag};
    request.children_with(tag::BATCH_ITEM).any(|b| {
        matches!(
            b.child(tag::OPERATION).and_then(Ttlv::as_enum),
            Some(op::RNG_RETRIEVE | op::CREATE | op::CREATE_KEY_PAIR | op::RE_KEY | op::DERIVE_KEY)
        ) || b
            .child(tag::REQUEST_PAYLOAD)
            .and_then(|p| p.child(tag::UNIQUE_IDENTIFIER))
            .and_then(Ttlv::as_text)
            .is_some_and(|id| keys.contains(id))
    })
}
