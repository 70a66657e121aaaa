namespace ClipSharp.Imaging;

/// <summary>Settings of <see cref="ClipImagePreprocessor"/>. The defaults are those of OpenAI CLIP.</summary>
public sealed record ClipImagePreprocessorOptions
{
    /// <summary>CLIP's per-channel normalisation mean (R, G, B).</summary>
    public static readonly (float R, float G, float B) ClipMean = (0.48145466f, 0.4578275f, 0.40821073f);

    /// <summary>CLIP's per-channel normalisation standard deviation (R, G, B).</summary>
    public static readonly (float R, float G, float B) ClipStd = (0.26862954f, 0.26130258f, 0.27577711f);

    /// <summary>Output side length n: the short side is resized to n, then an n × n centre crop is taken.</summary>
    public int Size { get; init; } = 224;

    /// <summary>Per-channel mean subtracted after scaling to [0, 1].</summary>
    public (float R, float G, float B) Mean { get; init; } = ClipMean;

    /// <summary>Per-channel standard deviation divided by after subtracting the mean. Must be non-zero.</summary>
    public (float R, float G, float B) Std { get; init; } = ClipStd;

    /// <summary>Decompression-bomb guard: images with more pixels are refused before decoding.</summary>
    public long MaxImagePixels { get; init; } = ImageDecoder.DefaultMaxImagePixels;
}
