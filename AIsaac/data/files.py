"""`get_images`: the image files of a folder."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def get_images(path: str | os.PathLike, suffixes: Sequence[str] = IMAGE_SUFFIXES, recurse: bool = False) -> list[Path]:
    """The files of folder `path` whose suffix is one of `suffixes` (any case: `.JPG` counts as `.jpg`), sorted by
    path; `recurse` also looks in its subfolders."""
    folder = Path(path)
    if not folder.is_dir():
        raise NotADirectoryError(f"get_images: {str(folder)!r} is not a folder" +
                                 (" (it is a file)" if folder.exists() else " (it does not exist)") + ".")
    if isinstance(suffixes, str): suffixes = (suffixes,)
    wanted = {s.lower() if s.startswith(".") else f".{s.lower()}" for s in suffixes}
    files = folder.rglob("*") if recurse else folder.iterdir()
    return sorted(p for p in files if p.suffix.lower() in wanted and p.is_file())
