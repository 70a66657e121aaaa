#!/usr/bin/python3
"""Cross-checks ClipSharp's OpenCLIP-style towers (exact GELU, 32-wide heads, non-4x MLPs) against PyTorch.

Builds a small CLIP with torch.nn layers (nn.GELU, nn.MultiheadAttention, nn.LayerNorm), random weights, saves its
state_dict with torch.save, its OpenCLIP model config, and inputs; runs `./clip encode` on them; compares the
embeddings. Installs Debian's python3-torch when missing. Usage: scripts/crosscheck-openclip-gelu.py [WORKDIR]
"""
import json, os, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debian_torch

debian_torch.require()

import torch
import torch.nn as nn
from crosscheck_common import Clip, Stack, TOLERANCE, clip_encode, perturb, relative_error, token_ids

CFG = {"embed_dim": 48,
       "vision_cfg": {"image_size": 64, "layers": 3, "width": 96, "head_width": 32, "mlp_ratio": 2.75, "patch_size": 16},
       "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 3, "mlp_ratio": 3.5}}


class Visual(nn.Module):
    def __init__(self, v, embed):
        super().__init__()
        w, p, grid = v["width"], v["patch_size"], v["image_size"] // v["patch_size"]
        self.conv1 = nn.Conv2d(3, w, p, p, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(w) * w ** -0.5)
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, w) * w ** -0.5)
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Stack(w, v["layers"], w // v["head_width"], int(w * v["mlp_ratio"]), nn.GELU)
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.randn(w, embed) * w ** -0.5)

    def forward(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], 1) + self.positional_embedding)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0]) @ self.proj


def build(c):
    t = c["text_cfg"]
    return Clip(Visual(c["vision_cfg"], c["embed_dim"]), c["embed_dim"], t["context_length"], t["vocab_size"],
                t["width"], t["heads"], t["layers"], int(t["width"] * t["mlp_ratio"]), nn.GELU)


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="gelu-crosscheck-")
    os.makedirs(work, exist_ok=True)
    torch.manual_seed(0)
    model = build(CFG).eval()
    perturb(model)
    torch.save(model.state_dict(), os.path.join(work, "model.pt"))
    with open(os.path.join(work, "open_clip_config.json"), "w") as f:
        json.dump({"model_cfg": CFG}, f)
    pixels = torch.randn(4, 3, 64, 64)
    ids = token_ids(4, 77, 49408)
    with torch.no_grad():
        img, txt = model.visual(pixels), model.encode_text(ids)
    # model.pt is not under the hub's weight names, so the config is passed explicitly.
    ours = clip_encode(work, os.path.join(work, "model.pt"), pixels, ids, ["--config", os.path.join(work, "open_clip_config.json")])
    worst = 0.0
    for name, ref in [("image_embeds", img), ("text_embeds", txt)]:
        err = relative_error(ours[name], ref)
        worst = max(worst, err)
        print(f"{name}: max |ClipSharp - PyTorch| / max |PyTorch| = {err:.2e}")
    print("OK" if worst < TOLERANCE else "MISMATCH")
    sys.exit(0 if worst < TOLERANCE else 1)


if __name__ == "__main__":
    main()
