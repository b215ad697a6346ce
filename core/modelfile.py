"""LandSeg model files: safetensors weights with the model's description as JSON.

A model file is one ``.safetensors`` file. Its tensors are the network's ``state_dict``;
its header metadata holds one entry, ``landseg``, a JSON document that says everything
needed to rebuild and apply the network: architecture and its arguments, input bands and
their normalisation, tile size and overlap, classes (values, names, colours), the ignore
value and a training summary.

safetensors stores raw tensors and a JSON header, nothing executable, so opening a model
file can never run code, unlike PyTorch's pickle checkpoints (``torch.save``).
:func:`read_metadata` parses the header with the standard library only, so the QGIS
side can read a model's classes without importing torch.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .protocol import EngineError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["FORMAT", "FORMAT_VERSION", "load_model", "read_metadata", "save_model"]

#: Value of the ``format`` key of every LandSeg model's metadata.
FORMAT = "landseg-model"
#: Version of the metadata layout; readers refuse newer versions.
FORMAT_VERSION = 1
#: Header metadata key holding the JSON description.
METADATA_KEY = "landseg"
#: Largest safetensors header accepted (bytes), against corrupt or hostile files.
MAX_HEADER_BYTES = 100 * 1024 * 1024


def save_model(
    path: str | os.PathLike[str],
    state_dict: dict[str, torch.Tensor],
    metadata: dict[str, Any],
) -> None:
    """Write a model file.

    Parameters
    ----------
    path : path-like
        Destination ``.safetensors`` file. Written as given: callers write to a temporary
        path (:func:`core.io.atomic_output`) and rename, so a cancelled run leaves nothing.
    state_dict : dict of str to torch.Tensor
        The network's weights (``module.state_dict()``); tensors are copied to CPU and made
        contiguous.
    metadata : dict
        JSON-serialisable description; ``format`` and ``format_version`` are added.
    """
    from safetensors.torch import save_file

    document = {"format": FORMAT, "format_version": FORMAT_VERSION, **metadata}
    try:
        text = json.dumps(document, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Model metadata is not plain JSON: {err}") from None
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in state_dict.items()}
    save_file(tensors, os.fspath(path), metadata={METADATA_KEY: text})
    # safetensors writes 0600 (a private temporary file renamed); give the model file the
    # permissions of any other file the user writes (0666 less the umask).
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a model file's description without loading its weights (standard library only).

    Raises
    ------
    EngineError
        When the file is missing, is not a safetensors file (a PyTorch pickle checkpoint,
        for instance), is truncated, or holds no LandSeg description.
    """
    file = Path(path)
    if not file.is_file():
        raise EngineError(f"Model file {file} does not exist. Give a model file LandSeg wrote.")
    size = file.stat().st_size
    with file.open("rb") as stream:
        head = stream.read(8)
        _refuse_pickle(file, head + stream.read(1))
        stream.seek(8)
        if len(head) < 8:
            raise EngineError(f"{file} is empty or truncated: it is not a LandSeg model file.")
        (n_bytes,) = struct.unpack("<Q", head)
        if n_bytes > MAX_HEADER_BYTES or 8 + n_bytes > size:
            raise EngineError(
                f"{file} is not a valid safetensors model file (corrupt or truncated header). "
                "Train the model again or copy the file again."
            )
        raw = stream.read(n_bytes)
    try:
        header = json.loads(raw.decode("utf-8"))
        text = header["__metadata__"][METADATA_KEY]
        document = json.loads(text)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise EngineError(
            f"{file} is a safetensors file without a LandSeg model description, or is "
            "corrupt. Give a model file written by LandSeg (Train U-Net or an unsupervised "
            "algorithm's OUTPUT_MODEL)."
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise EngineError(f"{file} is not a LandSeg model file (no '{FORMAT}' format tag).")
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise EngineError(
            f"{file} was written by a newer LandSeg (model format {version}); this LandSeg "
            f"reads format {FORMAT_VERSION}. Update the LandSeg plugin."
        )
    return document


def load_model(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a model file's weights and description.

    Parameters
    ----------
    path : path-like
        A file written by :func:`save_model`.
    device : str or torch.device
        Where to put the tensors.

    Returns
    -------
    state_dict : dict of str to torch.Tensor
        Weights, for ``module.load_state_dict``.
    metadata : dict
        The model's description (see :func:`read_metadata`).
    """
    metadata = read_metadata(path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state_dict = load_file(os.fspath(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise EngineError(
            f"{path}: the model's weights cannot be read ({err}). The file is corrupt: "
            "train the model again or copy the file again."
        ) from None
    return state_dict, metadata


def _refuse_pickle(file: Path, head: bytes) -> None:
    # torch.save writes a zip archive (PK..) holding a pickle; old torch and plain pickle
    # files start with the pickle protocol opcode 0x80. A safetensors file starts with its
    # header's length (little-endian, so its first byte may be 0x80 too) and then "{".
    if head[8:9] == b"{":
        return
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        raise EngineError(
            f"{file} is a PyTorch pickle checkpoint, not a LandSeg model file. LandSeg never "
            "opens pickle files, because loading one can run arbitrary code. Use a model "
            "file written by LandSeg (weights in safetensors, description in JSON)."
        )
