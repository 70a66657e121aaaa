using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ClipSharp.Training;

/// <summary>The training objectives over a batch of N image–text pairs.</summary>
public static class ContrastiveLoss
{
    /// <summary>
    /// CLIP's symmetric InfoNCE: with logits = exp(logit_scale) · normalised images · normalised textsᵀ and the
    /// true pairs on the diagonal, ½ · (cross-entropy over rows + cross-entropy over columns).
    /// </summary>
    /// <param name="logitsPerImage">[N, N] scaled similarities, images along rows.</param>
    public static Tensor Symmetric(Tensor logitsPerImage)
    {
        using var scope = NewDisposeScope();
        long n = logitsPerImage.shape[0];
        if (logitsPerImage.dim() != 2 || logitsPerImage.shape[1] != n)
            throw new ArgumentException($"expected square logits, got [{string.Join(", ", logitsPerImage.shape)}]");
        var labels = TorchScalars.Arange(n, logitsPerImage.device);
        var loss = F.cross_entropy(logitsPerImage, labels).add(F.cross_entropy(logitsPerImage.t(), labels), TorchScalars.One).div(TorchScalars.Two);
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>Symmetric InfoNCE from unnormalised features and the log-scale parameter.</summary>
    public static Tensor Symmetric(Tensor imageFeatures, Tensor textFeatures, Tensor logitScale)
    {
        using var scope = NewDisposeScope();
        var img = F.normalize(imageFeatures, dim: 1);
        var txt = F.normalize(textFeatures, dim: 1);
        return Symmetric(logitScale.exp() * img.matmul(txt.t())).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// SigLIP's pairwise sigmoid loss (Zhai et al., 2023): every pair is a binary problem, +1 on the diagonal and
    /// −1 elsewhere, logits = exp(logit_scale) · cos + bias; loss = −Σ log σ(label · logit) / N.
    /// </summary>
    public static Tensor Sigmoid(Tensor imageFeatures, Tensor textFeatures, Tensor logitScale, Tensor logitBias)
    {
        using var scope = NewDisposeScope();
        var img = F.normalize(imageFeatures, dim: 1);
        var txt = F.normalize(textFeatures, dim: 1);
        long n = img.shape[0];
        var logits = logitScale.exp().mul(img.matmul(txt.t())).add(logitBias, TorchScalars.One);
        var labels = eye(n, device: logits.device, dtype: logits.dtype).mul(TorchScalars.Two).add(TorchScalars.MinusOne, TorchScalars.One);
        using var count = ((double)n).ToScalar();
        var loss = F.logsigmoid(labels.mul(logits)).sum().neg().div(count);
        return loss.MoveToOuterDisposeScope();
    }
}
