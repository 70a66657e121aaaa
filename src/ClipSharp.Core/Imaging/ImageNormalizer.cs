namespace ClipSharp.Imaging;

/// <summary>
/// torchvision's <c>ToTensor</c> followed by <c>Normalize</c>: each byte is divided by 255 in float32
/// (a true division), then (x − mean) / std in float32, written channel-major (CHW).
/// </summary>
internal static class ImageNormalizer
{
    /// <summary>Writes normalised CHW floats for interleaved RGB bytes.</summary>
    /// <param name="rgb">width × height × 3 interleaved RGB bytes.</param>
    /// <param name="pixelCount">width × height.</param>
    /// <param name="mean">Per-channel mean.</param>
    /// <param name="std">Per-channel standard deviation.</param>
    /// <param name="destination">At least 3 × pixelCount floats; channel c occupies [c·pixelCount, (c+1)·pixelCount).</param>
    public static void ToNormalizedChw(ReadOnlySpan<byte> rgb, int pixelCount, (float R, float G, float B) mean, (float R, float G, float B) std, Span<float> destination)
    {
        if (rgb.Length < pixelCount * 3) throw new ArgumentException("Too few RGB bytes.", nameof(rgb));
        if (destination.Length < pixelCount * 3) throw new ArgumentException($"The destination needs {pixelCount * 3} floats, got {destination.Length}.", nameof(destination));
        Span<float> lut = stackalloc float[3 * 256];
        BuildTable(mean, std, lut);
        var r = destination[..pixelCount];
        var g = destination.Slice(pixelCount, pixelCount);
        var b = destination.Slice(2 * pixelCount, pixelCount);
        for (int i = 0; i < pixelCount; i++)
        {
            r[i] = lut[rgb[3 * i]];
            g[i] = lut[256 + rgb[3 * i + 1]];
            b[i] = lut[512 + rgb[3 * i + 2]];
        }
    }

    /// <summary>The normalised value of one byte: ((float)v / 255f − mean) / std, every step in float32.</summary>
    /// <param name="value">The byte.</param>
    /// <param name="mean">The channel mean.</param>
    /// <param name="std">The channel standard deviation.</param>
    /// <returns>The normalised value.</returns>
    public static float Normalize(byte value, float mean, float std)
    {
        float x = value / 255f;
        float centred = x - mean;
        return centred / std;
    }

    static void BuildTable((float R, float G, float B) mean, (float R, float G, float B) std, Span<float> lut)
    {
        for (int v = 0; v < 256; v++)
        {
            lut[v] = Normalize((byte)v, mean.R, std.R);
            lut[256 + v] = Normalize((byte)v, mean.G, std.G);
            lut[512 + v] = Normalize((byte)v, mean.B, std.B);
        }
    }
}
