"""dnsclient.py -- a raw DNS client for tests: builds queries byte by byte and parses answers strictly
(every compression pointer must point backwards inside the message)."""
import random, socket, struct

T = {"A": 1, "NS": 2, "SOA": 6, "HINFO": 13, "TXT": 16, "AAAA": 28, "SRV": 33, "OPT": 41, "IXFR": 251, "AXFR": 252, "ANY": 255, "CAA": 257}
TN = {v: k for k, v in T.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 9: "NOTAUTH", 16: "BADVERS"}


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(name, qtype="A", qid=None, edns=None, edns_version=0, opts=1, opcode=0, qdcount=1, rd=True, raw_qname=None):
    """edns: UDP payload size for an OPT record (None: no EDNS); opts: how many OPT records."""
    qid = random.randint(0, 65535) if qid is None else qid
    flags = (opcode << 11) | (0x0100 if rd else 0)
    ar = opts if edns else 0
    msg = struct.pack("!HHHHHH", qid, flags, qdcount, 0, 0, ar)
    qn = raw_qname if raw_qname is not None else encode_name(name)
    for _ in range(max(qdcount, 1) if qdcount else 0):
        msg += qn + struct.pack("!HH", T.get(qtype, qtype) if isinstance(qtype, str) else qtype, 1)
    for _ in range(ar):
        msg += b"\0" + struct.pack("!HHIH", 41, edns, edns_version << 16, 0)
    return msg


def read_name(msg, off):
    labels, jumps, end = [], 0, None
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            ptr = ((n & 0x3F) << 8) | msg[off + 1]
            if ptr >= off or jumps > 20:
                raise ValueError(f"bad compression pointer at {off} -> {ptr}")
            jumps += 1
            if end is None:
                end = off + 2
            off = ptr
            continue
        if n == 0:
            return ".".join(labels), (end if end is not None else off + 1)
        labels.append(msg[off + 1:off + 1 + n].decode("latin-1"))
        off += 1 + n


def parse(msg):
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
    r = {"id": qid, "qr": bool(flags & 0x8000), "aa": bool(flags & 0x400), "tc": bool(flags & 0x200),
         "rd": bool(flags & 0x100), "ra": bool(flags & 0x80), "rcode": flags & 0xF, "opcode": (flags >> 11) & 0xF,
         "qd": [], "an": [], "ns": [], "ar": [], "size": len(msg)}
    off = 12
    for _ in range(qd):
        name, off = read_name(msg, off)
        qt, qc = struct.unpack("!HH", msg[off:off + 4])
        off += 4
        r["qd"].append((name, TN.get(qt, qt)))
    for sec, cnt in (("an", an), ("ns", ns), ("ar", ar)):
        for _ in range(cnt):
            name, off = read_name(msg, off)
            typ, cls, ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
            off += 10
            rd = msg[off:off + rdlen]
            tn = TN.get(typ, typ)
            if tn == "A":
                data = socket.inet_ntop(socket.AF_INET, rd)
            elif tn == "AAAA":
                data = socket.inet_ntop(socket.AF_INET6, rd)
            elif tn == "SRV":
                prio, weight, port = struct.unpack("!HHH", rd[:6])
                data = (prio, weight, port, read_name(msg, off + 6)[0])
            elif tn in ("NS",):
                data = read_name(msg, off)[0]
            elif tn == "SOA":
                mname, o = read_name(msg, off)
                rname, o = read_name(msg, o)
                data = (mname, rname) + struct.unpack("!IIIII", msg[o:o + 20])
            elif tn == "TXT":
                data, i = [], 0
                while i < len(rd):
                    data.append(rd[i + 1:i + 1 + rd[i]].decode())
                    i += 1 + rd[i]
            elif tn == "OPT":
                data = {"udp": cls, "ext_rcode": ttl >> 24, "version": (ttl >> 16) & 0xFF}
                ttl = None
            else:
                data = rd
            off += rdlen
            r[sec].append((name, tn, ttl, data))
    r["full_rcode"] = r["rcode"] | (sum(x[3]["ext_rcode"] for x in r["ar"] if x[1] == "OPT") << 4)
    r["status"] = RCODES.get(r["full_rcode"], r["full_rcode"])
    return r


def udp(port, msg, src="127.0.0.1", timeout=2):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(timeout)
    s.sendto(msg, ("127.0.0.1", port))
    try:
        return s.recv(65535)
    except socket.timeout:
        return None
    finally:
        s.close()


def tcp(port, msgs, timeout=3):
    """Sends several length-prefixed queries on one connection (pipelined); returns the answers."""
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.sendall(b"".join(struct.pack("!H", len(m)) + m for m in msgs))
    out, buf = [], b""
    while len(out) < len(msgs):
        d = s.recv(65535)
        if not d:
            break
        buf += d
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack("!H", buf[:2])[0]:
            n = struct.unpack("!H", buf[:2])[0]
            out.append(buf[2:2 + n])
            buf = buf[2 + n:]
    s.close()
    return out
