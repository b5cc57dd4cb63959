#!/usr/bin/env python3
"""Checks a patchday audit log without patchday: python3 verify_audit.py KEY.pub CHECKPOINT_DIR
EXPORT.jsonl (from `patchday audit export`), or KEY.pub --proof PROOF.json (from `patchday audit
prove --seq N`). Needs the `cryptography` package. Prints `ok: ...` and exits 0, or names the first
problem and exits 1. The formats are those of README "Audit and evidence"."""
import base64, hashlib, json, os, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def sha(b): return hashlib.sha256(b).digest()
def node(left, right): return sha(b"\x01" + left + right)
def fail(msg): print("FAILED: " + msg); sys.exit(1)

def read_key(path):  # NAME+HEXID+base64(0x01 || 32-byte Ed25519 public key)
    name, key_id, key = open(path).read().strip().split("+", 2)
    raw = base64.b64decode(key)
    assert raw[0] == 1 and sha(name.encode() + b"\n" + raw)[:4].hex() == key_id, "bad verifier key"
    return name, bytes.fromhex(key_id), Ed25519PublicKey.from_public_bytes(raw[1:])

def open_note(note, key, what):  # C2SP signed note -> (origin, size, root, extensions)
    name, key_id, public = key
    text, _, signatures = note.rpartition("\n\n")
    for line in signatures.splitlines():
        signer, blob = line.removeprefix("\u2014 ").split(" ")
        blob = base64.b64decode(blob)
        if signer == name and blob[:4] == key_id:
            try: public.verify(blob[4:], (text + "\n").encode())
            except Exception: fail(f"signature: {what} is not signed by {name} (altered or forged)")
            origin, size, root, *ext = text.split("\n")
            return origin, int(size), base64.b64decode(root), dict(e.split(" ", 1) for e in ext)
    fail(f"signature: {what} has no signature by {name}")

def event_hash(e):  # SHA-256 of the canonical event (README: keys sorted, no whitespace)
    canon = [e["seq"], e["at"], e["actor"], e["action"], e["run_id"], e["step_id"], e["details"], e["prev_hash"]]
    return hashlib.sha256(json.dumps(canon, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()).hexdigest()

class Tree:  # RFC 6962 Merkle tree, appended one leaf at a time
    def __init__(self): self.size, self.peaks = 0, []
    def push(self, data):
        h, s = sha(b"\x00" + data), self.size
        while s & 1: h, s = node(self.peaks.pop(), h), s >> 1
        self.peaks.append(h); self.size += 1
    def root(self):
        r = self.peaks[-1] if self.peaks else sha(b"")
        for p in reversed(self.peaks[:-1]): r = node(p, r)
        return r

def verify_log(key, folder, export):
    checkpoints, prev = {}, None
    for i, f in enumerate(sorted(n for n in os.listdir(folder) if n.endswith(".checkpoint"))):
        note = open(os.path.join(folder, f)).read()
        origin, size, root, ext = open_note(note, key, f)
        if f != "%08d.checkpoint" % (i + 1) or ext.get("prev") != (prev and base64.b64encode(sha(prev.encode())).decode()):
            fail(f"checkpoint chain: {f} does not follow the file before it (removed, replaced or reordered)")
        if checkpoints.setdefault(size, (f, root))[1] != root: fail(f"fork: {checkpoints[size][0]} and {f} sign {size} events with different roots")
        prev = note
    tree, last = Tree(), "0" * 64
    for line in open(export):
        e = json.loads(line)
        if e["seq"] != tree.size + 1 or e["prev_hash"] != last or event_hash(e) != e["hash"]:
            fail(f"chain broken at seq {e['seq']}")
        tree.push(bytes.fromhex(e["hash"])); last = e["hash"]
        if tree.size in checkpoints and checkpoints[tree.size][1] != tree.root():
            fail(f"rewritten: the first {tree.size} events do not have the root {checkpoints[tree.size][0]} signed")
    beyond = [c for s, c in checkpoints.items() if s > tree.size]
    if beyond: fail(f"truncated: {beyond[0][0]} signs more events than the log's {tree.size}")
    print(f"ok: {tree.size} events, {len(checkpoints)} checkpoint size(s) match")

def verify_proof(key, proof):  # RFC 9162 2.1.3.2
    if proof.get("format") != "patchday-inclusion-proof/1": fail("only inclusion proofs are checked here")
    _, size, root, _ = open_note(proof["checkpoint"], key, "the proof's checkpoint")
    e = proof["event"]
    if event_hash(e) != e["hash"] or proof["tree_size"] != size: fail(f"proof: event {e['seq']} altered")
    fn, sn, r = e["seq"] - 1, size - 1, sha(b"\x00" + bytes.fromhex(e["hash"]))
    for p in map(base64.b64decode, proof["path"]):
        if sn == 0: fail("proof: too long")
        if fn & 1 or fn == sn:
            r = node(p, r)
            while fn and not fn & 1: fn, sn = fn >> 1, sn >> 1
        else: r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or r != root: fail("proof: the path does not lead to the signed root")
    print(f"ok: event {e['seq']} is in the signed log of {size} events")

if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[2] == "--proof": verify_proof(read_key(sys.argv[1]), json.load(open(sys.argv[3])))
    elif len(sys.argv) == 4: verify_log(read_key(sys.argv[1]), sys.argv[2], sys.argv[3])
    else: sys.exit(__doc__)
