using ClipSharp.Imaging;

namespace ClipSharp.Training.Data;

/// <summary>
/// Training-time image transform: RandomResizedCrop (area fraction and aspect ratio drawn from the configured
/// ranges, up to ten tries, else a centre crop of the largest allowed box), bicubic resize to the model's side,
/// optional horizontal flip, colour jitter and greyscale, then normalisation with the model's mean and std. All randomness comes from the
/// <see cref="Random"/> passed in, so a sample's augmentation depends only on the seed and its position.
/// </summary>
internal sealed class Augmentation(int size, AugmentSection options,
    (float R, float G, float B) mean, (float R, float G, float B) std)
{
    /// <summary>Output side in pixels.</summary>
    public int Size { get; } = size;

    /// <summary>Floats per output image (3 × size × size).</summary>
    public int OutputLength => 3 * Size * Size;

    /// <summary>Picks a crop box (left, top, width, height) for an image of the given size.</summary>
    public (int X, int Y, int W, int H) CropBox(int width, int height, Random rng)
    {
        double area = (double)width * height;
        double logLo = Math.Log(options.RatioMin), logHi = Math.Log(options.RatioMax);
        for (int attempt = 0; attempt < 10; attempt++)
        {
            double target = area * (options.ScaleMin + rng.NextDouble() * (options.ScaleMax - options.ScaleMin));
            double ratio = Math.Exp(logLo + rng.NextDouble() * (logHi - logLo));
            int w = (int)Math.Round(Math.Sqrt(target * ratio));
            int h = (int)Math.Round(Math.Sqrt(target / ratio));
            if (w > 0 && h > 0 && w <= width && h <= height)
                return (rng.Next(width - w + 1), rng.Next(height - h + 1), w, h);
        }
        // Fallback: centre crop at the nearest allowed aspect ratio.
        double inRatio = (double)width / height;
        int cw = width, ch = height;
        if (inRatio < options.RatioMin) ch = (int)Math.Round(cw / options.RatioMin);
        else if (inRatio > options.RatioMax) cw = (int)Math.Round(ch * options.RatioMax);
        return ((width - cw) / 2, (height - ch) / 2, cw, ch);
    }

    /// <summary>Augments a decoded image into <paramref name="destination"/> (normalised CHW floats).</summary>
    public void Apply(DecodedImage image, Random rng, Span<float> destination)
    {
        var rgb = image.ConvertToRgb();
        var (x, y, w, h) = CropBox(rgb.Width, rgb.Height, rng);
        var cropped = new byte[w * h * 3];
        var src = rgb.Pixels;
        for (int row = 0; row < h; row++)
            src.Slice(((y + row) * rgb.Width + x) * 3, w * 3).CopyTo(cropped.AsSpan(row * w * 3));
        var resized = PillowResize.Resize(DecodedImage.FromPixels(w, h, ImageMode.Rgb, cropped), Size, Size);
        var px = resized.Pixels.ToArray();
        if (options.Hflip && rng.NextDouble() < 0.5) FlipHorizontal(px, Size);
        if (options.ColorJitter > 0) Jitter(px, options.ColorJitter, rng);
        if (options.Grayscale > 0 && rng.NextDouble() < options.Grayscale) ToGray(px);
        ImageNormalizer.ToNormalizedChw(px, Size * Size, mean, std, destination);
    }

    private static void FlipHorizontal(byte[] px, int size)
    {
        for (int r = 0; r < size; r++)
            for (int a = 0, b = size - 1; a < b; a++, b--)
                for (int c = 0; c < 3; c++)
                    (px[(r * size + a) * 3 + c], px[(r * size + b) * 3 + c]) = (px[(r * size + b) * 3 + c], px[(r * size + a) * 3 + c]);
    }

    private static void Jitter(byte[] px, double strength, Random rng)
    {
        double brightness = 1 + (rng.NextDouble() * 2 - 1) * strength;
        double contrast = 1 + (rng.NextDouble() * 2 - 1) * strength;
        double saturation = 1 + (rng.NextDouble() * 2 - 1) * strength;
        double mean = 0;
        for (int i = 0; i < px.Length; i += 3) mean += Luma(px[i], px[i + 1], px[i + 2]);
        mean /= px.Length / 3;
        for (int i = 0; i < px.Length; i += 3)
        {
            double r = px[i] * brightness, g = px[i + 1] * brightness, b = px[i + 2] * brightness;
            r = (r - mean) * contrast + mean; g = (g - mean) * contrast + mean; b = (b - mean) * contrast + mean;
            double l = Luma(r, g, b);
            px[i] = Clamp(l + (r - l) * saturation);
            px[i + 1] = Clamp(l + (g - l) * saturation);
            px[i + 2] = Clamp(l + (b - l) * saturation);
        }
    }

    private static void ToGray(byte[] px)
    {
        for (int i = 0; i < px.Length; i += 3)
            px[i] = px[i + 1] = px[i + 2] = Clamp(Luma(px[i], px[i + 1], px[i + 2]));
    }

    private static double Luma(double r, double g, double b) => 0.299 * r + 0.587 * g + 0.114 * b;
    private static byte Clamp(double v) => (byte)Math.Clamp(Math.Round(v), 0, 255);
}
