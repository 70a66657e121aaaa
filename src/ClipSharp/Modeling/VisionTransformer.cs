using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ClipSharp.Modeling;

#pragma warning disable IDE1006 // snake_case fields are the state_dict keys

/// <summary>
/// CLIP's Vision Transformer: patch-embedding convolution (no bias), class token, positional embedding,
/// <c>ln_pre</c> before the transformer, <c>ln_post</c> on the class token, then the projection <c>proj</c> (no bias).
/// </summary>
public sealed class VisionTransformer : ImageTower
{
    private readonly Conv2d conv1;
    private readonly Parameter class_embedding;
    private readonly Parameter positional_embedding;
    private readonly ClipLayerNorm ln_pre;
    private readonly Transformer transformer;
    private readonly ClipLayerNorm ln_post;
    private readonly Parameter proj;
    private readonly int resolution;

    /// <summary>Builds the tower with the reference initialisation scale for the embeddings.</summary>
    public VisionTransformer(int inputResolution, int patchSize, int width, int layers, int heads, int outputDim) : base("visual")
    {
        resolution = inputResolution;
        int grid = inputResolution / patchSize;
        using Scalar scale = Math.Pow(width, -0.5).ToScalar();
        conv1 = nn.Conv2d(3, width, kernel_size: patchSize, stride: patchSize, bias: false);
        class_embedding = nn.Parameter(torch.randn(width).mul(scale));
        positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, width).mul(scale));
        ln_pre = new ClipLayerNorm(width);
        transformer = new Transformer(width, layers, heads, causal: false);
        ln_post = new ClipLayerNorm(width);
        proj = nn.Parameter(torch.randn(width, outputDim).mul(scale));
        RegisterComponents();
        transformer.BlockProbe = (i, t) => Report($"visual.transformer.resblocks.{i}.out", t);
    }

    /// <inheritdoc />
    public override int InputResolution => resolution;

    /// <summary>The transformer stack (exposed for freezing and checkpointing).</summary>
    public Transformer Transformer => transformer;

    /// <inheritdoc />
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var x = conv1.forward(pixels);                       // [N, W, g, g]
        Report("visual.conv1.out", x);
        long n = x.shape[0], w = x.shape[1];
        x = x.reshape(n, w, -1).permute(0, 2, 1);            // [N, g², W]
        var cls = class_embedding.to(x.dtype).expand(n, 1, w);
        x = torch.cat([cls, x], dim: 1).add(positional_embedding.to(x.dtype), TorchScalars.One);
        x = ln_pre.forward(x);
        Report("visual.ln_pre.out", x);
        x = transformer.forward(x);
        var pooled = ln_post.forward(x.select(1, 0));
        Report("visual.ln_post.out", pooled);
        return pooled.matmul(proj.to(pooled.dtype)).MoveToOuterDisposeScope();
    }
}
