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

    /// <summary>
    /// The rows <paramref name="rows"/> (int64 indices) of symmetric InfoNCE over N pairs: the image-to-text
    /// cross-entropies of those images and the text-to-image ones of those texts, each divided by 2N, so that the parts
    /// over a partition of the rows add up to <see cref="Symmetric(Tensor, Tensor, Tensor)"/>. Only n × N logits exist.
    /// </summary>
    public static Tensor SymmetricRows(Tensor imageFeatures, Tensor textFeatures, Tensor logitScale, Tensor rows)
    {
        using var scope = NewDisposeScope();
        var img = F.normalize(imageFeatures, dim: 1);
        var txt = F.normalize(textFeatures, dim: 1);
        var scale = logitScale.exp();
        var perImage = scale.mul(img.index_select(0, rows).matmul(txt.t()));
        var perText = scale.mul(txt.index_select(0, rows).matmul(img.t()));
        using Scalar twiceN = (2.0 * img.shape[0]).ToScalar();
        var sum = F.cross_entropy(perImage, rows, reduction: nn.Reduction.Sum).add(F.cross_entropy(perText, rows, reduction: nn.Reduction.Sum), TorchScalars.One);
        return sum.div(twiceN).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The rows <paramref name="rows"/> of SigLIP's sigmoid loss over N pairs (those images against every text), so
    /// that the parts over a partition of the rows add up to <see cref="Sigmoid"/>. Only n × N logits exist.
    /// </summary>
    public static Tensor SigmoidRows(Tensor imageFeatures, Tensor textFeatures, Tensor logitScale, Tensor logitBias, Tensor rows)
    {
        using var scope = NewDisposeScope();
        var img = F.normalize(imageFeatures, dim: 1);
        var txt = F.normalize(textFeatures, dim: 1);
        long total = img.shape[0], n = rows.shape[0];
        var logits = logitScale.exp().mul(img.index_select(0, rows).matmul(txt.t())).add(logitBias, TorchScalars.One);
        var positive = zeros([n, total], dtype: logits.dtype, device: logits.device).index_put_(ones([n], dtype: logits.dtype), TorchScalars.Arange(n), rows);
        var labels = positive.mul(TorchScalars.Two).add(TorchScalars.MinusOne, TorchScalars.One);
        using var count = ((double)total).ToScalar();
        return F.logsigmoid(labels.mul(logits)).sum().neg().div(count).MoveToOuterDisposeScope();
    }
}
