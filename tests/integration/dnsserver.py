"""dnsserver.py -- a tiny authoritative DNS server (UDP) for tests: A, AAAA and SRV from a mutable dict.

records: {name_lower: [(type, ttl, value)]} with value "1.2.3.4" for A, "::1" for AAAA,
(priority, weight, port, target) for SRV. SRV answers carry the targets' A records as glue
unless glue=False. Unknown names: NXDOMAIN.
"""
import socket, struct, threading

TYPES = {"A": 1, "AAAA": 28, "SRV": 33}


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def decode_name(pkt, off):
    labels = []
    while True:
        n = pkt[off]
        if n == 0:
            return ".".join(labels), off + 1
        labels.append(pkt[off + 1:off + 1 + n].decode())
        off += 1 + n


class DnsServer:
    def __init__(self, records=None, glue=True):
        self.records = records or {}
        self.glue = glue
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.serve, daemon=True).start()

    def rr(self, name, typ, ttl, value):
        if typ == "A":
            rdata = socket.inet_pton(socket.AF_INET, value)
        elif typ == "AAAA":
            rdata = socket.inet_pton(socket.AF_INET6, value)
        else:
            prio, weight, port, target = value
            rdata = struct.pack("!HHH", prio, weight, port) + encode_name(target)
        return encode_name(name) + struct.pack("!HHIH", TYPES[typ], 1, ttl, len(rdata)) + rdata

    def answer(self, pkt):
        qid, flags = struct.unpack("!HH", pkt[:4])
        qname, off = decode_name(pkt, 12)
        qtype, _ = struct.unpack("!HH", pkt[off:off + 4])
        question = pkt[12:off + 4]
        recs = self.records.get(qname.lower())
        an, ar = [], []
        if recs is not None:
            for typ, ttl, value in recs:
                if TYPES[typ] == qtype:
                    an.append(self.rr(qname, typ, ttl, value))
                    if typ == "SRV" and self.glue:
                        for t2, ttl2, v2 in self.records.get(value[3].lower(), []):
                            if t2 in ("A", "AAAA"):
                                ar.append(self.rr(value[3], t2, ttl2, v2))
        rcode = 3 if recs is None else 0
        hdr = struct.pack("!HHHHHH", qid, 0x8400 | rcode, 1, len(an), 0, len(ar))
        return hdr + question + b"".join(an) + b"".join(ar)

    def serve(self):
        while True:
            try:
                pkt, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            self.queries += 1
            try:
                self.sock.sendto(self.answer(pkt), peer)
            except Exception:
                pass

    def close(self):
        self.sock.close()
