"""Whole-file outputs are replaced atomically: a failure leaves the old file."""
import os

import pytest

from rnnlab.io.atomic import atomic_write


def test_success_replaces_the_file(tmp_path):
    p = tmp_path / "report.html"
    p.write_text("old")
    with atomic_write(p) as f:
        f.write("new")
    assert p.read_text() == "new" and os.listdir(tmp_path) == ["report.html"]


def test_failure_midway_keeps_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "table.md"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(p) as f:
            f.write("half")
            raise RuntimeError("disk full")
    assert p.read_text() == "old" and os.listdir(tmp_path) == ["table.md"]


def test_binary_mode_and_new_folder(tmp_path):
    p = tmp_path / "figs" / "x.png"
    with atomic_write(p, "wb") as f:
        f.write(b"\x89PNG")
    assert p.read_bytes() == b"\x89PNG"
