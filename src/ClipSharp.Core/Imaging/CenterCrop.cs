namespace ClipSharp.Imaging;

/// <summary>
/// torchvision's <c>CenterCrop</c> for square outputs: offsets round half to even (Python's <c>round</c>),
/// and an image smaller than the crop is first padded with zeros, (missing / 2) pixels before and the rest after.
/// </summary>
internal static class CenterCrop
{
    /// <summary>
    /// The top-left corner of the crop window in source coordinates. A negative value means the image
    /// is smaller than the crop along that axis and that many zero pixels are padded before it.
    /// </summary>
    /// <param name="width">Source width.</param>
    /// <param name="height">Source height.</param>
    /// <param name="size">Crop side length.</param>
    /// <returns>Top and left offsets.</returns>
    public static (int Top, int Left) Offsets(int width, int height, int size)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        return (Offset(height, size), Offset(width, size));
    }

    static int Offset(int length, int size)
        => length >= size
            ? (int)Math.Round((length - size) / 2.0, MidpointRounding.ToEven)
            : -((size - length) / 2);

    /// <summary>Crops (and, if needed, zero-pads) an image to size × size, keeping its mode.</summary>
    /// <param name="image">The source image.</param>
    /// <param name="size">Crop side length.</param>
    /// <returns>The cropped image; the input itself if it already is size × size.</returns>
    public static DecodedImage Apply(DecodedImage image, int size)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.Width == size && image.Height == size) return image;
        var o = Apply(image.Pixels, image.Width, image.Height, image.Channels, size);
        return new DecodedImage(size, size, image.Mode, o, takeOwnership: true);
    }

    /// <summary>Crops interleaved pixels to size × size (zero padding where the window leaves the image).</summary>
    /// <param name="pixels">Row-major interleaved pixels.</param>
    /// <param name="width">Source width.</param>
    /// <param name="height">Source height.</param>
    /// <param name="channels">Interleaved channels per pixel.</param>
    /// <param name="size">Crop side length.</param>
    /// <returns>size × size × channels bytes.</returns>
    public static byte[] Apply(ReadOnlySpan<byte> pixels, int width, int height, int channels, int size)
    {
        var (top, left) = Offsets(width, height, size);
        var o = new byte[size * size * channels];
        int x0 = Math.Max(0, -left), x1 = Math.Min(size, width - left);
        for (int y = 0; y < size; y++)
        {
            int sy = y + top;
            if (sy < 0 || sy >= height || x1 <= x0) continue;
            pixels.Slice((sy * width + left + x0) * channels, (x1 - x0) * channels)
                  .CopyTo(o.AsSpan((y * size + x0) * channels));
        }
        return o;
    }
}
