#!/usr/bin/env python3
"""Removes from the filter's .wasm the exports of proxy-wasm callbacks the filter does not
implement (issue #9), so that Envoy does not cross into the VM for them: the SDK exports every
callback, and Envoy calls those it finds (`proxy_on_done` and `proxy_on_log` on every request,
`proxy_on_response_body` on every response with a body), each a crossing into V8 that ends in
the SDK's default. Without the export Envoy carries on as the default would (proxy-wasm-cpp-host
checks for each callback; a missing `proxy_on_done` counts as done, the SDK's default answer).
The harness test `tests/harness/tests/exports.rs` pins the list against the glue.

    python3 scripts/wasm_exports.py strip IN.wasm OUT.wasm

Standard library only; OUT may be IN.
"""
import sys

# Callbacks the filter's glue (filter/src/glue/) does not implement: the SDK's default would run.
UNUSED = (
    "proxy_on_done",
    "proxy_on_log",
    "proxy_on_response_body",
    "proxy_on_response_trailers",
    "proxy_on_grpc_receive_initial_metadata",
    "proxy_on_grpc_receive",
    "proxy_on_grpc_receive_trailing_metadata",
    "proxy_on_grpc_close",
)

EXPORT_SECTION = 7


def read_leb(data, i):
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def leb(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def strip(data, unused):
    """The module without the exports named in `unused`, and the names removed."""
    if data[:4] != b"\0asm":
        raise ValueError("not a wasm module")
    out = bytearray(data[:8])
    removed = []
    i = 8
    while i < len(data):
        section = data[i]
        size, start = read_leb(data, i + 1)
        end = start + size
        body = data[start:end]
        if section == EXPORT_SECTION:
            count, k = read_leb(body, 0)
            kept = []
            for _ in range(count):
                entry = k
                length, k = read_leb(body, k)
                name = body[k : k + length].decode()
                k += length + 1  # the name, then the kind
                _, k = read_leb(body, k)  # the index
                if name in unused:
                    removed.append(name)
                else:
                    kept.append(body[entry:k])
            body = leb(len(kept)) + b"".join(kept)
        out.append(section)
        out += leb(len(body))
        out += body
        i = end
    return bytes(out), removed


def main(argv):
    if len(argv) != 4 or argv[1] != "strip":
        sys.exit(f"usage: {argv[0]} strip IN.wasm OUT.wasm")
    with open(argv[2], "rb") as f:
        data = f.read()
    stripped, removed = strip(data, UNUSED)
    with open(argv[3], "wb") as f:
        f.write(stripped)
    print(f"removed {len(removed)} unused callback exports", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
