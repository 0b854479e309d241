import os

import pytest

from mmgrec_core.files import atomic_write_bytes, read_json, write_json


def test_atomic_write_replaces_whole_files_with_the_usual_mode(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_json(path, {"x": 1})
    write_json(path, {"x": 2})
    assert read_json(path) == {"x": 2}
    assert list(path.parent.iterdir()) == [path]                       # no temporary files left behind
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "b.bin"
    atomic_write_bytes(path, b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(path, "text, not bytes")                    # fails half-way through the write
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]
