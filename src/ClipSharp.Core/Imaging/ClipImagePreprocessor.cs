
namespace ClipSharp.Imaging;

/// <summary>
/// CLIP's image preprocessing, bit-exact with the reference pipeline on PIL images
/// (Pillow 9.4 + torchvision 0.14): resize the short side to n with bicubic resampling,
/// centre-crop n × n, convert to RGB, scale to [0, 1] and normalise per channel.
/// Immutable and safe to use from several threads at once.
/// </summary>
public sealed class ClipImagePreprocessor
{
    /// <summary>Creates a preprocessor with CLIP's mean and std and the given output size.</summary>
    /// <param name="size">Output side length n (224 for most released CLIP models).</param>
    public ClipImagePreprocessor(int size = 224)
        : this(new ClipImagePreprocessorOptions { Size = size })
    {
    }

    /// <summary>Creates a preprocessor from options.</summary>
    /// <param name="options">Size, normalisation constants and decompression-bomb limit.</param>
    public ClipImagePreprocessor(ClipImagePreprocessorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.Size, nameof(options.Size));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MaxImagePixels, nameof(options.MaxImagePixels));
        if (options.Std.R == 0 || options.Std.G == 0 || options.Std.B == 0)
            throw new ArgumentException("Std must be non-zero in every channel.", nameof(options));
        Options = options;
    }

    /// <summary>The settings in use.</summary>
    public ClipImagePreprocessorOptions Options { get; }

    /// <summary>Output side length n.</summary>
    public int Size => Options.Size;

    /// <summary>Number of floats one processed image occupies: 3 × n × n.</summary>
    public int OutputLength => 3 * Size * Size;

    /// <summary>
    /// torchvision's <c>Resize(n)</c> target for a width × height image: the short side becomes n and the
    /// long side (int)(n · long / short), divided in floating point and truncated.
    /// </summary>
    /// <param name="width">Source width.</param>
    /// <param name="height">Source height.</param>
    /// <param name="size">n.</param>
    /// <returns>The resized width and height.</returns>
    public static (int Width, int Height) ResizedSize(int width, int height, int size)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        if (width <= height)
            return (size, (int)((double)((long)size * height) / width));
        return ((int)((double)((long)size * width) / height), size);
    }

    /// <summary>Decodes, resizes, crops and normalises an image file.</summary>
    /// <param name="path">The image file.</param>
    /// <returns>3 × n × n floats in CHW order.</returns>
    /// <exception cref="ImageDecodeException">The file is not a decodable image or is too large.</exception>
    public float[] Process(string path)
    {
        var o = new float[OutputLength];
        ProcessInto(path, o);
        return o;
    }

    /// <summary>Decodes, resizes, crops and normalises an encoded image held in memory.</summary>
    /// <param name="data">The encoded file contents.</param>
    /// <param name="nameForErrors">A label for error messages.</param>
    /// <returns>3 × n × n floats in CHW order.</returns>
    /// <exception cref="ImageDecodeException">The data is not a decodable image or is too large.</exception>
    public float[] Process(byte[] data, string nameForErrors)
    {
        var o = new float[OutputLength];
        ProcessInto(ImageDecoder.Decode(data, nameForErrors, Options.MaxImagePixels), o);
        return o;
    }

    /// <summary>Resizes, crops and normalises an already decoded image.</summary>
    /// <param name="image">The image.</param>
    /// <returns>3 × n × n floats in CHW order.</returns>
    public float[] Process(DecodedImage image)
    {
        var o = new float[OutputLength];
        ProcessInto(image, o);
        return o;
    }

    /// <summary>Decodes, resizes, crops and normalises an image file into a caller-provided buffer.</summary>
    /// <param name="path">The image file.</param>
    /// <param name="destination">At least <see cref="OutputLength"/> floats.</param>
    /// <exception cref="ImageDecodeException">The file is not a decodable image or is too large.</exception>
    public void ProcessInto(string path, Span<float> destination)
        => ProcessInto(ImageDecoder.Decode(path, Options.MaxImagePixels), destination);

    /// <summary>Resizes, crops and normalises a decoded image into a caller-provided buffer.</summary>
    /// <param name="image">The image.</param>
    /// <param name="destination">At least <see cref="OutputLength"/> floats.</param>
    public void ProcessInto(DecodedImage image, Span<float> destination)
    {
        if (destination.Length < OutputLength)
            throw new ArgumentException($"The destination needs {OutputLength} floats, got {destination.Length}.", nameof(destination));
        var rgb = ResizeAndCrop(image);
        ImageNormalizer.ToNormalizedChw(rgb.Pixels, Size * Size, Options.Mean, Options.Std, destination);
    }

    /// <summary>
    /// The uint8 steps of the pipeline: Resize (skipped if the size is unchanged), CenterCrop, then
    /// <c>convert("RGB")</c>. The result is exactly what the reference feeds to ToTensor.
    /// </summary>
    /// <param name="image">The decoded image.</param>
    /// <returns>An n × n RGB image.</returns>
    public DecodedImage ResizeAndCrop(DecodedImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var (w, h) = ResizedSize(image.Width, image.Height, Size);
        var resized = PillowResize.Resize(image, w, h);
        return CenterCrop.Apply(resized, Size).ConvertToRgb();
    }
}
