namespace ClipSharp.Imaging;

/// <summary>
/// The pixel mode of a decoded image as the Python Imaging Library (Pillow) would report it
/// when opening the same file. The mode decides how the reference pipeline resamples the image.
/// </summary>
public enum ImageMode
{
    /// <summary>Three 8-bit channels, red, green, blue ("RGB").</summary>
    Rgb,

    /// <summary>Four 8-bit channels, straight (not premultiplied) alpha ("RGBA").</summary>
    Rgba,

    /// <summary>One 8-bit luminance channel ("L").</summary>
    L,

    /// <summary>Luminance plus straight alpha, two 8-bit channels ("LA").</summary>
    La,

    /// <summary>
    /// Palette image ("P"). Pixels are stored already expanded to RGB (three channels); what matters
    /// for parity is that the reference resamples palette images with nearest neighbour.
    /// </summary>
    P,

    /// <summary>Bilevel image ("1"), stored as one 8-bit channel holding only 0 or 255.</summary>
    Bilevel,
}

/// <summary>Helpers for <see cref="ImageMode"/>.</summary>
internal static class ImageModeExtensions
{
    /// <summary>Number of interleaved 8-bit channels a <see cref="DecodedImage"/> of this mode stores per pixel.</summary>
    /// <param name="mode">The mode.</param>
    /// <returns>1 for L and 1, 2 for LA, 3 for RGB and P, 4 for RGBA.</returns>
    public static int Channels(this ImageMode mode) => mode switch
    {
        ImageMode.Rgb => 3,
        ImageMode.Rgba => 4,
        ImageMode.L => 1,
        ImageMode.La => 2,
        ImageMode.P => 3,
        ImageMode.Bilevel => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown image mode."),
    };

    /// <summary>The mode name Pillow uses ("RGB", "RGBA", "L", "LA", "P", "1").</summary>
    /// <param name="mode">The mode.</param>
    /// <returns>The Pillow mode string.</returns>
    public static string PillowName(this ImageMode mode) => mode switch
    {
        ImageMode.Rgb => "RGB",
        ImageMode.Rgba => "RGBA",
        ImageMode.L => "L",
        ImageMode.La => "LA",
        ImageMode.P => "P",
        ImageMode.Bilevel => "1",
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown image mode."),
    };

    /// <summary>Whether the reference resamples this mode with nearest neighbour whatever filter is asked for.</summary>
    /// <param name="mode">The mode.</param>
    /// <returns>True for palette and bilevel images.</returns>
    public static bool ForcesNearest(this ImageMode mode) => mode is ImageMode.P or ImageMode.Bilevel;
}
