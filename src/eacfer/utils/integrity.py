"""File digests, and integrity checks for files written by ``torch.save``.

``torch.save`` writes a zip archive with a CRC-32 per member, but ``torch.load`` never checks them: bytes
damaged inside the tensor data (a failing disk, a botched copy or download) load silently as wrong
weights. :func:`verify_torch_zip` reads the archive once and compares every checksum.
"""

from __future__ import annotations

import os


def verify_torch_zip(path: str | os.PathLike[str]) -> None:
    """Raise ``ValueError("<path>: corrupted file (...)")`` when a member's CRC-32 does not match.

    Files that are not zip archives (legacy ``torch.save`` format) and members written without a
    checksum (``torch.serialization.set_crc32_options(False)``) are accepted as they are.

    Example:
        >>> verify_torch_zip("runs/demo/model.pt")  # doctest: +SKIP
    """
    import zipfile
    import zlib

    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.CRC == 0 and info.file_size > 0:
                    continue
                with zf.open(info) as fh:  # reading to the end checks the CRC (BadZipFile when wrong)
                    while fh.read(1 << 20):
                        pass
    except zipfile.BadZipFile as e:
        raise ValueError(f"{os.fspath(path)}: corrupted file (checksum mismatch: {e})") from None
    except (OSError, zlib.error, EOFError) as e:
        raise ValueError(f"{os.fspath(path)}: not readable (truncated or corrupted?): {e}") from None


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's content, read in 1 MiB chunks (model files are large).

    Example:
        >>> file_sha256("runs/demo/run/model.pt")[:8]  # doctest: +SKIP
        '3f1c2a9b'
    """
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
