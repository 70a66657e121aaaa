namespace ClipSharp.Imaging;

/// <summary>
/// Thrown when an image file cannot be decoded: unknown format, corrupt or truncated data, an empty
/// file, or an image whose pixel count exceeds the decompression-bomb limit. The message names the file.
/// </summary>
public class ImageDecodeException : ClipSharpException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="source">The file path or name the data came from, used in the message.</param>
    /// <param name="problem">What is wrong with the data.</param>
    /// <param name="inner">The underlying exception, if any.</param>
    public ImageDecodeException(string source, string problem, Exception? inner = null)
        : base($"Cannot decode image '{source}': {problem}", inner)
    {
        FileName = source;
        Problem = problem;
    }

    /// <summary>The file path or name the data came from.</summary>
    public string FileName { get; }

    /// <summary>What is wrong with the data, without the file name.</summary>
    public string Problem { get; }
}

/// <summary>
/// Thrown when an image's declared size exceeds the configured pixel limit. It is raised from the
/// header alone, before any pixel data is decoded.
/// </summary>
public sealed class ImageTooLargeException : ImageDecodeException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="source">The file path or name.</param>
    /// <param name="width">Declared width in pixels.</param>
    /// <param name="height">Declared height in pixels.</param>
    /// <param name="maxPixels">The limit that was exceeded.</param>
    public ImageTooLargeException(string source, long width, long height, long maxPixels)
        : base(source, $"image size {width}x{height} = {width * height:N0} pixels exceeds the limit of {maxPixels:N0} pixels (possible decompression bomb); raise MaxImagePixels if the file is trusted")
    {
        Width = width;
        Height = height;
        MaxPixels = maxPixels;
    }

    /// <summary>Declared width in pixels.</summary>
    public long Width { get; }

    /// <summary>Declared height in pixels.</summary>
    public long Height { get; }

    /// <summary>The limit that was exceeded.</summary>
    public long MaxPixels { get; }
}
