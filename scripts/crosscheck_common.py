"""Pieces the cross-check scripts share: the CLIP text tower and transformer blocks in torch.nn layers, safetensors
reading and writing (no extra package), and running `./clip encode` and comparing its embeddings with PyTorch's.
Import after debian_torch.require()."""
import json, os, struct, subprocess
import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-5  # max |ClipSharp - PyTorch| / max |PyTorch| per output (issue 10)


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), the OpenAI models' activation."""

    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(ln_1(x)), then x + mlp(ln_2(x)); the MLP is c_fc, activation, c_proj."""

    def __init__(self, width, heads, mlp_width, activation):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, mlp_width))
        self.mlp.add_module("gelu", activation())
        self.mlp.add_module("c_proj", nn.Linear(mlp_width, width))

    def forward(self, x, mask):  # x: [L, N, D]
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Stack(nn.Module):
    def __init__(self, width, layers, heads, mlp_width, activation):
        super().__init__()
        self.resblocks = nn.ModuleList([Block(width, heads, mlp_width, activation) for _ in range(layers)])

    def forward(self, x, mask=None):
        for b in self.resblocks:
            x = b(x, mask)
        return x


class Clip(nn.Module):
    """An image tower `visual` and the causal text transformer, named as the reference state_dict."""

    def __init__(self, visual, embed, context, vocab, width, heads, layers, mlp_width, activation):
        super().__init__()
        self.visual = visual
        self.transformer = Stack(width, layers, heads, mlp_width, activation)
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(torch.randn(context, width) * 0.01)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.randn(width, embed) * width ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(4.6052))
        self.register_buffer("mask", torch.full((context, context), float("-inf")).triu(1), persistent=False)

    def encode_text(self, ids):
        x = self.token_embedding(ids) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2), self.mask).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), ids.argmax(-1)] @ self.text_projection


def perturb(model):
    """Non-trivial biases, norm weights and BatchNorm statistics, so that every weight matters."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1 and p.numel() > 1:
                p.add_(torch.randn_like(p) * 0.1)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.1)
                m.running_var.copy_(torch.rand_like(m.running_var) + 0.5)


def token_ids(n, context, vocab):
    """n rows of random ids that end in the largest id (the end-of-text position the towers pool at)."""
    ids = torch.zeros(n, context, dtype=torch.int64)
    for i in range(n):
        length = 3 + (7 * i) % (context - 4)
        ids[i, 0] = vocab - 2
        ids[i, 1:length] = torch.randint(1, vocab - 2, (length - 1,))
        ids[i, length] = vocab - 1
    return ids


_DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for k, t in tensors.items():
        b = t.contiguous().numpy().tobytes()
        header[k] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b); off += len(b)
    h = json.dumps(header).encode(); h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h)
        for b in blobs: f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]; header = json.loads(f.read(n)); data = f.read()
    names = {v: k for k, v in _DTYPES.items()}
    out = {}
    for k, v in header.items():
        if k == "__metadata__": continue
        a, b = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(data[a:b]), dtype=names[v["dtype"]]).reshape(v["shape"])
    return out


def clip_encode(work, model_path, pixels, ids, extra=()):
    """Runs `./clip encode` on pixels and ids (saved to WORK/inputs.safetensors) and returns its outputs."""
    inputs = os.path.join(work, "inputs.safetensors")
    save_safetensors(inputs, {"pixel_values": pixels, "input_ids": ids})
    out = os.path.join(work, "clipsharp.safetensors")
    subprocess.run([os.path.join(ROOT, "clip"), "encode", "--model", model_path, *extra,
                    "--pixel-values", inputs, "--input-ids", inputs, "-o", out], check=True)
    return load_safetensors(out)


def relative_error(ours, ref):
    """max |ours - ref| / max |ref|."""
    return ((ours - ref).abs().max() / ref.abs().max()).item()
