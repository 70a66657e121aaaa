using ClipSharp.Checkpoints;
using ClipSharp.Imaging;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Modeling;

/// <summary>
/// <see cref="IClipEncoder"/> over a TorchSharp <see cref="ClipModel"/>: arrays in, unnormalised float32 features out.
/// Each call runs in its own dispose scope under <c>inference_mode</c>, so no tensor outlives it.
/// </summary>
public sealed class TorchClipEncoder : IClipEncoder
{
    readonly bool _ownsModel;

    /// <summary>Wraps a model (put in eval mode by the caller, as <see cref="ClipModel.Load"/> leaves it).</summary>
    /// <param name="model">The model.</param>
    /// <param name="ownsModel">Whether <see cref="Dispose"/> disposes <paramref name="model"/>.</param>
    public TorchClipEncoder(ClipModel model, bool ownsModel = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        Model = model;
        _ownsModel = ownsModel;
        Preprocessing = model.CreatePreprocessor().Options;
    }

    /// <summary>The wrapped model.</summary>
    public ClipModel Model { get; }

    /// <inheritdoc />
    public ClipConfig Config => Model.Config;

    /// <inheritdoc />
    public ClipImagePreprocessorOptions Preprocessing { get; }

    /// <inheritdoc />
    public float LogitScale
    {
        get
        {
            using var scope = NewDisposeScope();
            using var _ = torch.inference_mode();
            return Model.LogitScale.detach().exp().item<float>();
        }
    }

    /// <inheritdoc />
    public float? LogitBias => null;

    /// <inheritdoc />
    public float[] EncodeImages(ReadOnlySpan<float> pixels, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        int size = Preprocessing.Size;
        long per = 3L * size * size;
        if (pixels.Length != count * per)
            throw new ArgumentException($"{count} images of 3 × {size} × {size} need {count * per} floats, got {pixels.Length}", nameof(pixels));
        using var scope = NewDisposeScope();
        using var _ = torch.inference_mode();
        var input = torch.empty([count, 3, size, size], ScalarType.Float32);
        pixels.CopyTo(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(TensorBytes.Span(input)));
        return ToArray(Model.EncodeImage(input));
    }

    /// <inheritdoc />
    public float[] EncodeTexts(ReadOnlySpan<long> tokenIds, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        int ctx = Config.ContextLength;
        if (tokenIds.Length != (long)count * ctx)
            throw new ArgumentException($"{count} texts of {ctx} tokens need {(long)count * ctx} ids, got {tokenIds.Length}", nameof(tokenIds));
        using var scope = NewDisposeScope();
        using var _ = torch.inference_mode();
        var input = torch.empty([count, ctx], ScalarType.Int64);
        tokenIds.CopyTo(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(TensorBytes.Span(input)));
        return ToArray(Model.EncodeText(input));
    }

    static float[] ToArray(Tensor features) => features.to(ScalarType.Float32).contiguous().data<float>().ToArray();

    /// <summary>Disposes the model when the encoder owns it.</summary>
    public void Dispose()
    {
        if (_ownsModel) Model.Dispose();
    }
}
