#!/usr/bin/env python3
"""Cross-checks ClipSharp's OpenCLIP-style towers (exact GELU, 32-wide heads, non-4x MLPs) against PyTorch.

Builds a small CLIP with torch.nn layers (nn.GELU, nn.MultiheadAttention, nn.LayerNorm), random weights, saves its
state_dict with torch.save, its OpenCLIP model config, and inputs; runs `./clip encode` on them; compares the
embeddings. Needs Debian's python3-torch (run with /usr/bin/python3). Usage: scripts/crosscheck-openclip-gelu.py [WORKDIR]
"""
import json, os, struct, subprocess, sys, tempfile
import torch
import torch.nn as nn

CFG = {"embed_dim": 48,
       "vision_cfg": {"image_size": 64, "layers": 3, "width": 96, "head_width": 32, "mlp_ratio": 2.75, "patch_size": 16},
       "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 3, "mlp_ratio": 3.5}}


class Block(nn.Module):
    def __init__(self, width, heads, mlp_width):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, mlp_width))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(mlp_width, width))

    def forward(self, x, mask):  # x: [L, N, D]
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Stack(nn.Module):
    def __init__(self, width, layers, heads, mlp_width):
        super().__init__()
        self.resblocks = nn.ModuleList([Block(width, heads, mlp_width) for _ in range(layers)])

    def forward(self, x, mask=None):
        for b in self.resblocks:
            x = b(x, mask)
        return x


class Visual(nn.Module):
    def __init__(self, v, embed):
        super().__init__()
        w, p, grid = v["width"], v["patch_size"], v["image_size"] // v["patch_size"]
        self.conv1 = nn.Conv2d(3, w, p, p, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(w) * w ** -0.5)
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, w) * w ** -0.5)
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Stack(w, v["layers"], w // v["head_width"], int(w * v["mlp_ratio"]))
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.randn(w, embed) * w ** -0.5)

    def forward(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], 1) + self.positional_embedding)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0]) @ self.proj


class Clip(nn.Module):
    def __init__(self, c):
        super().__init__()
        t = c["text_cfg"]
        self.visual = Visual(c["vision_cfg"], c["embed_dim"])
        self.transformer = Stack(t["width"], t["layers"], t["heads"], int(t["width"] * t["mlp_ratio"]))
        self.token_embedding = nn.Embedding(t["vocab_size"], t["width"])
        self.positional_embedding = nn.Parameter(torch.randn(t["context_length"], t["width"]) * 0.01)
        self.ln_final = nn.LayerNorm(t["width"])
        self.text_projection = nn.Parameter(torch.randn(t["width"], c["embed_dim"]) * t["width"] ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(4.6052))
        n = t["context_length"]
        self.register_buffer("mask", torch.full((n, n), float("-inf")).triu(1), persistent=False)

    def encode_text(self, ids):
        x = self.token_embedding(ids) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2), self.mask).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), ids.argmax(-1)] @ self.text_projection


def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for k, t in tensors.items():
        b = t.contiguous().numpy().tobytes()
        header[k] = {"dtype": {torch.float32: "F32", torch.int64: "I64"}[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b); off += len(b)
    h = json.dumps(header).encode(); h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h)
        for b in blobs: f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]; header = json.loads(f.read(n)); data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__": continue
        a, b = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(data[a:b]), dtype={"F32": torch.float32, "I64": torch.int64}[v["dtype"]]).reshape(v["shape"])
    return out


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    work = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="gelu-crosscheck-")
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    model = Clip(CFG).eval()
    for p in model.parameters():  # non-trivial biases and norms, so every weight matters
        if p.dim() == 1 and p.numel() > 1:
            with torch.no_grad(): p.add_(torch.randn_like(p) * 0.1)
    torch.save(model.state_dict(), os.path.join(work, "model.pt"))
    with open(os.path.join(work, "open_clip_config.json"), "w") as f:
        json.dump({"model_cfg": CFG}, f)
    pixels = torch.randn(4, 3, 64, 64)
    ids = torch.zeros(4, 77, dtype=torch.int64)
    for i, n in enumerate([3, 9, 30, 76]):
        ids[i, 0] = 49406; ids[i, 1:n] = torch.randint(1, 49000, (n - 1,)); ids[i, n] = 49407
    save_safetensors(os.path.join(work, "inputs.safetensors"), {"pixel_values": pixels, "input_ids": ids})
    with torch.no_grad():
        img, txt = model.visual(pixels), model.encode_text(ids)
    out = os.path.join(work, "clipsharp.safetensors")
    subprocess.run([os.path.join(root, "clip"), "encode", "--model", os.path.join(work, "model.pt"),
                    "--pixel-values", os.path.join(work, "inputs.safetensors"), "--input-ids", os.path.join(work, "inputs.safetensors"),
                    "-o", out], check=True)
    ours = load_safetensors(out)
    worst = 0.0
    for name, ref in [("image_embeds", img), ("text_embeds", txt)]:
        err = ((ours[name] - ref).abs().max() / ref.abs().max()).item()
        worst = max(worst, err)
        print(f"{name}: max |ClipSharp - PyTorch| / max |PyTorch| = {err:.2e}")
    print("OK" if worst < 1e-5 else "MISMATCH")
    sys.exit(0 if worst < 1e-5 else 1)


if __name__ == "__main__":
    main()
