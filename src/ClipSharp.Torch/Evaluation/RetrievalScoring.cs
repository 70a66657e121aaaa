using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ClipSharp.Evaluation;

/// <summary>
/// Image↔text retrieval metrics from feature tensors: both sides L2-normalised, cosine similarities, then
/// <see cref="RetrievalMetrics.Compute"/>. The one place <c>clip eval retrieval</c> (the Evaluator) and training
/// validation (<c>val/i2t_r1</c>, <c>val/t2i_r1</c>) score retrieval, so the two agree on the same features, ties included
/// (a tie with a wrong item counts against the query).
/// </summary>
internal static class RetrievalScoring
{
    /// <summary>Retrieval metrics of image features [N, E] against text features [T, E].</summary>
    /// <param name="imageFeatures">Raw or normalised image features.</param>
    /// <param name="textFeatures">Raw or normalised text features.</param>
    /// <param name="textToImage">For each text row, the image row it describes.</param>
    /// <param name="ks">Recall cut-offs (default 1, 5, 10).</param>
    public static RetrievalMetrics Compute(Tensor imageFeatures, Tensor textFeatures, IReadOnlyList<int> textToImage, IReadOnlyList<int>? ks = null)
    {
        ArgumentNullException.ThrowIfNull(imageFeatures);
        ArgumentNullException.ThrowIfNull(textFeatures);
        using var scope = NewDisposeScope();
        var img = F.normalize(imageFeatures.detach().to(ScalarType.Float32), dim: 1);
        var txt = F.normalize(textFeatures.detach().to(ScalarType.Float32), dim: 1);
        var sim = img.matmul(txt.t()).contiguous();
        return RetrievalMetrics.Compute(sim.data<float>().ToArray(), (int)img.shape[0], textToImage, ks);
    }

    /// <summary>Paired retrieval (image i ↔ text i): Recall@1 in both directions.</summary>
    public static (double ImageToText, double TextToImage) PairedRecallAt1(Tensor imageFeatures, Tensor textFeatures)
    {
        ArgumentNullException.ThrowIfNull(imageFeatures);
        int n = (int)imageFeatures.shape[0];
        var m = Compute(imageFeatures, textFeatures, Enumerable.Range(0, n).ToArray(), [1]);
        return (m.ImageToText.RecallAtK[1], m.TextToImage.RecallAtK[1]);
    }
}
