"""`python -m guilds.grpc.stubs`: generate the gRPC stubs of guilds/grpc/protos/*.proto next to them (grpcio-tools).

The stubs are committed; tests/grpc/test_stubs.py regenerates them into a scratch directory and fails when they
differ from the committed ones (a .proto changed without its stubs, or the other way round).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = Path(__file__).resolve().parent / "protos"


def proto_files() -> list[Path]:
    return sorted(PROTOS.glob("*.proto"))


def generate(out_dir: Path = ROOT) -> list[Path]:
    """Write the stubs under `out_dir` (the project root: next to the protos); the files written."""
    from grpc_tools import protoc

    sources = [str(path.relative_to(ROOT)) for path in proto_files()]
    # Relative to the project root, so the generated modules import each other as guilds.grpc.protos.*.
    status = protoc.main(["grpc_tools.protoc", f"-I{ROOT}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
                          f"--grpc_python_out={out_dir}", *sources])
    if status != 0:
        raise RuntimeError(f"protoc failed ({status})")
    generated = out_dir / PROTOS.relative_to(ROOT)
    return sorted(path for path in generated.iterdir() if path.name.endswith(("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")))


if __name__ == "__main__":
    for path in generate():
        sys.stdout.write(f"{path.relative_to(ROOT)}\n")
    sys.exit(0)
