use super::*;
use proptest::prelude::*;

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '|')
        .collect();
    crate::text::unhex(&s).expect("hex")
}

fn item(v: Value) -> Ttlv {
    Ttlv::new(Tag(0x420020), v)
}

/// The encoding examples of KMIP 1.4 section 9.1.2.
#[test]
fn specification_examples() {
    let cases = [
        (item(Value::Integer(8)), "420020 | 02 | 00000004 | 00000008 00000000"),
        (item(Value::LongInteger(123_456_789_000_000_000)), "420020 | 03 | 00000008 | 01B69B4BA5749200"),
        (
            item(Value::BigInteger(unhex("0000000003FD35EB6BC2DF4618080000"))),
            "420020 | 04 | 00000010 | 0000000003FD35EB6BC2DF4618080000",
        ),
        (item(Value::Enumeration(255)), "420020 | 05 | 00000004 | 000000FF 00000000"),
        (item(Value::Boolean(true)), "420020 | 06 | 00000008 | 0000000000000001"),
        (
            item(Value::TextString("Hello World".into())),
            "420020 | 07 | 0000000B | 48656C6C6F20576F726C640000000000",
        ),
        (item(Value::ByteString(vec![1, 2, 3])), "420020 | 08 | 00000003 | 0102030000000000"),
        (item(Value::DateTime(0x47DA67F8)), "420020 | 09 | 00000008 | 0000000047DA67F8"),
        (item(Value::Interval(864_000)), "420020 | 0A | 00000004 | 000D2F00 00000000"),
        (
            item(Value::Structure(vec![
                Ttlv::new(Tag(0x420004), Value::Enumeration(254)),
                Ttlv::new(Tag(0x420005), Value::Integer(255)),
            ])),
            "420020 | 01 | 00000020 | 420004 | 05 | 00000004 | 000000FE 00000000 | 420005 | 02 | 00000004 | 000000FF 00000000",
        ),
    ];
    for (tree, wire) in cases {
        let bytes = unhex(wire);
        assert_eq!(encode(&tree), bytes, "{tree:?}");
        assert_eq!(
            decode(&bytes, &Limits::default()).unwrap(),
            (tree, bytes.len())
        );
    }
}

fn invalid(bytes: &[u8]) -> (usize, InvalidKind) {
    match decode(bytes, &Limits::default()) {
        Err(DecodeError::Invalid { offset, kind }) => (offset, kind),
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[test]
fn strictness() {
    // length disagrees with the type
    let (o, k) = invalid(&unhex("420020 02 00000008 0000000800000000"));
    assert_eq!(
        (o, k),
        (
            4,
            InvalidKind::BadLength {
                item_type: ItemType::Integer,
                length: 8
            }
        )
    );
    // non-zero padding
    let (o, k) = invalid(&unhex("420020 02 00000004 00000008 00000001"));
    assert_eq!((o, k), (12, InvalidKind::NonZeroPadding));
    // invalid UTF-8 at the third byte of the string
    let (o, k) = invalid(&unhex("420020 07 00000003 6162FF0000000000"));
    assert_eq!((o, k), (10, InvalidKind::InvalidUtf8));
    // a boolean of 2
    let (o, k) = invalid(&unhex("420020 06 00000008 0000000000000002"));
    assert_eq!((o, k), (8, InvalidKind::BadBoolean(2)));
    // unknown type byte
    assert_eq!(
        invalid(&unhex("420020 0C 00000000")).1,
        InvalidKind::UnknownType(0x0C)
    );
    // a tag outside 0x42xxxx and 0x54xxxx
    assert_eq!(
        invalid(&unhex("430020 02 00000004 0000000800000000")).1,
        InvalidKind::BadTag(0x430020)
    );
    // a child longer than its structure
    let (o, k) = invalid(&unhex(
        "420020 01 00000010 420004 08 00000010 0000000000000000",
    ));
    assert_eq!(o, 12);
    assert!(matches!(k, InvalidKind::Overrun { .. }), "{k:?}");
    // a structure whose length is not a multiple of eight
    assert!(matches!(
        invalid(&unhex("420020 01 00000004 00000000 00000000")).1,
        InvalidKind::BadLength { .. }
    ));
}

#[test]
fn partial_input_asks_for_more() {
    let full = encode(&item(Value::TextString("Hello World".into())));
    for cut in 0..full.len() {
        let needed = match decode(&full[..cut], &Limits::default()) {
            Err(DecodeError::Incomplete { needed }) => needed,
            other => panic!("cut at {cut}: {other:?}"),
        };
        if cut < 8 {
            assert_eq!(needed, 8 - cut);
        } else {
            assert_eq!(needed, full.len() - cut);
        }
    }
    // trailing bytes belong to the next message
    let mut two = full.clone();
    two.extend_from_slice(&full);
    assert_eq!(decode(&two, &Limits::default()).unwrap().1, full.len());
}

#[test]
fn limits_are_checked_before_allocation() {
    let limits = Limits {
        max_message_bytes: 256,
        max_depth: 3,
        max_items: 4,
    };
    // a 4 GiB length is refused from the header alone
    let huge = unhex("420020 08 FFFFFFFF");
    assert!(matches!(
        decode(&huge, &limits),
        Err(DecodeError::Invalid {
            kind: InvalidKind::TooLarge(_),
            ..
        })
    ));
    assert!(matches!(
        frame_length(&huge, &Limits::default()),
        Err(DecodeError::Invalid { .. })
    ));
    let nest = |depth: usize| {
        let mut t = item(Value::Integer(1));
        for _ in 0..depth {
            t = item(Value::Structure(vec![t]));
        }
        encode(&t)
    };
    assert!(decode(&nest(2), &limits).is_ok());
    assert!(matches!(
        decode(&nest(3), &limits),
        Err(DecodeError::Invalid {
            kind: InvalidKind::TooDeep(3),
            ..
        })
    ));
    let wide = encode(&item(Value::Structure(vec![item(Value::Integer(1)); 4])));
    assert!(matches!(
        decode(&wide, &limits),
        Err(DecodeError::Invalid {
            kind: InvalidKind::TooManyItems(4),
            ..
        })
    ));
}

#[test]
fn vendor_tags_and_values_survive() {
    let t = Ttlv::structure(
        Tag(0x540001),
        vec![
            Ttlv::new(Tag(0x54FFFF), Value::Enumeration(0x8000_0001)),
            Ttlv::new(
                crate::vocab::tag::OBJECT_TYPE,
                Value::Enumeration(0x8000_0002),
            ),
        ],
    );
    let bytes = encode(&t);
    assert_eq!(decode(&bytes, &Limits::default()).unwrap().0, t);
    let x = crate::xml::to_xml(&t);
    assert!(x.contains("tag=\"0x54FFFF\""), "{x}");
    assert!(x.contains("value=\"0x80000002\""), "{x}");
    assert_eq!(crate::xml::from_xml(&x, &Limits::default()).unwrap(), t);
    let j = crate::json::to_json(&t);
    assert_eq!(crate::json::from_json(&j, &Limits::default()).unwrap(), t);
}

#[test]
fn debug_never_prints_byte_strings() {
    let secret = item(Value::ByteString(b"top secret key!!".to_vec()));
    let s = format!("{secret:?}");
    assert!(!s.contains("top secret") && !s.contains("746f70"), "{s}");
}

fn arb_tag() -> impl Strategy<Value = Tag> {
    prop_oneof![
        (0x420001u32..0x420160).prop_map(Tag),
        (0x540000u32..0x540010).prop_map(Tag),
    ]
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i32>().prop_map(Value::Integer),
        any::<i64>().prop_map(Value::LongInteger),
        proptest::collection::vec(any::<u8>(), 1..3)
            .prop_map(|n| Value::BigInteger(crate::text::sign_extend(n))),
        any::<u32>().prop_map(Value::Enumeration),
        any::<bool>().prop_map(Value::Boolean),
        ".{0,20}".prop_map(Value::TextString),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::ByteString),
        any::<i64>().prop_map(Value::DateTime),
        any::<u32>().prop_map(Value::Interval),
        any::<i64>().prop_map(Value::DateTimeExtended),
    ]
}

fn arb_tree() -> impl Strategy<Value = Ttlv> {
    let leaf = (arb_tag(), arb_scalar()).prop_map(|(t, v)| Ttlv::new(t, v));
    leaf.prop_recursive(6, 64, 8, |inner| {
        (arb_tag(), proptest::collection::vec(inner, 0..8)).prop_map(|(t, c)| Ttlv::structure(t, c))
    })
}

proptest! {
    #[test]
    fn arbitrary_trees_round_trip(t in arb_tree()) {
        let bytes = encode(&t);
        prop_assert_eq!(bytes.len(), encoded_len(&t));
        prop_assert_eq!(bytes.len() % 8, 0);
        let (back, used) = decode(&bytes, &Limits::default()).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(&back, &t);
    }

    #[test]
    fn arbitrary_trees_round_trip_through_text(t in arb_tree()) {
        // DateTime values outside years 0..9999 have no ISO 8601 text form of four-digit years
        fn dates_in_range(t: &Ttlv) -> bool {
            match &t.value {
                Value::DateTime(s) => (-62_167_219_200..253_402_300_800).contains(s),
                Value::DateTimeExtended(m) => (-62_167_219_200_000_000..253_402_300_800_000_000).contains(m),
                Value::Structure(c) => c.iter().all(dates_in_range),
                _ => true,
            }
        }
        prop_assume!(dates_in_range(&t));
        let x = crate::xml::to_xml(&t);
        prop_assert_eq!(&crate::xml::from_xml(&x, &Limits::default()).unwrap(), &t);
        let j = crate::json::to_json(&t);
        prop_assert_eq!(&crate::json::from_json(&j, &Limits::default()).unwrap(), &t);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes, &Limits::default());
    }
}

/// Found by kmip-fuzz: an Attribute Value before its Attribute Name rendered by name, which the
/// parser (reading in order) could not take back.
#[test]
fn attribute_value_before_its_name_round_trips() {
    use crate::vocab::tag;
    let t = Ttlv::structure(
        tag::ATTRIBUTE,
        vec![
            Ttlv::new(tag::ATTRIBUTE_VALUE, Value::Integer(0x100)),
            Ttlv::new(
                tag::ATTRIBUTE_NAME,
                Value::TextString("Cryptographic Usage Mask".into()),
            ),
            Ttlv::new(tag::ATTRIBUTE_VALUE, Value::Integer(0x10)),
        ],
    );
    let x = crate::xml::to_xml(&t);
    assert!(
        x.contains("value=\"256\"") && x.contains("value=\"WrapKey\""),
        "{x}"
    );
    assert_eq!(crate::xml::from_xml(&x, &Limits::default()).unwrap(), t);
    let j = crate::json::to_json(&t);
    assert_eq!(crate::json::from_json(&j, &Limits::default()).unwrap(), t);
}
