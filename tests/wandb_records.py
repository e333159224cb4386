"""Reads an offline wandb run file (run-ID.wandb), so that tests can check what a run logged without the network.
The file is a LevelDB-style log (32 KiB blocks of records, each with a 7-byte header: crc32, length, type; a record
may span blocks as FIRST/MIDDLE/LAST pieces) after a 7-byte wandb header; each record is a protobuf `Record`."""
from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    pos, pieces = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0:  # zero padding to the end of the block
            pos += BLOCK - pos % BLOCK
            continue
        chunk, pos = data[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        pieces = chunk if kind in (FULL, FIRST) else pieces + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            yield record


def offline_run(run_dir: Path) -> dict:
    """The one offline run under `run_dir`/wandb: its run record's fields, the final summary (metric -> value as
    JSON text), and the exit code."""
    [path] = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    run, summary, exit_code = None, {}, None
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            run = r.run
        elif kind == "summary":
            summary.update({u.key or "/".join(u.nested_key): u.value_json for u in r.summary.update})
        elif kind == "exit":
            exit_code = r.exit.exit_code
    return {"name": run.display_name, "group": run.run_group, "job_type": run.job_type, "summary": summary,
            "exit_code": exit_code}
