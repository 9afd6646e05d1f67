"""A stock gRPC Python client resolving an `xds:///` target through an xDS control plane.

Usage: GRPC_XDS_BOOTSTRAP=bootstrap.json python client.py TARGET METHOD [MAX_SECONDS]

Reads one JSON command per line on stdin:

    {"calls": 5, "metadata": [["x-user", "jason"]], "timeout": 5, "wait_for_ready": true}

and makes that many unary calls (stopping at the first that fails) to METHOD (e.g. `/echo.Echo/Unary`) on one channel that lives
as long as the process, so configuration pushed by the control plane between commands is
followed. Messages are raw bytes: the test servers echo whatever they get, so no generated
stubs are needed. For each call it prints one JSON line,

    {"served_by": "v2", "code": "OK", "details": ""}

(`served_by` is the `x-served-by` response header of weft's test servers), then
`{"done": true}`. It exits when stdin closes, and after MAX_SECONDS (default 120) whatever
happens, so a stuck resolution never outlives the test.
"""

import json
import os
import sys
import threading

import grpc


def main() -> int:
    target, method = sys.argv[1], sys.argv[2]
    max_seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
    watchdog = threading.Timer(max_seconds, lambda: os._exit(3))
    watchdog.daemon = True
    watchdog.start()

    channel = grpc.insecure_channel(target)
    # No serializers: requests and responses are bytes as they are.
    call = channel.unary_unary(method)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        command = json.loads(line)
        metadata = [tuple(pair) for pair in command.get("metadata", [])]
        timeout = float(command.get("timeout", 5))
        wait_for_ready = bool(command.get("wait_for_ready", True))
        for i in range(int(command.get("calls", 1))):
            result = {"served_by": None, "code": "OK", "details": ""}
            try:
                _, rpc = call.with_call(
                    b"call %d" % i,
                    timeout=timeout,
                    metadata=metadata,
                    wait_for_ready=wait_for_ready,
                )
                headers = dict(rpc.initial_metadata() or ())
                result["served_by"] = headers.get("x-served-by")
            except grpc.RpcError as e:
                result["code"] = e.code().name
                result["details"] = e.details() or ""
            print(json.dumps(result), flush=True)
            if result["code"] != "OK":
                break
        print(json.dumps({"done": True}), flush=True)
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
