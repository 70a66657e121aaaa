using ClipSharp.Modeling;

namespace ClipSharp.Benchmarks;

/// <summary>
/// Analytic FLOP counts (2 × multiply-adds of every matrix product and convolution; elementwise work,
/// LayerNorm and softmax not counted), defined as the PyTorch baseline's <c>torch_anchor.py flops</c> defines them.
/// </summary>
public static class FlopCounts
{
    /// <summary>Multiply-adds of <paramref name="layers"/> pre-LN transformer blocks on one sequence (dense attention).</summary>
    public static double TransformerMacs(long tokens, long width, long layers, long mlp)
    {
        double qkv = (double)tokens * width * 3 * width;
        double attn = 2.0 * tokens * tokens * width;
        double output = (double)tokens * width * width;
        double ffn = 2.0 * tokens * width * mlp;
        return layers * (qkv + attn + output + ffn);
    }

    /// <summary>FLOP of one image through a CLIP image tower (ViT or modified ResNet), projection included.</summary>
    public static double ImageTower(ClipConfig c)
    {
        ArgumentNullException.ThrowIfNull(c);
        if (c.IsVit)
        {
            long p = c.VisionPatchSize!.Value, w = c.VisionWidth, n = (c.ImageResolution / p) * (c.ImageResolution / p);
            double macs = (double)n * w * 3 * p * p + TransformerMacs(n + 1, w, c.VisionLayers[0], c.VisionMlpWidth) + (double)w * c.EmbedDim;
            return 2 * macs;
        }
        return 2 * ResNetMacs(c);
    }

    private static double ResNetMacs(ClipConfig c)
    {
        long r = c.ImageResolution, w = c.VisionWidth;
        double macs = 0;
        long s = (r + 1) / 2;                                     // stem: three 3×3 convs at half resolution (rounded up)
        macs += (double)s * s * (w / 2) * 3 * 9;
        macs += (double)s * s * (w / 2) * (w / 2) * 9;
        macs += (double)s * s * w * (w / 2) * 9;
        s /= 2;                                                   // average pool
        long inplanes = w;
        for (int stage = 0; stage < 4; stage++)
        {
            long planes = w << stage;
            for (int b = 0; b < c.VisionLayers[stage]; b++)
            {
                int stride = stage > 0 && b == 0 ? 2 : 1;
                long so = s / stride;
                macs += (double)s * s * planes * inplanes;        // conv1 1×1
                macs += (double)s * s * planes * planes * 9;      // conv2 3×3 (before the anti-aliasing pool)
                macs += (double)so * so * planes * 4 * planes;    // conv3 1×1
                if (stride > 1 || inplanes != planes * 4) macs += (double)so * so * planes * 4 * inplanes; // shortcut
                inplanes = planes * 4;
                s = so;
            }
        }
        long tokens = s * s + 1, ch = w * 32;                     // attention pool: one query over all tokens
        macs += (double)ch * ch + 2.0 * tokens * ch * ch + 2.0 * tokens * ch + (double)ch * c.EmbedDim;
        return macs;
    }

    /// <summary>FLOP of one text through the text tower (all context positions, projection of the EOT token).</summary>
    public static double TextTower(ClipConfig c)
    {
        ArgumentNullException.ThrowIfNull(c);
        return 2 * (TransformerMacs(c.ContextLength, c.TransformerWidth, c.TransformerLayers, c.TextMlpWidth)
                    + (double)c.TransformerWidth * c.EmbedDim);
    }

    /// <summary>FLOP of one training sample (forward × 3 for forward + backward), including its row of the logits.</summary>
    public static double TrainSample(ClipConfig c, int batch) =>
        3 * (ImageTower(c) + TextTower(c) + 2.0 * batch * c.EmbedDim);
}
