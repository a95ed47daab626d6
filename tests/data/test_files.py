"""get_images: the image files of a folder, as the original's notebooks list a folder of pictures."""
import pytest

from AIsaac.all import get_images


def test_lists_image_files_by_suffix_sorted(tmp_path):
    for name in ("b.png", "a.jpg", "c.JPEG", "notes.txt", "d.gif"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.png").write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()  # a folder named like an image is not a file
    assert [p.name for p in get_images(tmp_path)] == ["a.jpg", "b.png", "c.JPEG"]
    assert [p.name for p in get_images(str(tmp_path), suffixes=(".gif",))] == ["d.gif"]
    assert [p.name for p in get_images(tmp_path, ".png", recurse=True)] == ["b.png", "e.png"]


def test_a_path_that_is_not_a_folder_says_so(tmp_path):
    with pytest.raises(NotADirectoryError, match="does not exist"): get_images(tmp_path / "nope")
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="it is a file"): get_images(tmp_path / "f.png")
