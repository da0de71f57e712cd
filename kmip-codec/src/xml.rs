//! The KMIP XML encoding, as the OASIS test cases write it:
//! `<UniqueIdentifier type="TextString" value="..."/>`, Structures as elements with children
//! and no type, enumerations and masks by name, byte strings in hex. A tag the vocabulary does
//! not know is written `<TTLV tag="0x540001" type="..." value="..."/>`.

use crate::text::{self, TextError};
use crate::ttlv::{ItemType, Limits, Tag, Ttlv, Value};
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Parse exactly one KMIP XML element.
pub fn from_xml(s: &str, limits: &Limits) -> Result<Ttlv, TextError> {
    let mut all = parse(s, limits, false)?;
    if all.len() != 1 {
        return Err(TextError::Xml(format!(
            "expected one element, found {}",
            all.len()
        )));
    }
    Ok(all.remove(0))
}

/// Parse a document of several messages wrapped in `<KMIP>` (the test-case files), or one
/// message.
pub fn from_xml_document(s: &str, limits: &Limits) -> Result<Vec<Ttlv>, TextError> {
    parse(s, limits, true)
}

struct Frame {
    tag: Tag,
    children: Vec<Ttlv>,
}

fn xml_err(e: impl std::fmt::Display) -> TextError {
    TextError::Xml(e.to_string())
}

fn parse(s: &str, limits: &Limits, allow_wrapper: bool) -> Result<Vec<Ttlv>, TextError> {
    let mut reader = Reader::from_str(s);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Frame> = Vec::new();
    let mut top: Vec<Ttlv> = Vec::new();
    let mut wrapped = false;
    let mut items = 0usize;
    loop {
        let ev = reader.read_event().map_err(xml_err)?;
        match ev {
            Event::Start(e)
                if allow_wrapper
                    && stack.is_empty()
                    && !wrapped
                    && e.name().as_ref() == b"KMIP" =>
            {
                wrapped = true;
            }
            Event::Empty(e)
                if allow_wrapper && stack.is_empty() && e.name().as_ref() == b"KMIP" => {}
            Event::Start(e) => {
                items += 1;
                check(items, stack.len() + 1, limits)?;
                let (tag, ty, value) = head(&e)?;
                match ty {
                    None | Some(ItemType::Structure) => stack.push(Frame {
                        tag,
                        children: Vec::new(),
                    }),
                    Some(ty) => {
                        // a scalar written with an end tag: take it, then require the end
                        let item = scalar(tag, ty, value, &stack)?;
                        match reader.read_event().map_err(xml_err)? {
                            Event::End(_) => push(&mut stack, &mut top, item),
                            other => {
                                return Err(TextError::Xml(format!(
                                    "unexpected content in scalar element: {other:?}"
                                )))
                            }
                        }
                    }
                }
            }
            Event::Empty(e) => {
                items += 1;
                check(items, stack.len() + 1, limits)?;
                let (tag, ty, value) = head(&e)?;
                let item = match ty {
                    None | Some(ItemType::Structure) => Ttlv::structure(tag, Vec::new()),
                    Some(ty) => scalar(tag, ty, value, &stack)?,
                };
                push(&mut stack, &mut top, item);
            }
            Event::End(e) => match stack.pop() {
                Some(f) => push(&mut stack, &mut top, Ttlv::structure(f.tag, f.children)),
                None if wrapped && e.name().as_ref() == b"KMIP" => wrapped = false,
                None => return Err(TextError::Xml("unbalanced end tag".into())),
            },
            Event::Text(t) if !t.as_ref().iter().all(u8::is_ascii_whitespace) => {
                return Err(TextError::Xml(
                    "text content is not part of KMIP XML".into(),
                ));
            }
            Event::Eof => break,
            // comments, declarations, processing instructions carry no KMIP data
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(TextError::Xml("unexpected end of document".into()));
    }
    Ok(top)
}

fn check(items: usize, depth: usize, limits: &Limits) -> Result<(), TextError> {
    if items > limits.max_items {
        return Err(TextError::TooManyItems(limits.max_items));
    }
    if depth > limits.max_depth {
        return Err(TextError::TooDeep(limits.max_depth));
    }
    Ok(())
}

fn push(stack: &mut [Frame], top: &mut Vec<Ttlv>, item: Ttlv) {
    match stack.last_mut() {
        Some(f) => f.children.push(item),
        None => top.push(item),
    }
}

fn head(e: &BytesStart<'_>) -> Result<(Tag, Option<ItemType>, Option<String>), TextError> {
    let name = std::str::from_utf8(e.name().as_ref())
        .map_err(xml_err)?
        .to_owned();
    let mut ty = None;
    let mut value = None;
    let mut tag_attr = None;
    for a in e.attributes() {
        let a = a.map_err(xml_err)?;
        let v = a.unescape_value().map_err(xml_err)?.into_owned();
        match a.key.as_ref() {
            b"type" => ty = Some(ItemType::from_xml_name(&v).ok_or(TextError::UnknownType(v))?),
            b"value" => value = Some(v),
            b"tag" => tag_attr = Some(v),
            _ => {}
        }
    }
    let tag = match (name.as_str(), tag_attr) {
        ("TTLV", Some(t)) => text::parse_tag(&t)?,
        _ => text::parse_tag(&name)?,
    };
    Ok((tag, ty, value))
}

fn scalar(
    tag: Tag,
    ty: ItemType,
    value: Option<String>,
    stack: &[Frame],
) -> Result<Ttlv, TextError> {
    let value = value.ok_or_else(|| TextError::MissingValue(text::tag_name(tag)))?;
    let siblings = stack.last().map(|f| f.children.as_slice()).unwrap_or(&[]);
    let names = text::names(tag, text::attribute_name_among(siblings));
    Ok(Ttlv::new(tag, text::parse_scalar(tag, ty, &value, names)?))
}

/// Render one item as indented KMIP XML.
pub fn to_xml(item: &Ttlv) -> String {
    let mut out = String::new();
    write(item, &[], 0, &mut out);
    out
}

fn write(item: &Ttlv, siblings: &[Ttlv], depth: usize, out: &mut String) {
    for _ in 0..depth {
        out.push_str("  ");
    }
    let (open, close) = match item.tag.xml_name() {
        Some(n) => (n.to_owned(), n.to_owned()),
        None => (
            format!("TTLV tag=\"0x{:06X}\"", item.tag.0),
            "TTLV".to_owned(),
        ),
    };
    match &item.value {
        Value::Structure(children) if children.is_empty() => {
            out.push_str(&format!("<{open}/>\n"));
        }
        Value::Structure(children) => {
            out.push_str(&format!("<{open}>\n"));
            // an Attribute Value is named by an Attribute Name that precedes it, as the parser
            // reads them
            for (i, c) in children.iter().enumerate() {
                write(c, &children[..i], depth + 1, out);
            }
            for _ in 0..depth {
                out.push_str("  ");
            }
            out.push_str(&format!("</{close}>\n"));
        }
        v => {
            let names = text::names(item.tag, text::attribute_name_among(siblings));
            let s = text::format_scalar(v, names);
            out.push_str(&format!(
                "<{open} type=\"{}\" value=\"{}\"/>\n",
                v.item_type().xml_name(),
                quick_xml::escape::escape(&s)
            ));
        }
    }
}
