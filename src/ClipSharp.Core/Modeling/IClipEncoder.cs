using ClipSharp.Imaging;

namespace ClipSharp.Modeling;

/// <summary>
/// A CLIP model behind plain arrays: the one small interface every backend implements (TorchSharp in
/// <c>ClipSharp.Torch</c>, ONNX Runtime in <c>ClipSharp.Onnx</c>), so that decoding, preprocessing, tokenizing,
/// batching, zero-shot classification, search and evaluation are written once, above it.
/// </summary>
/// <remarks>
/// Features are returned as the towers produce them (after the projection, before L2 normalisation), row-major
/// <c>[count, <see cref="EmbedDim"/>]</c> float32. Implementations need not be thread-safe; callers run one batch at a time.
/// </remarks>
public interface IClipEncoder : IDisposable
{
    /// <summary>The architecture (tower shapes, embedding size, context length).</summary>
    ClipConfig Config { get; }

    /// <summary>The preprocessing declared with the weights: input size, mean and std.</summary>
    ClipImagePreprocessorOptions Preprocessing { get; }

    /// <summary>The length of every feature row (<c>Config.EmbedDim</c>).</summary>
    int EmbedDim => Config.EmbedDim;

    /// <summary>The learned temperature as a multiplier, <c>exp(logit_scale)</c> (100 for the OpenAI releases).</summary>
    float LogitScale { get; }

    /// <summary>The learned bias added to the scaled similarities (SigLIP); null for CLIP's softmax models.</summary>
    float? LogitBias { get; }

    /// <summary>Image features of a batch of preprocessed images.</summary>
    /// <param name="pixels">Row-major <c>[count, 3, size, size]</c> normalised pixels, as <see cref="ClipImagePreprocessor.ProcessInto(DecodedImage, Span{float})"/> writes them.</param>
    /// <param name="count">Images in the batch (at least 1).</param>
    /// <returns>Row-major <c>[count, EmbedDim]</c> features, not normalised.</returns>
    float[] EncodeImages(ReadOnlySpan<float> pixels, int count);

    /// <summary>Text features of a batch of token sequences.</summary>
    /// <param name="tokenIds">Row-major <c>[count, Config.ContextLength]</c> token ids, as <see cref="Text.ClipTokenizer.TokenizeBatch"/> makes them (zero-padded, end-of-text last).</param>
    /// <param name="count">Texts in the batch (at least 1).</param>
    /// <returns>Row-major <c>[count, EmbedDim]</c> features, not normalised.</returns>
    float[] EncodeTexts(ReadOnlySpan<long> tokenIds, int count);
}
