"""Every committed figure and GIF records what it was drawn from, and was drawn from the committed
result: the sha256 written into the picture (rnem.provenance) is that of the JSON file now."""
import glob
import json
import os

import numpy as np
import pytest

from conftest import ROOT
from rnem import provenance
from rnem.environment import source_sha256

PICTURES = sorted(glob.glob(os.path.join(ROOT, "viz", "**", "*.png"), recursive=True)
                  + glob.glob(os.path.join(ROOT, "viz", "**", "*.gif"), recursive=True)
                  + glob.glob(os.path.join(ROOT, "*.gif")))


def test_there_are_committed_pictures():
    assert len(PICTURES) > 50


@pytest.mark.parametrize("path", [os.path.relpath(p, ROOT) for p in PICTURES])
def test_a_committed_picture_was_drawn_from_the_committed_result(path):
    sources = provenance.sources_of(os.path.join(ROOT, path))
    assert sources, f"{path} records no source: redraw it (bash regenerate.sh figures)"
    for source in sources:
        where = os.path.join(ROOT, source["path"])
        assert os.path.isfile(where), f"{path} was drawn from {source['path']}, which is not committed"
        assert source_sha256(where) == source["sha256"], \
            f"{path} was drawn from another version of {source['path']}: redraw it (bash regenerate.sh figures)"


def test_the_record_survives_png_and_gif(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import imageio.v3 as iio
    src = tmp_path / "r.json"
    src.write_text(json.dumps({"x": 1}))
    fig = plt.figure(figsize=(1, 1))
    provenance.save_png(fig, str(tmp_path / "f.png"), [str(src)], 20)
    plt.close(fig)
    record = provenance.sources_of(str(tmp_path / "f.png"))
    assert record == [{"path": os.path.normpath(str(src)), "sha256": source_sha256(str(src))}]
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    iio.imwrite(tmp_path / "g.gif", frames, extension=".gif", duration=100, loop=0,
                comment=provenance.record(str(src)).encode())
    assert provenance.sources_of(str(tmp_path / "g.gif")) == record
    src.write_text(json.dumps({"x": 2}))                   # the source changes: the record no longer matches
    assert source_sha256(str(src)) != record[0]["sha256"]
