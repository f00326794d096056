"""`python -m guilds.grpc.stubs`: generate the gRPC stubs of seed 003's protos (grpcio-tools).

The protos and their stubs live in the SDK's package (sdk/python/guildsite_agent/protos/): the contract an agent
speaks, used by the SDK's [grpc] extra and by the server alike (the site installs the SDK). The stubs are
committed; tests/grpc/test_stubs.py regenerates them into a scratch directory and fails when they differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

SDK = Path(__file__).resolve().parents[2] / "sdk" / "python"
PROTOS = SDK / "guildsite_agent" / "protos"


def proto_files() -> list[Path]:
    return sorted(PROTOS.glob("*.proto"))


def generate(out_dir: Path = SDK) -> list[Path]:
    """Write the stubs under `out_dir` (the SDK's root: next to the protos); the files written."""
    from grpc_tools import protoc

    sources = [str(path.relative_to(SDK)) for path in proto_files()]
    # Relative to the SDK's root, so the generated modules import each other as guildsite_agent.protos.*.
    status = protoc.main(["grpc_tools.protoc", f"-I{SDK}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
                          f"--grpc_python_out={out_dir}", *sources])
    if status != 0:
        raise RuntimeError(f"protoc failed ({status})")
    generated = out_dir / PROTOS.relative_to(SDK)
    return sorted(path for path in generated.iterdir() if path.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")))


if __name__ == "__main__":
    for path in generate():
        sys.stdout.write(f"{path.relative_to(SDK)}\n")
    sys.exit(0)
