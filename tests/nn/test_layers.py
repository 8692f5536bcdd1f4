"""ironwave.nn layers against torch (parameter layout, streaming == offline, GroupNorm accuracy)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st

import ironwave.nn as inn
from ironwave.errors import InvalidParameter


def _blocks(total: int, sizes: list[int]) -> list[tuple[int, int]]:
    out, pos, i = [], 0, 0
    while pos < total:
        n = sizes[i % len(sizes)]
        out.append((pos, min(total, pos + n)))
        pos += n
        i += 1
    return out


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6), dilation=st.integers(1, 3))
def test_conv1d_streaming_equals_offline(sizes, dilation):
    torch.manual_seed(0)
    conv = inn.Conv1d(3, 5, 4, dilation=dilation)
    x = torch.randn(2, 3, 150)
    with torch.no_grad():
        ref = conv.causal_forward(x)
        conv.reset_state()
        got = torch.cat([conv.stream(x[..., a:b]) for a, b in _blocks(150, sizes)], -1)
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("klass, ref_klass", [(inn.LSTM, torch.nn.LSTM), (inn.GRU, torch.nn.GRU)])
@settings(max_examples=10, deadline=None)
@given(sizes=st.lists(st.integers(1, 30), min_size=1, max_size=5))
def test_rnn_streaming_equals_offline(klass, ref_klass, sizes):
    torch.manual_seed(1)
    ref = ref_klass(6, 8, num_layers=2, batch_first=True)
    rnn = klass(6, 8, num_layers=2, batch_first=True)
    rnn.load_state_dict(ref.state_dict())  # torch's parameter layout
    x = torch.randn(3, 90, 6)
    with torch.no_grad():
        want = ref(x)[0]
        rnn.reset_state()
        got = torch.cat([rnn.stream(x[:, a:b]) for a, b in _blocks(90, sizes)], 1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_bidirectional_rnn_refuses_to_stream():
    rnn = inn.LSTM(4, 4, bidirectional=True, batch_first=True)
    with pytest.raises(InvalidParameter, match="bidirectional"):
        rnn.stream(torch.randn(1, 5, 4))


def _gn64(x: torch.Tensor, groups: int, eps: float = 1e-5) -> torch.Tensor:
    return torch.nn.functional.group_norm(x.double(), groups, eps=eps)


@pytest.mark.parametrize("algorithm", ["standard", "kahan", "welford"])
@pytest.mark.parametrize("offset", [0.0, 300.0])
def test_groupnorm_algorithms_against_float64(algorithm, offset):
    torch.manual_seed(2)
    x = torch.randn(2, 8, 4096) * 0.01 + offset
    gn = inn.GroupNorm(4, 8, algorithm=algorithm)
    with torch.no_grad():
        gn.weight.uniform_(0.5, 1.5)
        gn.bias.uniform_(-0.1, 0.1)
        ref = torch.nn.functional.group_norm(x.double(), 4, gn.weight.double(), gn.bias.double(), 1e-5)
        err = (gn(x).double() - ref).abs().max().item()
    # float32 input quantisation alone limits accuracy at a large offset (ulp(300) / 0.01 ~ 3e-3)
    assert err < (5e-6 if offset == 0 else 1e-2), err


def test_kahan_sum_survives_cancellation_that_a_plain_tree_loses():
    # [1e8, 1, -1e8, 1, ...]: float32 pairwise sums drop every 1; the TwoSum-compensated tree keeps them
    n = 1 << 12
    x = torch.ones(1, 1, n)
    x[..., 0::4] = 1e8
    x[..., 2::4] = -1e8
    exact = float(n // 2)
    s = x.clone()
    while s.shape[-1] > 1:
        s = s[..., 0::2] + s[..., 1::2]
    assert abs(s.item() - exact) > 100  # the plain tree really fails here
    kahan_mean = inn.group_stats(x, 1, "kahan")[0].item()
    assert abs(kahan_mean * n - exact) < 1e-3 * exact


def test_welford_variance_survives_offset_that_one_pass_formula_loses():
    # variance of 1e-2-scale noise on a 1000 offset: E[x^2] - E[x]^2 in float32 cancels catastrophically
    torch.manual_seed(3)
    x = torch.randn(1, 1, 1 << 14) * 1e-2 + 1000.0
    var64 = x.double().var(unbiased=False).item()
    naive = (x.square().mean() - x.mean().square()).item()
    e_naive = abs(naive - var64) / var64
    assert e_naive > 0.5
    for algo in ("welford", "kahan", "standard"):
        v = inn.group_stats(x, 1, algo)[1].item()
        assert abs(v - var64) / var64 < 1e-3, (algo, v, var64)


def test_groupnorm_standard_matches_torch_and_loads_its_state():
    ref = torch.nn.GroupNorm(2, 6)
    with torch.no_grad():
        ref.weight.normal_()
        ref.bias.normal_()
    for algo in ("standard", "kahan", "welford"):
        gn = inn.GroupNorm(2, 6, algorithm=algo)
        gn.load_state_dict(ref.state_dict())
        x = torch.randn(3, 6, 5, 7)
        torch.testing.assert_close(gn(x), ref(x), atol=2e-5, rtol=1e-5)
    with pytest.raises(InvalidParameter, match="algorithm"):
        inn.GroupNorm(2, 6, algorithm="fast")


@pytest.mark.parametrize("batch_first", [True, False])
def test_attention_loads_torch_state_dict(batch_first):
    torch.manual_seed(4)
    ref = torch.nn.MultiheadAttention(16, 4, batch_first=batch_first).eval()
    with torch.no_grad():
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    ours = inn.MultiheadAttention(16, 4, batch_first=batch_first)
    ours.load_state_dict(ref.state_dict(), strict=True)
    shape_q = (2, 9, 16) if batch_first else (9, 2, 16)
    shape_k = (2, 13, 16) if batch_first else (13, 2, 16)
    q, k = torch.randn(shape_q), torch.randn(shape_k)
    with torch.no_grad():
        torch.testing.assert_close(ours(q)[0], ref(q, q, q, need_weights=False)[0], atol=1e-5, rtol=1e-5)
        cross = inn.CrossAttention(16, 4, batch_first=batch_first)
        cross.load_state_dict(ref.state_dict())
        torch.testing.assert_close(cross(q, k)[0], ref(q, k, k, need_weights=False)[0], atol=1e-5, rtol=1e-5)
        v = torch.randn(shape_k)
        torch.testing.assert_close(ours(q, k, v)[0], ref(q, k, v, need_weights=False)[0], atol=1e-5, rtol=1e-5)


def test_transformer_layer_matches_torch_encoder_layer_without_extras():
    torch.manual_seed(5)
    ref = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, activation=torch.nn.functional.gelu,
                                           batch_first=True, norm_first=True).eval()
    ours = inn.TransformerLayer(16, 4, 32, layer_scale=False, norm_out=False).eval()
    missing, unexpected = ours.load_state_dict(ref.state_dict(), strict=False)
    assert not missing and set(unexpected) <= {"dropout.p"}
    x = torch.randn(2, 11, 16)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


def test_feedforward_and_unet_shapes():
    ff = inn.FeedForward(8, 32)
    assert ff(torch.randn(2, 5, 8)).shape == (2, 5, 8)
    u = inn.UNet1d(2, 3, channels=4, depth=3)
    for n in (1000, 1001, 64):
        assert u(torch.randn(2, 2, n)).shape == (2, 3, n)
    store = inn.SkipStore()
    with pytest.raises(InvalidParameter, match="empty"):
        store.pop()


@pytest.mark.parametrize("shape,groups", [((2, 6, 5000), 1), ((1, 8, 40, 33), 4), ((3, 12, 700), 3)])
@pytest.mark.parametrize("affine", [True, False])
def test_groupnorm_split_reduction_matches_torch(shape, groups, affine):
    """The CUDA split-row path (used when few long rows) equals F.group_norm, both layouts."""
    from ironwave.nn.layers import _group_norm_split

    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=g) * 3 + 2.5
    c = shape[1]
    w = torch.randn(c, generator=g) if affine else None
    b = torch.randn(c, generator=g) if affine else None
    want = torch.nn.functional.group_norm(x, groups, w, b, 1e-5)
    torch.testing.assert_close(_group_norm_split(x, groups, w, b, 1e-5), want, rtol=1e-5, atol=1e-5)
    if x.ndim == 3:  # channels-last face (transformer norm_out): [batch, time, channels]
        got = _group_norm_split(x.transpose(1, 2).contiguous(), groups, w, b, 1e-5, channel_last=True)
        torch.testing.assert_close(got.transpose(1, 2), want, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
def test_groupnorm_split_path_is_taken_on_cuda_and_matches_torch():
    from ironwave.nn import layers

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x = torch.randn(1, 48, 90000, device="cuda")
    gn = inn.GroupNorm(1, 48).cuda()
    torch.nn.init.normal_(gn.weight)
    torch.nn.init.normal_(gn.bias)
    assert layers._use_split(x, 1)
    torch.testing.assert_close(gn(x), torch.nn.functional.group_norm(x, 1, gn.weight, gn.bias, 1e-5),
                               rtol=1e-5, atol=1e-5)
    cg = inn.ChannelGroupNorm(1, 48).cuda()
    xt = x.transpose(1, 2).contiguous()
    torch.testing.assert_close(cg(xt).transpose(1, 2), torch.nn.functional.group_norm(x, 1, cg.weight, cg.bias, 1e-5),
                               rtol=1e-5, atol=1e-5)
