"""Images and figures as multimodal content: shown to the model, stored once by content, replayed, audited."""

import base64
import random
import struct
import zlib

import pytest

from workbench import ImageError, ReplayMiss
from workbench.runtime import Workbench
from workbench.serving.images import as_image, image_tokens


def png(width: int, height: int, seed: int = 0) -> bytes:
    """A real PNG (no imaging library needed): RGB noise from ``seed`` (so it does not compress away)."""
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_an_image_in_the_prompt_is_shown_to_the_model_and_stored_once_by_its_content(wb):
    image = png(64, 48)
    first = wb.ask(["What does this show?", image], model="local/echo")
    marker = as_image(image).marker
    assert marker == f"[image 64x48 png sha256:{as_image(image).sha256[:12]}]"
    assert first.text == f"What does this show?\n{marker}"  # local/echo was sent the image and describes it
    for _ in range(3):
        wb.ask("Again?", images=[image], model="local/echo")
    [blob] = wb.store.query("SELECT sha256, mime, width, height, bytes, first_call FROM blobs")
    assert (blob["mime"], blob["width"], blob["height"], blob["bytes"]) == ("image/png", 64, 48, len(image))
    assert blob["first_call"] == first.call_id
    [request] = [r["request"] for r in wb.store.query("SELECT request FROM calls WHERE id = ?", (first.call_id,))]
    assert f"workbench-blob:sha256:{blob['sha256']}" in request  # the request names it by hash ...
    assert base64.b64encode(image[:30]).decode()[:20] not in request  # ... and does not carry its bytes


def test_images_come_from_bytes_paths_and_matplotlib_figures_and_anything_else_is_one_line(wb, tmp_path):
    path = tmp_path / "chart.png"
    path.write_bytes(png(20, 10))
    assert wb.ask(["Look:", path], model="local/echo").text.endswith(
        "[image 20x10 png sha256:" + as_image(path).sha256[:12] + "]"
    )
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([1, 3, 2])
    assert "png sha256:" in wb.ask("Describe the trend", images=[fig], model="local/echo").text
    plt.close(fig)
    with pytest.raises(ImageError, match="not a PNG or JPEG"):
        wb.ask(["x", b"GIF89a......"], model="local/echo")
    with pytest.raises(ImageError, match="no image file"):
        wb.ask("x", images=[str(tmp_path / "missing.png")], model="local/echo")
    with pytest.raises(WorkbenchErrorLike):
        wb.ask(["x", 42], model="local/echo")


WorkbenchErrorLike = __import__("workbench").WorkbenchError


def test_a_model_that_cannot_see_gets_a_clear_error_before_anything_is_sent(wb, chaos):
    server = chaos(name="blind")
    wb.add_route("blind", [{"model": "openai/chaos-text", "api_base": server.url}])
    with pytest.raises(ImageError, match="openai/chaos-text cannot see images"):
        wb.ask(["What is this?", png(8, 8)], model="blind")
    with pytest.raises(ImageError, match="local/extractive cannot see images"):
        wb.ask(["What is this?", png(8, 8)], model="local/extractive")
    assert server.stats.requests == 0


def test_a_vision_route_over_http_receives_openai_image_url_parts_with_the_bytes(tmp_path, chaos):
    server = chaos(name="eyes", reply="I see: {prompt}")
    wb = Workbench.from_config(store=str(tmp_path / "v.db"), images={"vision": ["openai/chaos-vision"]})
    wb.add_route("eyes", [{"model": "openai/chaos-vision", "api_base": server.url}])
    image = png(32, 16)
    result = wb.ask(["Caption this:", image], model="eyes")
    assert result.text.startswith("I see: Caption this:")
    [sent] = [m for m in server.stats.last_messages if m["role"] == "user"]
    [text, part] = sent["content"]
    assert text == {"type": "text", "text": "Caption this:\n"}
    assert part["type"] == "image_url"
    assert part["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(image).decode()
    wb.close()


def test_size_limits_per_image_and_per_call_are_one_line_errors(tmp_path):
    wb = Workbench.from_config(store=str(tmp_path / "l.db"), images={"max_mb": 0.006, "max_call_mb": 0.008})
    small, other = png(40, 40, 1), png(40, 40, 2)
    assert len(small) < 6_000
    with pytest.raises(ImageError, match=r"over the 0.006 MB limit \(\[images\] max_mb\)"):
        wb.ask(["big", png(200, 200)], model="local/echo")
    with pytest.raises(ImageError, match="over the 0.008 MB per call"):
        wb.ask(["two", small, other], model="local/echo")
    assert wb.calls.df().empty  # refused before anything was sent or recorded
    wb.close()


def test_replay_needs_no_file_and_a_different_image_is_a_miss_that_names_it(tmp_path):
    store = str(tmp_path / "r.db")
    path = tmp_path / "fig.png"
    path.write_bytes(png(30, 20))
    live = Workbench.from_config(store=store)
    recorded = live.ask(["Summarise the chart", path], model="local/echo", session="charts")
    live.close()
    path.unlink()  # the original is gone: replay answers from the store
    replay = Workbench.from_config(store=store, mode="replay")
    again = replay.ask(["Summarise the chart", as_image(png(30, 20))], model="local/echo", session="charts")
    assert again.text == recorded.text
    other = as_image(png(30, 20, seed=5))
    with pytest.raises(ReplayMiss) as miss:
        replay.ask(["Summarise the chart", other], model="local/echo", session="charts2")
    assert other.sha256[:12] in str(miss.value) or other.sha256 in str(miss.value)
    replay.close()


def test_a_rerun_sends_the_stored_bytes_and_the_audit_binds_them(wb):
    image = png(16, 16)
    first = wb.ask(["Describe", image], model="local/echo")
    stored = wb.calls.last()["request"]
    import json

    from workbench.serving.types import Request

    data = json.loads(stored)
    again = wb.rerun(Request(data["route"], data["messages"], data["params"]), "Describe", first.call_id)
    assert again.text == first.text  # local/echo was sent the bytes from the store
    assert "intact" in str(wb.audit.verify())
    with wb.store.transaction() as conn:
        conn.execute("UPDATE blobs SET data = ?", (png(16, 16, seed=9),))
    assert "blobs" in str(wb.audit.verify())  # the altered image is named


def test_image_tokens_follow_openais_tiles():
    assert image_tokens(512, 512) == 85 + 170
    assert image_tokens(1024, 1024) == 85 + 170 * 4  # scaled to 768x768: four tiles
    assert image_tokens(4096, 2048) == 85 + 170 * 6  # 2048x1024, then 1536x768: 3x2 tiles


def test_an_agent_step_with_image_parts_is_stored_by_hash_not_a_raw_error(wb):
    image = png(10, 10)
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    parts = [{"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": url}}]
    result = wb.step([{"role": "user", "content": parts}], model="local/echo")
    assert result.text == "what is it?" + as_image(image).marker
    assert wb.calls.last()["prompt"] == result.text
    assert wb.store.query("SELECT bytes FROM blobs") == [{"bytes": len(image)}]
    with pytest.raises(ImageError, match="must be a data: URL"):
        wb.step([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}])
    hostile = {  # each a one-line ImageError, never a raw decoding or attribute error
        "data:image/png;base64,abc": "not valid base64",
        "data:image/png;base64,!!!!": "not valid base64",
        "data:image/png;base64," + base64.b64encode(b"GIF89a....").decode(): "not a PNG or JPEG",
    }
    for bad, why in hostile.items():
        with pytest.raises(ImageError, match=why):
            wb.step([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": bad}}]}])
    with pytest.raises(ImageError, match="must be a data: URL"):
        wb.step([{"role": "user", "content": [{"type": "image_url", "image_url": "not a dict"}]}])


def test_compaction_drops_an_image_no_kept_call_names_and_the_audit_still_verifies(wb):
    image, kept = png(12, 12, 1), png(12, 12, 2)
    wb.ask(["old", image], model="local/echo")
    done = wb.compact(older_than="2999-01-01")  # every call so far is older
    assert done.calls == 1
    wb.ask(["new", kept], model="local/echo")
    rows = {r["sha256"]: r for r in wb.store.query("SELECT sha256, data, compacted_at FROM blobs")}
    assert rows[as_image(image).sha256]["data"] is None
    assert rows[as_image(image).sha256]["compacted_at"] is not None
    assert rows[as_image(kept).sha256]["data"] == kept
    assert wb.audit.verify().ok


def test_an_agent_is_shown_its_task_images_named_by_hash_in_its_saved_messages(wb):
    image = png(24, 24, 3)
    run = wb.agent("viewer", model="local/echo").run("Check this chart", images=[image])
    assert run.answer == "Check this chart\n" + as_image(image).marker  # local/echo was shown the image
    [saved] = wb.store.query("SELECT messages FROM agent_runs WHERE id = ?", (run.id,))
    assert "workbench-blob:sha256:" + as_image(image).sha256 in saved["messages"]  # named by hash, not inlined
    assert "base64" not in saved["messages"]
    assert wb.store.query("SELECT bytes FROM blobs") == [{"bytes": len(image)}]


def test_a_plotly_figure_without_kaleido_is_a_one_line_error_saying_what_to_install(wb):
    go = pytest.importorskip("plotly.graph_objects")
    import importlib.util

    if importlib.util.find_spec("kaleido") is not None:
        pytest.skip("kaleido is installed here: the figure would be sent")
    with pytest.raises(ImageError, match="pip install kaleido"):
        wb.ask(["What does it show?", go.Figure(go.Bar(y=[1, 3, 2]))], model="local/echo")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _with_metadata(image: bytes, kind: str, note: bytes) -> bytes:
    """``image`` (a PNG) or a JPEG made from it with ``note`` in every place such a file keeps text."""
    import io

    from PIL import Image as PILImage

    if kind == "png":  # after the header: a text, a compressed text, an international text, EXIF; and after IEND
        extra = _chunk(b"tEXt", b"parameters\x00" + note) + _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(note))
        extra += _chunk(b"iTXt", b"Note\x00\x00\x00\x00\x00" + note) + _chunk(b"eXIf", b"MM\x00*" + note)
        return image[:33] + extra + image[33:] + note
    buffer = io.BytesIO()
    exif = PILImage.Exif()
    exif[0x010E] = note.decode()  # ImageDescription
    PILImage.open(io.BytesIO(image)).save(
        buffer, "JPEG", exif=exif.tobytes(), comment=note, progressive=kind == "progressive jpeg", quality=90
    )
    data = buffer.getvalue()
    xmp = b"http://ns.adobe.com/xap/1.0/\x00" + note
    app13 = b"Photoshop 3.0\x00" + note
    segments = b"".join(m + struct.pack(">H", len(d) + 2) + d for m, d in ((b"\xff\xe1", xmp), (b"\xff\xed", app13)))
    return data[:2] + segments + data[2:] + note


@pytest.mark.parametrize("kind", ["png", "jpeg", "progressive jpeg"])
def test_what_an_image_says_besides_its_pixels_is_never_sent_or_stored(wb, kind):
    """Image tools write the prompt that made a picture into its PNG text chunks, cameras and editors notes into
    EXIF, XMP and comments: none of it is scanned, so none of it is kept. The pixels are unchanged.
    """
    import io

    from PIL import Image as PILImage

    note = b"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiIMAGENOTE88"
    image = _with_metadata(png(40, 30, seed=5), kind, note)
    assert image.count(note) >= 3
    sent = wb.ask(["What does this show?", image], model="local/echo")
    [blob] = wb.store.query("SELECT data FROM blobs")
    assert note not in blob["data"] and b"wJalrXUtnFEMI" not in blob["data"]
    assert sent.text.endswith(f"[image 40x30 {kind.split()[-1]} sha256:{as_image(image).sha256[:12]}]")
    before, after = (PILImage.open(io.BytesIO(data)) for data in (image, blob["data"]))
    assert (after.size, after.mode) == (before.size, before.mode)
    assert after.tobytes() == before.tobytes()  # the same pixels, decoded
    wb.store.close()
    stored = b"".join(p.read_bytes() for p in wb.store.path.parent.glob(wb.store.path.name + "*"))
    assert b"wJalrXUtnFEMI" not in stored


@pytest.mark.parametrize(
    "data",
    [
        png(8, 8)[:-20],  # cut short: no IEND
        png(8, 8)[:33] + struct.pack(">I", 10**6) + b"tEXt" + b"x" * 20,  # a chunk longer than the file
        b"\xff\xd8\xff\xc0\x00\x0b\x08\x00\x04\x00\x04\x01\x01\x11\x00\xff\xfe\x00\x40note",
        b"\xff\xd8\xff\xc0\x00\x0b\x08\x00\x04\x00\x04\x01\x01\x11\x00\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\x12",
    ],
    ids=["png without end", "png chunk past the end", "jpeg cut in a segment", "jpeg scan without end"],
)
def test_an_image_whose_structure_cannot_be_read_is_one_line(wb, data):
    with pytest.raises(ImageError, match="structure cannot be read"):
        wb.ask(["What is this?", data], model="local/echo")
    assert wb.store.query("SELECT count(*) AS n FROM calls")[0]["n"] == 0
