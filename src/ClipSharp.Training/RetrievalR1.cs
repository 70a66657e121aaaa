using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ClipSharp.Training;

/// <summary>Recall@1 of paired retrieval (pair i is the i-th image and the i-th caption), used for validation during training.</summary>
internal static class RetrievalR1
{
    /// <summary>Fraction of images whose most similar caption is their own, and of captions whose most similar image is their own.</summary>
    public static (double ImageToText, double TextToImage) Compute(Tensor imageFeatures, Tensor textFeatures)
    {
        using var scope = NewDisposeScope();
        var sim = F.normalize(imageFeatures, dim: 1).matmul(F.normalize(textFeatures, dim: 1).t());
        long n = sim.shape[0];
        var target = TorchScalars.Arange(n);
        double i2t = sim.argmax(1).eq(target).to(ScalarType.Float64).mean().item<double>();
        double t2i = sim.argmax(0).eq(target).to(ScalarType.Float64).mean().item<double>();
        return (i2t, t2i);
    }
}
