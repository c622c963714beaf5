"""Weights on disk: safetensors files whose metadata carries the model configuration, so a file
always says which network it belongs to.

Only safetensors are loaded: they hold tensors and nothing else. PyTorch checkpoints (.pth,
.pt, .ckpt) are pickles, and unpickling can run any code the file's author wrote; they are
refused, and converted once, on request, by `import_checkpoint`, which unpickles with
torch.load(weights_only=True) (tensors and plain containers only)."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from measr.allocator import available_memory
from measr.atomic import replacing
from measr.errors import WeightsError, quoted
from measr.io.oserrors import explain
from measr.manifest import WeightsEntry, check_checksum, check_present, open_regular
from measr.model import MEASNet, ModelConfig, state_shapes

CONFIG_KEY = "measr.config"
# Extensions of PyTorch pickle checkpoints, and how their contents start: a zip archive
# (torch.save since 1.6) or a bare pickle (protocol 2 and later start with 0x80).
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".pkl")
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
# Where checkpoints of other projects keep the state dict, when it is not the file itself.
_STATE_DICT_KEYS = ("state_dict", "model", "params_ema", "params")
# Loading holds every number twice as float32: the network's, and the file's as read.
_LOAD_BYTES_PER_NUMBER = 2 * 4
# A measr file's JSON header is about 100 KB (one line per tensor and the configuration).
MAX_HEADER_BYTES = 16 << 20
# The number types weights may hold, as safetensors names them and as PyTorch does: floating
# point, loaded as float32. Anything else (integers, booleans, complex, float8) is refused.
FLOAT_TYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}
_OTHER_TYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64",
    "C64": "complex64", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
}  # fmt: skip
_SAFETENSORS_ONLY = "weights are .safetensors files: pass one, or fix the entry in weights.txt"
_NOT_BY_MEASR = "the file is damaged or was not written by measr; use weights exported by measr"


def save_weights(
    model: MEASNet, path: str | Path, *, half: bool = False, metadata: dict[str, str] | None = None
) -> None:
    """Write the model's parameters (and buffers) to a safetensors file atomically, its folder
    created, with its configuration (and any extra string metadata) in the header. `half`
    stores float16. A file that cannot be written raises WeightsError and leaves nothing."""
    path = Path(path)
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        tensors[name] = tensor.half() if half and tensor.is_floating_point() else tensor
    header = {CONFIG_KEY: model.config.to_json(), **(metadata or {})}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as temporary:
            save_file(tensors, temporary, metadata=header)
    except OSError as error:
        cause, hint = explain(error)
        raise WeightsError(f"cannot write '{path}': {cause}", hint) from None


def is_pickle_checkpoint(path: str | Path) -> bool:
    """Whether a file is (named like) a PyTorch pickle checkpoint rather than safetensors."""
    if Path(path).suffix.lower() in PICKLE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as stream:
            return stream.read(4).startswith(_PICKLE_MAGIC)
    except OSError:
        return False


def unreadable_weights(path: str | Path, error: Exception) -> WeightsError:
    """Why a weights file could not be read as safetensors: a pickle checkpoint (with the way
    to convert it), or a missing, truncated or foreign file."""
    if is_pickle_checkpoint(path):
        return WeightsError(
            f"'{path}' is a PyTorch pickle checkpoint; measr loads only .safetensors weights, "
            "since unpickling a file can run code",
            f"convert it once with `measr import-weights {path} --config NAME`, which reads "
            "tensors only: torch.load with weights_only=True",
        )
    return WeightsError(
        f"cannot read weights '{path}': {error}",
        "the file is missing, truncated or not safetensors",
    )


@dataclass(frozen=True)
class Header:
    """What a safetensors file's JSON header says: each tensor's number type (as PyTorch names
    it where it is floating point) and shape, where the tensors' bytes end, and the metadata."""

    tensors: dict[str, tuple[str, tuple[int, ...]]]
    end: int
    metadata: dict[str, str]


def read_header(stream: BinaryIO, path: str | Path) -> tuple[bytes, Header]:
    """The header's bytes (with the 8 that give its length) and what they say, read from the
    start of `stream`; WeightsError for a header safetensors would not accept."""
    start = stream.read(8)
    length = int.from_bytes(start, "little")
    if len(start) < 8:
        raise unreadable_weights(path, ValueError("the file is too short for a header"))
    if length > MAX_HEADER_BYTES:
        raise unreadable_weights(path, ValueError(f"its header claims {length:,} bytes"))
    raw = stream.read(length)
    try:
        parsed = json.loads(raw)
        metadata = parsed.pop("__metadata__", None) or {}
        tensors = {str(name): (type_of(info), shape_of(info)) for name, info in parsed.items()}
        end = max((int(info["data_offsets"][1]) for info in parsed.values()), default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise unreadable_weights(path, ValueError(f"invalid header ({error})")) from None
    if not all(isinstance(v, str) for v in [*metadata, *metadata.values()]):
        raise unreadable_weights(path, ValueError("invalid header (metadata not text)"))
    return start + raw, Header(tensors, end, metadata)


def type_of(info: dict[str, Any]) -> str:
    """A header tensor's number type as PyTorch names it ('float16', 'int32')."""
    kind = str(info["dtype"])
    return FLOAT_TYPES.get(kind) or _OTHER_TYPES.get(kind, kind)


def shape_of(info: dict[str, Any]) -> tuple[int, ...]:
    shape = tuple(int(size) for size in info["shape"])
    if any(size < 0 for size in shape):
        raise ValueError(f"shape {shape}")
    return shape


def read_metadata(path: str | Path) -> dict[str, str]:
    """The header metadata of a safetensors weights file."""
    with open_regular(Path(path), "weights file", _SAFETENSORS_ONLY) as stream:
        return read_header(stream, path)[1].metadata


def read_config(path: str | Path) -> ModelConfig:
    """The configuration a weights file was saved with."""
    return config_of(read_metadata(path), path)


def config_of(metadata: dict[str, str], path: str | Path) -> ModelConfig:
    """The configuration in a weights file's metadata."""
    if CONFIG_KEY not in metadata:
        raise WeightsError(
            f"weights '{path}' carry no measr configuration",
            "they were not written by measr: use weights exported with `measr export`",
        )
    try:
        return ModelConfig.from_json(metadata[CONFIG_KEY])
    except WeightsError as error:
        message = f"cannot load weights {quoted(path)}: {error.message}"
        raise WeightsError(message, error.hint) from None


def network_shapes(config: ModelConfig, source: str | Path) -> dict[str, tuple[int, ...]]:
    """The shape of each tensor of `config`'s network. Refuses a configuration (read from an
    untrusted file) whose network cannot be built, or would not fit in the memory there is,
    before anything of its size is allocated."""
    try:
        shapes = state_shapes(config)
    except Exception as error:  # the layers refuse some sizes, each in its own way
        raise WeightsError(
            f"cannot load weights {quoted(source)}: invalid model configuration: the network "
            f"cannot be built ({type(error).__name__}: {error})",
            _NOT_BY_MEASR,
        ) from None
    numbers = sum(math.prod(shape) for shape in shapes.values())
    needed, available = numbers * _LOAD_BYTES_PER_NUMBER, available_memory()
    if needed > available:
        raise WeightsError(
            f"cannot load weights {quoted(source)}: their configuration is a network of "
            f"{numbers / 1e6:,.1f} million parameters, which needs {in_memory_units(needed)} "
            f"to load, and {in_memory_units(available)} of memory is available",
            "free memory, or use weights of a smaller configuration, such as `measr models` lists",
        )
    return shapes


def in_memory_units(size: int) -> str:
    """A byte count as people read memory sizes: '3.2 GiB', '812 MiB'."""
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def check_finite_weights(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights holding NaN or infinity: the network would turn every photo black."""
    broken = [
        name
        for name, tensor in state.items()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if broken:
        raise WeightsError(
            f"weights {quoted(source)} hold non-finite values (NaN or infinity) in "
            f"{len(broken)} of their tensors (e.g. {broken[0]})",
            "the file is damaged, or was saved from a training run that diverged; "
            "use other weights",
        )


def check_tensors(
    found: dict[str, tuple[str, tuple[int, ...]]],
    shapes: dict[str, tuple[int, ...]],
    source: str,
    config: str,
) -> None:
    """Refuse tensors (`found`: name -> number type and shape) that are not those of the
    network of configuration `config` (`shapes`): a name it lacks or does not have, a shape it
    does not have, numbers that are not floating point. Checked on a file's header, before
    any tensor is read: an unexpected tensor would otherwise be read and widened first."""
    missing = [name for name in shapes if name not in found]
    unexpected = [name for name in found if name not in shapes]
    if missing or unexpected:
        raise WeightsError(
            f"weights {quoted(source)} do not fit configuration '{config}': "
            f"{len(missing)} missing and {len(unexpected)} unexpected tensors "
            f"(e.g. {(missing or unexpected)[0]})",
            "the file was made by a different measr version; re-export it",
        )
    reshaped = [name for name, (_, shape) in found.items() if shape != shapes[name]]
    if reshaped:
        name = reshaped[0]
        raise WeightsError(
            f"weights {quoted(source)} do not fit configuration '{config}': {len(reshaped)} "
            f"tensors have other shapes (e.g. {name} is {found[name][1]}, '{config}' needs "
            f"{shapes[name]})",
            "use the configuration the weights were trained with",
        )
    odd = [name for name, (kind, _) in found.items() if kind not in FLOAT_TYPES.values()]
    if odd:
        name = odd[0]
        raise WeightsError(
            f"weights {quoted(source)} hold {found[name][0]} numbers in {len(odd)} of their "
            f"tensors (e.g. {name}); weights are float16, bfloat16, float32 or float64",
            _NOT_BY_MEASR,
        )


def read_weights(
    path: str | Path, entry: WeightsEntry | None = None
) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """The configuration and the tensors (floating point, as float32) of a weights file, read
    once: the header is checked (`check_tensors`) before any tensor is read, and, given
    `entry` (weights.txt's line for the file), the bytes loaded are the bytes whose sha256 is
    checked against it (a file replaced between two reads cannot be loaded unchecked)."""
    if entry is not None:
        check_present(entry)
    with open_regular(Path(path), "weights file", _SAFETENSORS_ONLY) as stream:
        source: BinaryIO = stream
        size = os.fstat(stream.fileno()).st_size
        if entry is not None:
            checked = stream.read()
            check_checksum(entry, hashlib.sha256(checked).hexdigest())
            source, size = io.BytesIO(checked), len(checked)
        prefix, header = read_header(source, path)
        config = config_of(header.metadata, path)
        check_tensors(header.tensors, network_shapes(config, path), str(path), config.name)
        ends = len(prefix) + header.end
        body = source.read(header.end) if ends == size else b""
    if ends != size or len(body) != header.end:
        cause = f"the file does not end where its header says (byte {ends:,})"
        raise unreadable_weights(path, ValueError(cause))
    try:
        tensors = load(prefix + body)
    except (SafetensorError, ValueError) as error:
        raise unreadable_weights(path, error) from None
    return config, {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def load_into(
    model: MEASNet, state: dict[str, torch.Tensor], source: str, config: ModelConfig
) -> None:
    """Copy `state` into `model`, failing with a message naming both configurations when they
    do not match."""
    target = model.config
    differences = target.differences(config)
    if differences:
        raise WeightsError(
            f"weights '{source}' are for configuration '{config.name}', not '{target.name}' "
            f"({'; '.join(differences[:4])})",
            f"build the model with config '{config.name}', or use weights made for '{target.name}'",
        )
    found = {name: (type_name(t), tuple(t.shape)) for name, t in state.items()}
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    check_tensors(found, shapes, source, target.name)
    check_finite_weights(state, source)
    model.load_state_dict(state)


def type_name(tensor: torch.Tensor) -> str:
    """A tensor's number type as PyTorch names it: 'float32', 'int32', 'complex64'."""
    return str(tensor.dtype).removeprefix("torch.")


def load_model(path: str | Path, entry: WeightsEntry | None = None) -> MEASNet:
    """A network built from the configuration stored in a weights file, with its weights;
    given `entry`, checked against its sha256 in weights.txt (`read_weights`)."""
    config, state = read_weights(path, entry)
    model = MEASNet(config)
    load_into(model, state, str(path), config)
    return model


def load_weights(model: MEASNet, path: str | Path) -> None:
    """Load a weights file into an existing network; the configurations must match."""
    config, state = read_weights(path)
    load_into(model, state, str(path), config)


def import_checkpoint(path: str | Path, config: ModelConfig) -> MEASNet:
    """A network of `config` holding the tensors of a PyTorch checkpoint (a state dict, or one
    under a usual key such as 'state_dict'). The file is unpickled with
    torch.load(weights_only=True): only tensors and plain containers are rebuilt, and a file
    that asks for anything else (a function to call, a class to build) is refused unrun."""
    model = MEASNet(config)
    load_into(model, state_dict_of(unpickle_tensors(path), path), str(path), config)
    return model


def unpickle_tensors(path: str | Path) -> Any:
    """torch.load(path, weights_only=True), with its failures as WeightsError."""
    if not Path(path).is_file():
        raise WeightsError(f"checkpoint '{path}' does not exist", "check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol notices; the refusal itself is an error
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise WeightsError(
            f"refused '{path}': it holds more than tensors ({refusal_reason(error)}); "
            "nothing in it was run",
            "only a plain state dict can be imported; ask its author for safetensors weights",
        ) from None
    except Exception as error:  # a damaged archive or pickle can raise almost anything
        first_sentence = str(error).split("\n", 1)[0].split(". ", 1)[0]
        raise WeightsError(
            f"cannot read checkpoint '{path}' ({type(error).__name__}: {first_sentence})",
            "the file is truncated or not a PyTorch checkpoint; get a fresh copy",
        ) from None


def refusal_reason(error: pickle.UnpicklingError) -> str:
    """The line of torch's (long) weights_only refusal that names what the file asked for."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or "Unsupported" in line]
    return (named or lines or ["not a plain state dict"])[0].rstrip(".")


def state_dict_of(loaded: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The {name: tensor} dict in an unpickled checkpoint, without a 'module.' prefix
    (DataParallel's) when every name has one."""
    if isinstance(loaded, dict):
        for key in _STATE_DICT_KEYS:
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    tensors = {}
    if isinstance(loaded, dict):
        tensors = {k: v for k, v in loaded.items() if isinstance(k, str) and torch.is_tensor(v)}
    if not tensors:
        raise WeightsError(
            f"'{path}' holds no state dict (it holds a {type(loaded).__name__} without tensors)",
            "import a file saved with torch.save(model.state_dict(), path)",
        )
    if all(name.startswith("module.") for name in tensors):
        tensors = {name.removeprefix("module."): v for name, v in tensors.items()}
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
