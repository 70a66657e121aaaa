namespace ClipSharp.Imaging;

/// <summary>
/// An 8-bit image held in memory as interleaved rows (no padding), together with the Pillow mode
/// of the file it came from. Instances are immutable.
/// </summary>
public sealed class DecodedImage
{
    readonly byte[] pixels;

    internal DecodedImage(int width, int height, ImageMode mode, byte[] pixels, bool takeOwnership)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        long expected = (long)width * height * mode.Channels();
        if (pixels.LongLength != expected)
            throw new ArgumentException($"Mode {mode.PillowName()} at {width}x{height} needs {expected} bytes, got {pixels.LongLength}.", nameof(pixels));
        Width = width;
        Height = height;
        Mode = mode;
        this.pixels = takeOwnership ? pixels : (byte[])pixels.Clone();
    }

    /// <summary>Creates an image from a copy of interleaved pixel data.</summary>
    /// <param name="width">Width in pixels.</param>
    /// <param name="height">Height in pixels.</param>
    /// <param name="mode">Pillow mode; decides the channel count (<see cref="ImageModeExtensions.Channels"/>).</param>
    /// <param name="pixels">Row-major interleaved bytes, exactly width × height × channels long.
    /// For <see cref="ImageMode.P"/> these are palette-expanded RGB triples; use
    /// <see cref="FromPalette"/> to start from indices.</param>
    /// <returns>The image.</returns>
    public static DecodedImage FromPixels(int width, int height, ImageMode mode, ReadOnlySpan<byte> pixels)
        => new(width, height, mode, pixels.ToArray(), takeOwnership: true);

    /// <summary>Creates a palette (mode P) image from indices and an RGB palette.</summary>
    /// <param name="width">Width in pixels.</param>
    /// <param name="height">Height in pixels.</param>
    /// <param name="indices">width × height palette indices, row-major.</param>
    /// <param name="paletteRgb">Palette as consecutive RGB triples. Indices beyond it map to black, as in Pillow.</param>
    /// <returns>The image, with pixels expanded to RGB.</returns>
    public static DecodedImage FromPalette(int width, int height, ReadOnlySpan<byte> indices, ReadOnlySpan<byte> paletteRgb)
    {
        if (indices.Length != (long)width * height)
            throw new ArgumentException($"Expected {(long)width * height} indices, got {indices.Length}.", nameof(indices));
        if (paletteRgb.Length % 3 != 0)
            throw new ArgumentException("The palette length must be a multiple of 3.", nameof(paletteRgb));
        var lut = new byte[256 * 3];
        paletteRgb[..Math.Min(paletteRgb.Length, lut.Length)].CopyTo(lut);
        var rgb = new byte[indices.Length * 3];
        for (int i = 0; i < indices.Length; i++)
        {
            int p = indices[i] * 3;
            rgb[3 * i] = lut[p];
            rgb[3 * i + 1] = lut[p + 1];
            rgb[3 * i + 2] = lut[p + 2];
        }
        return new DecodedImage(width, height, ImageMode.P, rgb, takeOwnership: true);
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>The Pillow mode of the source.</summary>
    public ImageMode Mode { get; }

    /// <summary>Interleaved channels per pixel (see <see cref="ImageModeExtensions.Channels"/>).</summary>
    public int Channels => Mode.Channels();

    /// <summary>The interleaved pixel bytes, row-major, without row padding.</summary>
    public ReadOnlySpan<byte> Pixels => pixels;

    internal byte[] PixelArray => pixels;

    /// <summary>
    /// The equivalent of Pillow's <c>convert("RGB")</c>: alpha is dropped without compositing,
    /// luminance and bilevel values are replicated into three channels, palette colours are used as they are.
    /// </summary>
    /// <returns>A new array of width × height × 3 bytes.</returns>
    public byte[] ToRgb()
    {
        var rgb = new byte[Width * Height * 3];
        ToRgb(pixels, Mode.Channels(), rgb);
        return rgb;
    }

    /// <summary>Converts this image to an RGB image (see <see cref="ToRgb()"/>).</summary>
    /// <returns>This instance if it is already RGB, otherwise a new RGB image.</returns>
    public DecodedImage ConvertToRgb()
        => Mode == ImageMode.Rgb ? this : new DecodedImage(Width, Height, ImageMode.Rgb, ToRgb(), takeOwnership: true);

    internal static void ToRgb(ReadOnlySpan<byte> src, int channels, Span<byte> rgb)
    {
        int n = rgb.Length / 3;
        switch (channels)
        {
            case 3:
                src[..(n * 3)].CopyTo(rgb);
                break;
            case 4:
                for (int i = 0; i < n; i++)
                {
                    rgb[3 * i] = src[4 * i];
                    rgb[3 * i + 1] = src[4 * i + 1];
                    rgb[3 * i + 2] = src[4 * i + 2];
                }
                break;
            case 1:
            case 2:
                for (int i = 0; i < n; i++)
                {
                    byte v = src[channels * i];
                    rgb[3 * i] = v;
                    rgb[3 * i + 1] = v;
                    rgb[3 * i + 2] = v;
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(channels));
        }
    }
}
