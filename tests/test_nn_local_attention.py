"""pyvrel.nn local-attention layers: against dense masked attention, shapes, masks, torch.compile."""

import pytest
import torch

from pyvrel import nn as pnn
from pyvrel.ops import reference as ref


def dense_band_attention(q, k, v, half, q_len, kv_len):
    """ActionFormer's semantics written densely: |i - j| <= half, keys < kv_len, rows >= q_len zero."""
    B, H, T, hd = q.shape
    i = torch.arange(T)
    allowed = ((i[:, None] - i[None, :]).abs() <= half)[None] & (i[None, None, :] < kv_len[:, None, None])
    scores = (q @ k.transpose(-1, -2)) * hd ** -0.5
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v  # NaN on rows without keys: all are padded queries here
    return torch.where((i[None, :] < q_len[:, None])[:, None, :, None], out, torch.zeros_like(out))


def test_local_multihead_attention_matches_the_op_with_projections(gen):
    m = pnn.LocalMultiheadAttention(16, 4, 5, rel_bias=True).double()
    with torch.no_grad():
        m.rel_bias.normal_(generator=gen)
    x = torch.randn(2, 11, 16, generator=gen, dtype=torch.float64)
    mem = torch.randn(2, 7, 16, generator=gen, dtype=torch.float64)
    lens, kv_lens = torch.tensor([11, 6]), torch.tensor([7, 3])
    out = m(x, mem, q_lengths=lens, kv_lengths=kv_lens)

    def heads(t):
        return t.view(2, -1, 4, 4).transpose(1, 2)

    o, _ = ref.local_attention_ref(heads(m.q_proj(x)), heads(m.k_proj(mem)), heads(m.v_proj(mem)), 2, 2,
                                   q_lengths=lens, kv_lengths=kv_lens, rel_bias=m.rel_bias)
    expected = m.out_proj(o.transpose(1, 2).reshape(2, 11, 16))
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    assert m.rel_bias.grad is not None and torch.isfinite(m.rel_bias.grad).all()


@pytest.mark.parametrize("backend", ["cpp", "reference"])
def test_local_masked_mhca_matches_dense_actionformer_semantics(backend, gen):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    C, H, T = 16, 4, 20
    m = pnn.LocalMaskedMHCA(C, H, 7, backend=backend).double()
    x = torch.randn(2, C, T, generator=gen, dtype=torch.float64)
    lens = torch.tensor([20, 13])
    mask = (torch.arange(T)[None, :] < lens[:, None])[:, None]
    out, out_mask = m(x, mask)
    assert torch.equal(out_mask, mask)

    q, _ = m.query_conv(x, mask)
    k, _ = m.key_conv(x, mask)
    v, _ = m.value_conv(x, mask)
    q, k, v = (proj(norm(t)).view(2, H, C // H, T).transpose(2, 3) for proj, norm, t in
               ((m.query, m.query_norm, q), (m.key, m.key_norm, k), (m.value, m.value_norm, v)))
    att = dense_band_attention(q, k, v, 3, lens, lens).transpose(2, 3).reshape(2, C, T)
    torch.testing.assert_close(out, m.proj(att) * mask)


def test_local_masked_mhca_downsamples_by_two(gen):
    m = pnn.LocalMaskedMHCA(8, 2, 9, n_qx_stride=2, n_kv_stride=2, use_rel_pe=True)
    x = torch.randn(3, 8, 16, generator=gen)
    mask = (torch.arange(16)[None, :] < torch.tensor([16, 9, 1])[:, None])[:, None]
    out, out_mask = m(x, mask)
    assert out.shape == (3, 8, 8) and out_mask.shape == (3, 1, 8)
    assert out_mask.sum(-1).flatten().tolist() == [8, 5, 1]  # nearest downsampling of the mask
    assert (out * ~out_mask).abs().sum() == 0
    out.sum().backward()
    assert torch.isfinite(m.rel_pe.grad).all() and m.rel_pe.grad.abs().sum() > 0


@pytest.mark.parametrize("strides", [(1, 1), (2, 2)])
def test_transformer_block(strides, gen):
    blk = pnn.TransformerBlock(16, 4, strides, mha_win_size=5, path_pdrop=0.1).double()
    x = torch.randn(2, 16, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = (torch.arange(12)[None, :] < torch.tensor([12, 7])[:, None])[:, None]
    blk.eval()
    out, out_mask = blk(x, mask)
    s = strides[0]
    assert out.shape == (2, 16, 12 // s) and out_mask.shape == (2, 1, 12 // s)
    assert (out * ~out_mask).abs().sum() == 0
    # at init (drop-path scale 1e-4) the block is close to its skip path
    skip = x if s == 1 else torch.nn.functional.max_pool1d(x, s + 1, s, (s + 1) // 2)
    torch.testing.assert_close(out, skip * out_mask, atol=1e-2, rtol=0)
    blk.train()
    out, _ = blk(x, mask)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    ref_blk = pnn.TransformerBlock(16, 4, strides, mha_win_size=5, backend="reference").double()
    ref_blk.load_state_dict({k: v for k, v in blk.state_dict().items() if "drop_path" not in k})
    cpp_blk = pnn.TransformerBlock(16, 4, strides, mha_win_size=5, backend="cpp").double()
    cpp_blk.load_state_dict(ref_blk.state_dict())
    torch.testing.assert_close(cpp_blk(x, mask)[0], ref_blk(x, mask)[0])


def test_local_multihead_attention_compiles_fullgraph(gen):
    torch._dynamo.reset()
    m = pnn.LocalMultiheadAttention(16, 2, 5, rel_bias=True)
    x = torch.randn(2, 9, 16, generator=gen, requires_grad=True)
    lens = torch.tensor([9, 4])
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    out = compiled(x, q_lengths=lens, kv_lengths=lens)
    torch.testing.assert_close(out, m(x, q_lengths=lens, kv_lengths=lens))
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and m.rel_bias.grad is not None
