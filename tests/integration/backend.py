#!/usr/bin/env python3
"""backend.py -- a test target for berth's integration tests.

Speaks HTTP/1.1 with keep-alive. Endpoints:
  GET  /                 200, body = --name
  GET  /health           200, or 503 after POST /_health?ok=0
  POST /_health?ok=0|1   flips /health
  GET  /slow?ms=N        answers after N ms
  GET  /download?bytes=N[&chunked=1]  N bytes of a fixed pattern
  POST /upload           reads the body (Content-Length or chunked), answers "<len> <sha256>"
  GET  /echo             body = the request head as received
  GET  /ws               101 Switching Protocols, then echoes bytes
Every request head line is appended to --log (one line per request). With --tls-cert/--tls-key it
speaks HTTPS.
"""
import argparse, asyncio, hashlib, signal, ssl, sys

PATTERN = bytes(range(256)) * 256  # 64 KiB


def pattern_bytes(n):
    full, rest = divmod(n, len(PATTERN))
    for _ in range(full):
        yield PATTERN
    if rest:
        yield PATTERN[:rest]


class State:
    healthy = True


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = []
    for l in lines[1:]:
        if l:
            k, v = l.split(":", 1)
            headers.append((k.strip().lower(), v.strip()))
    return head, method, target, headers


async def read_body(reader, headers, sink):
    h = dict(headers)
    if "chunked" in h.get("transfer-encoding", ""):
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return
            left = size
            while left:
                d = await reader.read(min(left, 65536))
                if not d:
                    raise ConnectionError("eof in chunk")
                sink(d)
                left -= len(d)
            await reader.readexactly(2)
    n = int(h.get("content-length", "0"))
    while n:
        d = await reader.read(min(n, 65536))
        if not d:
            raise ConnectionError("eof in body")
        sink(d)
        n -= len(d)


def respond(writer, status, body=b"", extra=""):
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable", 101: "Switching Protocols"}.get(status, "X")
    writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body)


async def handle(reader, writer, args, log):
    try:
        while True:
            head, method, target, headers = await read_head(reader)
            if log:
                log.write(head.split(b"\r\n", 1)[0].decode("latin-1") + "\n")
                log.flush()
            path, _, query = target.partition("?")
            q = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            if path == "/upload":
                hasher, total = hashlib.sha256(), [0]
                def sink(d):
                    hasher.update(d)
                    total[0] += len(d)
                if dict(headers).get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await read_body(reader, headers, sink)
                respond(writer, 200, f"{total[0]} {hasher.hexdigest()}".encode())
            else:
                await read_body(reader, headers, lambda d: None)
                if path == "/health":
                    respond(writer, 200 if State.healthy else 503, b"ok" if State.healthy else b"sick")
                elif path == "/_health":
                    State.healthy = q.get("ok", "1") == "1"
                    respond(writer, 200, b"set")
                elif path == "/slow":
                    await asyncio.sleep(int(q.get("ms", "1000")) / 1000)
                    respond(writer, 200, args.name.encode())
                elif path == "/download":
                    n = int(q.get("bytes", "0"))
                    if q.get("chunked") == "1":
                        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                        for piece in pattern_bytes(n):
                            writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
                            await writer.drain()
                        writer.write(b"0\r\n\r\n")
                    else:
                        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n".encode())
                        for piece in pattern_bytes(n):
                            writer.write(piece)
                            await writer.drain()
                elif path == "/echo":
                    respond(writer, 200, head)
                elif path == "/ws":
                    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    await writer.drain()
                    while True:
                        d = await reader.read(65536)
                        if not d:
                            break
                        writer.write(d)
                        await writer.drain()
                    break
                else:
                    if args.delay_ms:
                        await asyncio.sleep(args.delay_ms / 1000)
                    respond(writer, 200, args.name.encode(), f"X-Backend: {args.name}\r\n")
            await writer.drain()
            if dict(headers).get("connection", "").lower() == "close":
                break
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="backend")
    ap.add_argument("--log")
    ap.add_argument("--delay-ms", type=int, default=0, help="delay before answering GET /")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    log = open(args.log, "a") if args.log else None
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    server = await asyncio.start_server(lambda r, w: handle(r, w, args, log), "127.0.0.1", args.port,
                                        limit=1 << 20, backlog=1024, ssl=tls)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set_result, None)
    print("ready", flush=True)
    async with server:
        await stop


if __name__ == "__main__":
    asyncio.run(main())
