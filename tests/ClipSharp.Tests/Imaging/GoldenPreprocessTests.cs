using System.Text.Json;
using ClipSharp.Imaging;
using Xunit.Abstractions;

namespace ClipSharp.Tests.Imaging;

/// <summary>Parity with the reference preprocessing (Pillow 9.4 + torchvision 0.14) on the golden images.</summary>
public class GoldenPreprocessTests(ITestOutputHelper output)
{
    internal sealed record Pipeline(int NPx, int ResizedW, int ResizedH, int CropTop, int CropLeft, string Tensor);

    internal sealed record Case(string File, string Mode, int Width, int Height, Pipeline[] Pipelines);

    internal static readonly Lazy<Dictionary<string, Case>> Cases = new(LoadCases);

    static Dictionary<string, Case> LoadCases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Golden.Path("preprocess", "cases.json")));
        var d = new Dictionary<string, Case>();
        foreach (var c in doc.RootElement.EnumerateArray())
        {
            var size = c.GetProperty("size_wh");
            var pipes = c.GetProperty("pipelines").EnumerateArray().Select(p => new Pipeline(
                p.GetProperty("n_px").GetInt32(),
                p.GetProperty("resized_size_wh")[0].GetInt32(),
                p.GetProperty("resized_size_wh")[1].GetInt32(),
                p.GetProperty("crop_top").GetInt32(),
                p.GetProperty("crop_left").GetInt32(),
                p.GetProperty("expected_tensor").GetString()!)).ToArray();
            var file = c.GetProperty("file").GetString()!;
            d[file] = new Case(file, c.GetProperty("mode").GetString()!, size[0].GetInt32(), size[1].GetInt32(), pipes);
        }
        return d;
    }

    internal static TestSafetensors Intermediates => TestSafetensors.Open(Golden.Path("preprocess", "intermediates.safetensors"));

    internal static TestSafetensors Expected => TestSafetensors.Open(Golden.Path("preprocess", "expected.safetensors"));

    /// <summary>The pixels exactly as Pillow decoded them, from intermediates.safetensors.</summary>
    internal static DecodedImage GoldenDecoded(string file)
    {
        var c = Cases.Value[file];
        var px = Intermediates.U8(file + ":decoded");
        return c.Mode switch
        {
            "RGB" => DecodedImage.FromPixels(c.Width, c.Height, ImageMode.Rgb, px),
            "RGBA" => DecodedImage.FromPixels(c.Width, c.Height, ImageMode.Rgba, px),
            "L" => DecodedImage.FromPixels(c.Width, c.Height, ImageMode.L, px),
            "P" => DecodedImage.FromPalette(c.Width, c.Height, px, Intermediates.U8(file + ":palette")),
            _ => throw new NotSupportedException(c.Mode),
        };
    }

    public static TheoryData<string, int> AllCases()
    {
        var d = new TheoryData<string, int>();
        foreach (var f in new[] { "landscape.jpg", "portrait.png", "tiny.png", "gray.png", "rgba.png", "palette.png" })
            foreach (var n in new[] { 224, 64 })
                d.Add(f, n);
        return d;
    }

    public static TheoryData<string, int> PngCases()
    {
        var d = new TheoryData<string, int>();
        foreach (var (f, n) in AllCases().Select(r => ((string)r[0], (int)r[1])))
            if (f.EndsWith(".png", StringComparison.Ordinal)) d.Add(f, n);
        return d;
    }

    static Pipeline PipelineOf(string file, int n) => Cases.Value[file].Pipelines.Single(p => p.NPx == n);

    static void AssertBytesEqual(byte[] expected, ReadOnlySpan<byte> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        int diff = 0, first = -1;
        for (int i = 0; i < expected.Length; i++)
            if (expected[i] != actual[i]) { diff++; if (first < 0) first = i; }
        Assert.True(diff == 0, $"{what}: {diff} of {expected.Length} bytes differ; first at {first}: expected {(first >= 0 ? expected[first] : 0)}, got {(first >= 0 ? actual[first] : 0)}");
    }

    [Theory]
    [MemberData(nameof(AllCases))]
    public void ResizedSizeAndCropOffsetsMatchCasesJson(string file, int n)
    {
        var c = Cases.Value[file];
        var p = PipelineOf(file, n);
        var (w, h) = ClipImagePreprocessor.ResizedSize(c.Width, c.Height, n);
        Assert.Equal((p.ResizedW, p.ResizedH), (w, h));
        Assert.Equal((p.CropTop, p.CropLeft), CenterCrop.Offsets(w, h, n));
    }

    [Theory]
    [MemberData(nameof(AllCases))]
    public void ResizeOfGoldenDecodedPixelsIsBitExact(string file, int n)
    {
        var p = PipelineOf(file, n);
        var resized = PillowResize.Resize(GoldenDecoded(file), p.ResizedW, p.ResizedH);
        AssertBytesEqual(Intermediates.U8($"{file}:resized@{n}"), resized.ToRgb(), $"{file} resized@{n}");
    }

    [Theory]
    [MemberData(nameof(AllCases))]
    public void ResizeAndCropOfGoldenDecodedPixelsIsBitExact(string file, int n)
    {
        var cropped = new ClipImagePreprocessor(n).ResizeAndCrop(GoldenDecoded(file));
        Assert.Equal(ImageMode.Rgb, cropped.Mode);
        AssertBytesEqual(Intermediates.U8($"{file}:cropped@{n}"), cropped.Pixels, $"{file} cropped@{n}");
    }

    [Theory]
    [MemberData(nameof(PngCases))]
    public void PngDecodeMatchesPillow(string file, int n)
    {
        _ = n;
        var c = Cases.Value[file];
        var img = ImageDecoder.Decode(Golden.Path("preprocess", file));
        Assert.Equal(c.Mode, img.Mode.PillowName());
        Assert.Equal((c.Width, c.Height), (img.Width, img.Height));
        AssertBytesEqual(GoldenDecoded(file).PixelsCopy(), img.Pixels, $"{file} decoded");
    }

    [Theory]
    [MemberData(nameof(PngCases))]
    public void PngEndToEndIsBitExact(string file, int n)
    {
        var pre = new ClipImagePreprocessor(n);
        var path = Golden.Path("preprocess", file);
        AssertBytesEqual(Intermediates.U8($"{file}:cropped@{n}"), pre.ResizeAndCrop(ImageDecoder.Decode(path)).Pixels, $"{file} cropped@{n}");
        var expected = Expected.F32(PipelineOf(file, n).Tensor);
        var actual = pre.Process(path);
        Assert.Equal(expected.Length, actual.Length);
        double max = 0;
        for (int i = 0; i < expected.Length; i++) max = Math.Max(max, Math.Abs(expected[i] - actual[i]));
        Assert.True(max <= 1e-6, $"{file}@{n}: max abs error {max}");
        Assert.Equal(expected, actual); // in fact bit-exact
    }

    [Fact]
    public void NormalisationOfGoldenCroppedPixelsIsBitExact()
    {
        foreach (var (file, n) in AllCases().Select(r => ((string)r[0], (int)r[1])))
        {
            var cropped = Intermediates.U8($"{file}:cropped@{n}");
            var o = new float[3 * n * n];
            ImageNormalizer.ToNormalizedChw(cropped, n * n, ClipImagePreprocessorOptions.ClipMean, ClipImagePreprocessorOptions.ClipStd, o);
            Assert.Equal(Expected.F32(PipelineOf(file, n).Tensor), o);
        }
    }

    // Measured with Skia's bundled libjpeg-turbo against Pillow 9.4 / libjpeg-turbo 2.1.5 (see JpegDecodeDifferenceIsSmall output).
    internal const int JpegMaxDecodedByteDifference = 0;

    [Fact]
    public void JpegDecodeDifferenceIsSmall()
    {
        const string file = "landscape.jpg";
        var golden = Intermediates.U8(file + ":decoded");
        var img = ImageDecoder.Decode(Golden.Path("preprocess", file));
        Assert.Equal(ImageMode.Rgb, img.Mode);
        Assert.Equal(golden.Length, img.Pixels.Length);
        int maxDiff = 0, count = 0;
        for (int i = 0; i < golden.Length; i++)
        {
            int d = Math.Abs(golden[i] - img.Pixels[i]);
            if (d != 0) count++;
            maxDiff = Math.Max(maxDiff, d);
        }
        output.WriteLine($"{file} decoded: {count} of {golden.Length} uint8 values differ, max |diff| = {maxDiff}");
        Assert.True(maxDiff <= JpegMaxDecodedByteDifference, $"max decoded difference {maxDiff}, {count} values differ");
    }

    [Theory]
    [InlineData(224)]
    [InlineData(64)]
    public void JpegEndToEndWithinMeasuredBound(int n)
    {
        const string file = "landscape.jpg";
        var pre = new ClipImagePreprocessor(n);
        var path = Golden.Path("preprocess", file);
        var cropped = pre.ResizeAndCrop(ImageDecoder.Decode(path)).Pixels;
        var goldenCropped = Intermediates.U8($"{file}:cropped@{n}");
        int maxDiff = 0, count = 0;
        for (int i = 0; i < goldenCropped.Length; i++)
        {
            int d = Math.Abs(goldenCropped[i] - cropped[i]);
            if (d != 0) count++;
            maxDiff = Math.Max(maxDiff, d);
        }
        var expected = Expected.F32(PipelineOf(file, n).Tensor);
        var actual = pre.Process(path);
        double max = 0;
        for (int i = 0; i < expected.Length; i++) max = Math.Max(max, Math.Abs(expected[i] - actual[i]));
        output.WriteLine($"{file}@{n}: cropped uint8: {count} of {goldenCropped.Length} differ, max |diff| = {maxDiff}; normalised max abs error = {max:G9}");
        double bound = JpegMaxDecodedByteDifference / 255.0 / 0.26130258 + 1e-6;
        Assert.True(max <= bound, $"normalised max abs error {max} exceeds {bound}");
    }
}

internal static class DecodedImageTestExtensions
{
    public static byte[] PixelsCopy(this DecodedImage image) => image.Pixels.ToArray();
}
