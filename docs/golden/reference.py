#!/usr/bin/env python3
"""An independent implementation of docs/FORMAT.md §2–§3 and §5, written from the document alone.

Rebuilds every golden vector's preimage and hash from its event fields, every pseudonym and
commitment, and (§6) every Merkle root and proof of tree.json (RFC 6962 with SHA-256). Needs the `blake3` package (pip install blake3). Exit 0 when all match.
Run: python3 docs/golden/reference.py
"""
import json, struct, sys, uuid, datetime, os
import blake3

CONTEXT = "kvitto 2026-11-23 event hash v1"
ENUMS = {
    "legal_basis": ["consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interests"],
    "role": ["processor", "sub_processor", "recipient", "joint_controller"],
    "transfer_mechanism": ["adequacy", "scc", "bcr", "derogation"],
    "source": ["subject", "controller", "third_party"],
    "right": ["access", "rectification", "erasure", "restriction", "portability", "objection"],
    "trigger": ["collected", "record_closed", "relationship_ended"],
    "extend_to": ["calendar_year_end"],
}
# code, type, [(field, type)]; "?" suffix = opt<>
KINDS = {
    "purpose_declared": (1, [("purpose", "str"), ("description", "str"), ("legal_basis", "enum"), ("register", "str")]),
    "processor_registered": (2, [("processor", "str"), ("name", "str"), ("country", "country"), ("role", "enum"), ("transfer_mechanism", "enum?"), ("dpa_ref", "str?")]),
    "retention_rule_declared": (3, [("register", "str"), ("trigger", "enum"), ("duration", "period"), ("statute", "str?")]),
    "notice_published": (4, [("version", "str"), ("text_hash", "hex32")]),
    "controller_declared": (6, [("legal_name", "str"), ("organisation_number", "str?"), ("address", "str?"), ("contact", "str?"), ("dpo_contact", "str?"), ("authority", "str"), ("authority_country", "country")]),
    "consent_given": (16, [("purpose", "str"), ("notice_version", "str?"), ("channel", "str?")]),
    "consent_withdrawn": (17, [("purpose", "str"), ("channel", "str?")]),
    "objection_recorded": (18, [("purpose", "str")]),
    "data_collected": (19, [("register", "str"), ("categories", "list"), ("purpose", "str"), ("legal_basis", "enum"), ("source", "enum")]),
    "data_shared": (20, [("processor", "str"), ("categories", "list"), ("purpose", "str")]),
    "data_rectified": (21, [("register", "str"), ("categories", "list")]),
    "processing_restricted": (22, [("reason", "str")]),
    "restriction_lifted": (23, [("reason", "str")]),
    "record_closed": (24, [("register", "str"), ("record_id", "str")]),
    "relationship_ended": (25, [("reason", "str?")]),
    "rights_request_received": (26, [("request_id", "str"), ("right", "enum")]),
    "rights_request_extended": (27, [("request_id", "str"), ("reason", "str")]),
    "rights_request_fulfilled": (28, [("request_id", "str")]),
    "rights_request_rejected": (29, [("request_id", "str"), ("reason", "str")]),
    "legal_hold_placed": (30, [("hold_id", "str"), ("reason", "str")]),
    "legal_hold_released": (31, [("hold_id", "str")]),
    "erasure_deferred": (32, [("register", "str"), ("statute", "str"), ("until", "time")]),
    "data_erased": (33, [("register", "str?"), ("reason", "str")]),
    "subject_map_committed": (34, [("tree_size", "u64"), ("subjects", "u64"), ("map_root", "hex32")]),
}
# Extended layouts (§2.3): written under the extended code, with the trailing optional fields,
# exactly when one of those fields is present; otherwise the base layout above, unchanged.
EXTENDED = {
    "retention_rule_declared": (5, [("financial_year_end", "monthday?"), ("extend_to", "enum?")]),
    "purpose_declared": (7, [("data_subjects", "list?")]),
}

def s(x): b = x.encode(); return struct.pack(">I", len(b)) + b
def t(x):
    dt = datetime.datetime.fromisoformat(x.replace("Z", "+00:00"))
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    d = dt - epoch
    return struct.pack(">q", (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds)
def period(p):
    import re
    m = re.fullmatch(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", p)
    return b"".join(struct.pack(">I", int(g or 0)) for g in m.groups())

def field(name, typ, v):
    opt = typ.endswith("?")
    typ = typ.rstrip("?")
    if opt:
        if v is None: return b"\x00"
        return b"\x01" + field(name, typ, v)
    if typ == "str": return s(v)
    if typ == "enum": return bytes([ENUMS[name].index(v) + 1])
    if typ == "country": return v.encode("ascii")
    if typ == "period": return period(v)
    if typ == "hex32": return bytes.fromhex(v)
    if typ == "u64": return struct.pack(">Q", v)
    if typ == "time": return t(v)
    if typ == "monthday":
        mm, dd = v.split("-")
        return bytes([int(mm), int(dd)])
    if typ == "list": return struct.pack(">I", len(v)) + b"".join(s(c) for c in v)
    raise ValueError(typ)

def preimage(e):
    out = b"\x01" + struct.pack(">Q", e["seq"]) + bytes.fromhex(e["prev_hash"])
    out += t(e["recorded_at"]) + t(e["occurred_at"]) + uuid.UUID(e["event_id"]).bytes
    out += s(e["controller"]) + s(e["actor"])
    if "subject_id" in e:
        out += b"\x01" + bytes.fromhex(e["subject_id"]) + struct.pack(">Q", e["subject_seq"])
        out += (b"\x01" + bytes.fromhex(e["subject_prev"])) if "subject_prev" in e else b"\x00"
    else:
        out += b"\x00"
    code, fields = KINDS[e["type"]]
    if e["type"] in EXTENDED:
        xcode, xfields = EXTENDED[e["type"]]
        if any(e.get(name) is not None for name, _ in xfields):
            code, fields = xcode, fields + xfields
    out += struct.pack(">H", code)
    for name, typ in fields:
        out += field(name, typ, e.get(name))
    pc = e.get("payload_commitment")
    out += (b"\x01" + bytes.fromhex(pc)) if pc else b"\x00"
    return out

here = os.path.dirname(os.path.abspath(__file__))
failures = 0
events = json.load(open(os.path.join(here, "events.json")))
assert events["context"] == CONTEXT
for v in events["vectors"]:
    pre = preimage(v["event"])
    h = blake3.blake3(pre, derive_key_context=CONTEXT).hexdigest()
    ok = pre.hex() == v["preimage_hex"] and h == v["hash_hex"]
    failures += not ok
    print(("ok  " if ok else "FAIL"), v["name"])
ps = json.load(open(os.path.join(here, "pseudonyms.json")))
for v in ps["subject_ids"]:
    c = v["controller"].encode()
    got = blake3.blake3(struct.pack(">I", len(c)) + c + v["external_ref"].encode(), key=bytes.fromhex(v["secret_hex"])).digest()[:16].hex()
    ok = got == v["subject_id_hex"]; failures += not ok
    print(("ok  " if ok else "FAIL"), "subject_id", v["controller"])
for v in ps["commitments"]:
    got = blake3.blake3(bytes.fromhex(v["salt_hex"]) + v["plaintext"].encode()).hexdigest()
    ok = got == v["commitment_hex"]; failures += not ok
    print(("ok  " if ok else "FAIL"), "commitment")
# §5 vault segment v3: frame key derived from the secret, keyed BLAKE3 tags over frame bodies;
# erasure zeroes a frame's body and tag in place and keeps its length.
vv = json.load(open(os.path.join(here, "vault.json")))
vsecret = bytes.fromhex(vv["secret_hex"])
fk = blake3.blake3(vsecret, derive_key_context=vv["frame_key_context"]).digest()
ok = fk.hex() == vv["frame_key_hex"]; failures += not ok
print(("ok  " if ok else "FAIL"), "vault frame key")
segment = b"KVV1" + bytes([3])
first_frame = None
for f in vv["frames"]:
    c = f["controller"].encode()
    subject = blake3.blake3(struct.pack(">I", len(c)) + c + f["external_ref"].encode(), key=vsecret).digest()[:16]
    body = subject + s(f["controller"]) + s(f["external_ref"]) + struct.pack(">H", len(f["slots"]))
    body += b"".join(s(sl["register"]) + bytes.fromhex(sl["key_hex"]) for sl in f["slots"])
    frame = struct.pack(">I", len(body)) + body + blake3.blake3(body, key=fk).digest()[:16]
    ok = subject.hex() == f["subject_id_hex"] and frame.hex() == f["frame_hex"]; failures += not ok
    print(("ok  " if ok else "FAIL"), "vault frame", f["external_ref"])
    if first_frame is None:
        first_frame = (len(segment), len(body))
    segment += frame
ok = segment.hex() == vv["segment_hex"]; failures += not ok
print(("ok  " if ok else "FAIL"), "vault segment")
at, blen = first_frame
erased = segment[:at + 4] + bytes(blen + 16) + segment[at + 4 + blen + 16:]
ok = erased.hex() == vv["segment_after_erasing_first_hex"]; failures += not ok
print(("ok  " if ok else "FAIL"), "vault segment after erasing the first subject")
# §6 tree v2: RFC 6962 §2.1 MTH / PATH / PROOF with SHA-256, leaf data = the event hashes above.
import hashlib
def sha(b): return hashlib.sha256(b).digest()
def k_split(n):
    k = 1
    while k * 2 < n: k *= 2
    return k
def mth(d):
    if not d: return sha(b"")
    if len(d) == 1: return sha(b"\x00" + d[0])
    k = k_split(len(d)); return sha(b"\x01" + mth(d[:k]) + mth(d[k:]))
def path(m, d):
    if len(d) <= 1: return []
    k = k_split(len(d))
    return path(m, d[:k]) + [mth(d[k:])] if m < k else path(m - k, d[k:]) + [mth(d[:k])]
def subproof(m, d, b):
    n = len(d)
    if m == n: return [] if b else [mth(d)]
    k = k_split(n)
    return subproof(m, d[:k], b) + [mth(d[k:])] if m <= k else subproof(m - k, d[k:], False) + [mth(d[:k])]
tree = json.load(open(os.path.join(here, "tree.json")))
leaves = [bytes.fromhex(v["hash_hex"]) for v in json.load(open(os.path.join(here, "events.json")))["vectors"]]
for r in tree["roots"]:
    ok = mth(leaves[:r["size"]]).hex() == r["root"]; failures += not ok
    print(("ok  " if ok else "FAIL"), "tree root", r["size"])
bad = [p for p in tree["inclusion"] if [h.hex() for h in path(p["index"], leaves[:p["size"]])] != p["proof"]]
bad += [p for p in tree["consistency"] if [h.hex() for h in (subproof(p["size1"], leaves[:p["size2"]], True) if p["size1"] < p["size2"] else [])] != p["proof"]]
failures += len(bad)
print(("ok  " if not bad else "FAIL"), len(tree["inclusion"]), "inclusion and", len(tree["consistency"]), "consistency proofs", bad[:1])
# §7 subject map: root of the entries from the definition, and each proof walked back up.
def bit(k, d): return (k[d // 8] >> (7 - d % 8)) & 1
def mleaf(k, c, h): return sha(b"\x02" + k + struct.pack(">Q", c) + h)
def mroot(es, d=0):
    if not es: return bytes(32)
    if len(es) == 1: return mleaf(*es[0])
    return sha(b"\x03" + mroot([e for e in es if not bit(e[0], d)], d + 1) + mroot([e for e in es if bit(e[0], d)], d + 1))
mp = json.load(open(os.path.join(here, "map.json")))
es = [(bytes.fromhex(e["key"]), e["count"], bytes.fromhex(e["head"])) for e in mp["entries"]]
ok = mroot(es).hex() == mp["root"] and mroot([]).hex() == mp["empty_root"]; failures += not ok
print(("ok  " if ok else "FAIL"), "map root")
for p in mp["proofs"]:
    k, t = bytes.fromhex(p["key"]), p["terminal"]
    h = bytes(32) if t == "empty" else mleaf(bytes.fromhex(t["key"]), t["count"], bytes.fromhex(t["head"]))
    for d in reversed(range(len(p["siblings"]))):
        s_ = bytes.fromhex(p["siblings"][d])
        h = sha(b"\x03" + (s_ + h if bit(k, d) else h + s_))
    present = t != "empty" and t["key"] == p["key"]
    ok = h.hex() == mp["root"] and present == p["present"] and any(e[0] == k for e in es) == present; failures += not ok
    print(("ok  " if ok else "FAIL"), "map proof", p["key"][:8], "present" if present else "absent")
sys.exit(1 if failures else 0)
