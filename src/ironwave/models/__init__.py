"""Source separation models: HTDemucs (4 and 6 sources), checkpoint loading, apply.

Quick start::

    from ironwave.models import load_model, apply_model
    model = load_model("htdemucs")            # weights from the cache dir (see `ironwave models`)
    stems = apply_model(model, mix)           # mix [2, time] at 44.1 kHz -> [4, 2, time]
"""
from ironwave.models.htdemucs import HTDEMUCS_KWARGS, HTDemucs, SOURCES_4, SOURCES_6, htdemucs_config
from ironwave.models.checkpoints import (CheckpointError, ModelPackage, load_checkpoint, read_package, save_safetensors,
                                         save_th)
from ironwave.models.apply import (BatchedForward, SeparationStats, apply_model, segment_offsets, separate_file,
                                   separate_files, transition_weight)
from ironwave.models.registry import MODELS, ModelNotFound, find_weights, load_model, models_dir
from ironwave.models.streaming import StreamingSeparator, separate_streaming

__all__ = [
    "HTDemucs", "HTDEMUCS_KWARGS", "SOURCES_4", "SOURCES_6", "htdemucs_config",
    "CheckpointError", "ModelPackage", "load_checkpoint", "read_package", "save_th", "save_safetensors",
    "apply_model", "separate_file", "separate_files", "SeparationStats", "segment_offsets", "transition_weight",
    "BatchedForward", "MODELS", "ModelNotFound", "find_weights", "load_model", "models_dir",
    "StreamingSeparator", "separate_streaming",
]
