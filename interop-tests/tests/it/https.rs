//! KMIP over HTTPS: the same server, identities and dispatcher as the TTLV port, with TTLV,
//! KMIP XML and KMIP JSON bodies, and HTTP errors for what is not a KMIP POST.

use interop_tests::{free_port, ServerProcess};
use kmip_codec::vocab::enums::{operation as op, result_status};
use kmip_codec::vocab::tag;
use kmip_codec::{Limits, Ttlv};

const XML_QUERY: &str = r#"<RequestMessage>
  <RequestHeader>
    <ProtocolVersion>
      <ProtocolVersionMajor type="Integer" value="2"/>
      <ProtocolVersionMinor type="Integer" value="1"/>
    </ProtocolVersion>
    <BatchCount type="Integer" value="1"/>
  </RequestHeader>
  <BatchItem>
    <Operation type="Enumeration" value="Query"/>
    <RequestPayload>
      <QueryFunction type="Enumeration" value="QueryOperations"/>
    </RequestPayload>
  </BatchItem>
</RequestMessage>"#;

const XML_CREATE: &str = r#"<RequestMessage>
  <RequestHeader>
    <ProtocolVersion>
      <ProtocolVersionMajor type="Integer" value="1"/>
      <ProtocolVersionMinor type="Integer" value="4"/>
    </ProtocolVersion>
    <BatchCount type="Integer" value="1"/>
  </RequestHeader>
  <BatchItem>
    <Operation type="Enumeration" value="Create"/>
    <RequestPayload>
      <ObjectType type="Enumeration" value="SymmetricKey"/>
      <TemplateAttribute>
        <Attribute>
          <AttributeName type="TextString" value="Cryptographic Algorithm"/>
          <AttributeValue type="Enumeration" value="AES"/>
        </Attribute>
        <Attribute>
          <AttributeName type="TextString" value="Cryptographic Length"/>
          <AttributeValue type="Integer" value="256"/>
        </Attribute>
      </TemplateAttribute>
    </RequestPayload>
  </BatchItem>
</RequestMessage>"#;

fn batch_item(resp: &Ttlv) -> &Ttlv {
    assert_eq!(resp.tag, tag::RESPONSE_MESSAGE);
    resp.child(tag::BATCH_ITEM).expect("a batch item")
}

fn succeeded(resp: &Ttlv, operation: u32) -> &Ttlv {
    let item = batch_item(resp);
    assert_eq!(
        item.child(tag::OPERATION).and_then(Ttlv::as_enum),
        Some(operation)
    );
    assert_eq!(
        item.child(tag::RESULT_STATUS).and_then(Ttlv::as_enum),
        Some(result_status::SUCCESS),
        "{resp:?}"
    );
    item.child(tag::RESPONSE_PAYLOAD).expect("a payload")
}

#[test]
fn kmip_over_https_in_three_encodings() {
    let port = free_port();
    let server = ServerProcess::start(&["--https-listen", &format!("127.0.0.1:{port}")]);
    let limits = Limits::default();

    // XML: Query, answered in XML
    let (status, ctype, body) = server
        .https(
            port,
            "admin",
            "POST /kmip HTTP/1.1\r\nContent-Type: text/xml",
            XML_QUERY.as_bytes(),
        )
        .unwrap();
    assert_eq!((status, ctype.as_str()), (200, "text/xml"));
    let resp = kmip_codec::xml::from_xml(std::str::from_utf8(&body).unwrap(), &limits).unwrap();
    let ops: Vec<u32> = succeeded(&resp, op::QUERY)
        .children()
        .iter()
        .filter_map(Ttlv::as_enum)
        .collect();
    assert!(
        ops.contains(&op::CREATE) && ops.contains(&op::ENCRYPT),
        "{ops:?}"
    );

    // XML Create (1.4), then a JSON Get and a TTLV Get of the same key by the same identity
    let (_, _, body) = server
        .https(
            port,
            "admin",
            "POST /kmip HTTP/1.1\r\nContent-Type: text/xml",
            XML_CREATE.as_bytes(),
        )
        .unwrap();
    let resp = kmip_codec::xml::from_xml(std::str::from_utf8(&body).unwrap(), &limits).unwrap();
    let id = succeeded(&resp, op::CREATE)
        .child(tag::UNIQUE_IDENTIFIER)
        .and_then(Ttlv::as_text)
        .unwrap()
        .to_owned();
    let get_xml = XML_CREATE
        .replace(r#"value="Create""#, r#"value="Get""#)
        .replace(
            &XML_CREATE[XML_CREATE.find("<ObjectType").unwrap()
                ..XML_CREATE.find("</RequestPayload>").unwrap()],
            &format!(r#"<UniqueIdentifier type="TextString" value="{id}"/>"#),
        );
    let get = kmip_codec::xml::from_xml(&get_xml, &limits).unwrap();
    let json = kmip_codec::json::to_json(&get);
    let (status, ctype, body) = server
        .https(
            port,
            "admin",
            "POST /kmip HTTP/1.1\r\nContent-Type: application/json",
            json.as_bytes(),
        )
        .unwrap();
    assert_eq!((status, ctype.as_str()), (200, "application/json"));
    let resp = kmip_codec::json::from_json(std::str::from_utf8(&body).unwrap(), &limits).unwrap();
    let key_json = succeeded(&resp, op::GET)
        .child(tag::SYMMETRIC_KEY)
        .cloned()
        .unwrap();
    let (status, ctype, body) = server
        .https(
            port,
            "admin",
            "POST /kmip/2.1 HTTP/1.1\r\nContent-Type: application/octet-stream",
            &kmip_codec::encode(&get),
        )
        .unwrap();
    assert_eq!((status, ctype.as_str()), (200, "application/octet-stream"));
    let (resp, _) = kmip_codec::decode(&body, &limits).unwrap();
    assert_eq!(
        succeeded(&resp, op::GET).child(tag::SYMMETRIC_KEY),
        Some(&key_json)
    );

    // the same access rules: another identity does not find the key
    server.issue_client_cert("stranger");
    let (_, _, body) = server
        .https(
            port,
            "stranger",
            "POST /kmip HTTP/1.1\r\nContent-Type: application/json",
            json.as_bytes(),
        )
        .unwrap();
    let resp = kmip_codec::json::from_json(std::str::from_utf8(&body).unwrap(), &limits).unwrap();
    assert_eq!(
        batch_item(&resp)
            .child(tag::RESULT_STATUS)
            .and_then(Ttlv::as_enum),
        Some(result_status::OPERATION_FAILED)
    );
}

#[test]
fn what_is_not_a_kmip_post_gets_an_http_error() {
    let port = free_port();
    let server = ServerProcess::start(&["--https-listen", &format!("127.0.0.1:{port}")]);
    let cases: [(&str, &[u8], u16); 5] = [
        ("GET /kmip HTTP/1.1", b"", 405),
        (
            "POST /other HTTP/1.1\r\nContent-Type: text/xml",
            XML_QUERY.as_bytes(),
            404,
        ),
        (
            "POST /kmip HTTP/1.1\r\nContent-Type: image/png",
            b"\x89PNG",
            415,
        ),
        (
            "POST /kmip HTTP/1.1\r\nContent-Type: application/octet-stream",
            b"\x42\x00",
            400,
        ),
        (
            "POST /kmip HTTP/1.1\r\nContent-Type: text/xml",
            b"\xff\xfe not utf-8",
            400,
        ),
    ];
    for (head, body, want) in cases {
        let (status, _, _) = server.https(port, "admin", head, body).unwrap();
        assert_eq!(status, want, "{head}");
    }
    // malformed XML is still a KMIP answer: Invalid Message
    let (status, _, body) = server
        .https(
            port,
            "admin",
            "POST /kmip HTTP/1.1\r\nContent-Type: text/xml",
            b"<RequestMessage><Oops",
        )
        .unwrap();
    assert_eq!(status, 200);
    let resp =
        kmip_codec::xml::from_xml(std::str::from_utf8(&body).unwrap(), &Limits::default()).unwrap();
    assert_eq!(
        batch_item(&resp)
            .child(tag::RESULT_REASON)
            .and_then(Ttlv::as_enum),
        Some(kmip_codec::vocab::enums::result_reason::INVALID_MESSAGE)
    );
    // a body over the message size limit is refused before it is read
    let (status, _, _) = server
        .https(
            port,
            "admin",
            "POST /kmip HTTP/1.1\r\nContent-Type: text/xml\r\nContent-Length: 2097152",
            b"",
        )
        .unwrap();
    assert_eq!(status, 413);
    // and without a client certificate there is no answer at all
    use openssl::ssl::{SslConnector, SslMethod};
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(server.tls_dir().join("ca.pem")).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let refused = b.build().connect("localhost", tcp).and_then(|mut s| {
        use std::io::{Read, Write};
        let _ = s.write_all(b"POST /kmip HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        let mut out = [0u8; 16];
        match s.read(&mut out) {
            Ok(n) if n > 0 => Ok(()),
            _ => Err(openssl::ssl::HandshakeError::SetupFailure(
                openssl::error::ErrorStack::get(),
            )),
        }
    });
    assert!(refused.is_err(), "an unauthenticated client got an answer");
}
