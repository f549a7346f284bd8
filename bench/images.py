"""Images in calls, measured: a 5 MB image sent 100 times is stored once; what an image adds to a call.

I1  Storage. 100 ``wb.ask`` calls on local/echo, each sending the same 5 MB PNG, against 100 text-only
    calls on a second store, side by side: bytes on disk (database and WAL, after a checkpoint) and
    rows in ``blobs``.
I2  Time. Median per-call time of a call with that image and of a text-only call, alternating blocks
    in one process (hashing, base64 for the wire, the blob row written once).

Usage: python bench/images.py [--calls 100] [--mb 5] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import struct
import tempfile
import time
import zlib
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")


def noise_png(megabytes: float) -> bytes:
    """A real PNG of random pixels (it does not compress) of about ``megabytes``."""
    side = int((megabytes * 1e6 / 3) ** 0.5)
    rng = random.Random(1)
    rows = b"".join(b"\x00" + rng.randbytes(side * 3) for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b"")


def on_disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--mb", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from workbench.runtime import Workbench

    image = noise_png(args.mb)
    folder = Path(tempfile.mkdtemp(prefix="wb-images-"))
    stores = {"with image": folder / "image.db", "text only": folder / "text.db"}
    wbs = {name: Workbench.from_config(store=str(path)) for name, path in stores.items()}
    for n in range(args.calls):
        wbs["with image"].ask([f"What is in picture {n}?", image], model="local/echo")
        wbs["text only"].ask(f"What is in picture {n}?", model="local/echo")
    print(f"I1 storage: {args.calls} calls, each sending the same {len(image) / 1e6:.2f} MB PNG")
    for name, wb in wbs.items():
        wb.store.query("PRAGMA wal_checkpoint(TRUNCATE)")
        blobs = wb.store.query("SELECT COUNT(*) AS n, COALESCE(SUM(bytes), 0) AS b FROM blobs")[0]
        size = on_disk(stores[name]) / 1e6
        print(f"   {name:>10}: {size:7.2f} MB on disk, {blobs['n']} blob rows ({blobs['b'] / 1e6:.2f} MB)")
    extra = on_disk(stores["with image"]) - on_disk(stores["text only"])
    print(f"   difference: {extra / 1e6:.2f} MB = {extra / len(image):.2f} x the image")
    times: dict[str, list[float]] = {"with image": [], "text only": []}
    block = 20
    for r in range(args.rounds):
        order = list(times) if r % 2 == 0 else list(reversed(times))
        for name in order:
            wb = wbs[name]
            t = time.perf_counter()
            for n in range(block):
                prompt = f"round {r} question {n}"
                wb.ask([prompt, image] if name == "with image" else prompt, model="local/echo")
            times[name].append((time.perf_counter() - t) / block * 1000)
    base = statistics.median(times["text only"])
    with_image = statistics.median(times["with image"])
    print(
        f"I2 time per call (median of {args.rounds} rounds x {block} calls): text only {base:.2f} ms, "
        f"with the {len(image) / 1e6:.1f} MB image {with_image:.2f} ms "
        f"(+{with_image - base:.2f} ms, ratio {with_image / base:.2f})"
    )
    for wb in wbs.values():
        wb.close()


if __name__ == "__main__":
    main()
