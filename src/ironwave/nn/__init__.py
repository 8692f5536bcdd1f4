"""Neural audio layers: convolutions, recurrent layers with streaming state,
GroupNorm (standard / Kahan / Welford), attention with torch's weight layout,
U-Net blocks, a ping-pong Sequential, captured streaming inference and a
hybrid CPU/GPU pipeline."""
from ironwave.nn.layers import (GRU, LSTM, Activation, ChannelGroupNorm, Conv1d, Conv2d, ConvTranspose1d,
                                ConvTranspose2d, FeedForward, GroupNorm, LayerNorm, LayerScale, Linear, group_stats)
from ironwave.nn.attention import CrossAttention, CrossTransformerLayer, MultiheadAttention, TransformerLayer
from ironwave.nn.unet import DecoderBlock, EncoderBlock, SkipStore, UNet1d
from ironwave.nn.sequential import PingPongSequential
from ironwave.nn.streaming import HybridPipeline, Stage, StreamingInference

__all__ = [
    "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "LSTM", "GRU", "GroupNorm", "ChannelGroupNorm",
    "LayerNorm", "LayerScale", "FeedForward", "Linear", "Activation", "group_stats",
    "MultiheadAttention", "CrossAttention", "TransformerLayer", "CrossTransformerLayer",
    "SkipStore", "EncoderBlock", "DecoderBlock", "UNet1d", "PingPongSequential",
    "StreamingInference", "Stage", "HybridPipeline",
]
